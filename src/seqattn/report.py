"""Summaries over seeds and plain-text tables for the terminal, README and results folders."""

import numpy as np


def mean_std(values) -> dict:
    """Mean and sample std (ddof=1) over seeds; std is 0.0 for a single seed.

    Every part reports "mean +- std over seeds" through this one function.
    """
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std}


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-style markdown table; floats get 4 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
