"""Core active-learning heuristics (filled by the analyses issue)."""
