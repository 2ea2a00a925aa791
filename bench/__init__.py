"""Benchmarks: `make bench`. Not tests; they print and write numbers."""
