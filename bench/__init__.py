"""Benchmarks with their goals; each module runs as `python -m bench.<name>` (see README.md)."""
