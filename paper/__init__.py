"""The paper: LaTeX sources, and `python -m paper.build`, which turns `results/` into main.pdf."""
