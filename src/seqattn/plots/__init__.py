"""Figures, one module per part; every function takes arrays and a path and writes a PNG."""
