"""Helpers shared by test folders: the in-process kitchen, the service stack as real
processes, and test doubles of other services."""
