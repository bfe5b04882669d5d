"""Multi-seed, paired benchmark of the selection strategies (see benchmark.py)."""
