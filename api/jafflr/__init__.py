"""jafflr: orders, the press, the assembler and the kitchen panel, over HTTP."""
