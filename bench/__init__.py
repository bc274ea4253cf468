"""Benchmarks that print their figures (and write them under bench/results/)."""
