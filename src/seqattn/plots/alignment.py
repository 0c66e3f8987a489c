"""Part 1 figure: learned attention maps next to the correct alignment."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqattn.io import atomic_path  # noqa: E402


def plot_alignment(weights: np.ndarray, alignment: np.ndarray, keys: np.ndarray, queries: np.ndarray,
                   path: str | Path, title: str) -> Path:
    """weights (S, nh, n, n) for S examples, alignment (S, n): one row of panels per example.

    Each row shows every head's weights (query x item) and the correct alignment as a one-hot
    map; axis ticks carry the actual key tokens so a reader can check a cell by eye.
    """
    n_examples, n_heads, n_queries, n_items = weights.shape
    cols = n_heads + 1
    fig, axes = plt.subplots(n_examples, cols, figsize=(2.9 * cols + 0.8, 3.4 * n_examples), squeeze=False)
    fig.subplots_adjust(hspace=0.6, wspace=0.35)
    correct = np.zeros((n_examples, n_queries, n_items))
    correct[np.arange(n_examples)[:, None], np.arange(n_queries)[None, :], alignment] = 1.0
    for row in range(n_examples):
        panels = [(weights[row, h], f"learned, head {h + 1}") for h in range(n_heads)]
        panels.append((correct[row], "correct alignment"))
        for col, (matrix, label) in enumerate(panels):
            ax = axes[row, col]
            image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_title(f"example {row + 1}: {label}", fontsize=9)
            ax.set_xticks(range(n_items), [f"k{k}" for k in keys[row]], fontsize=7, rotation=90)
            ax.set_yticks(range(n_queries), [f"q{q}" for q in queries[row]], fontsize=7)
            ax.set_xlabel("stored item (its key)", fontsize=8)
            if col == 0:
                ax.set_ylabel("query (asked key)", fontsize=8)
    fig.colorbar(image, ax=axes, fraction=0.025, pad=0.02, label="attention weight")
    fig.suptitle(title, fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
