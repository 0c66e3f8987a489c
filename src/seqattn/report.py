"""Summaries over seeds and plain-text tables for the terminal, README and results folders."""

import numpy as np


def mean_std(values) -> dict:
    """Mean and sample std (ddof=1) over seeds, the first axis of `values`; std is 0 for one seed.

    Scalars per seed (S,) give floats; curves per seed (S, steps) give lists of `steps` floats.
    Every part reports "mean ± std over seeds" through this one function.
    """
    values = np.asarray(values, dtype=np.float64)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])
    return {"mean": values.mean(axis=0).tolist(), "std": std.tolist()}


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-style markdown table; floats get 4 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
