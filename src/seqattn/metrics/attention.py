"""Attention Span: how far, on average, each query reaches into the sequence.

For a weight matrix a (rows are queries i, columns keys j, rows summing to 1),

    span_i = sum_j a_ij |pos(i) - pos(j)|        (in positions; in frames for video)
    span   = mean_i span_i

Keys sit at positions 0..Tk-1 and query i at i + (Tk - Tq), aligned bottom-right like the causal
mask of `seqattn.attention`, so a single query over a cached history sits at the newest position.
The normalised span divides by the span of uniform attention over the same allowed keys (uniform
attention scores 1.0, attention to the query's own position 0.0). Entropy is in nats.

All functions take numpy arrays shaped (..., Tq, Tk) and reduce only the last two axes.
"""

import numpy as np


def _distances(t_q: int, t_k: int) -> np.ndarray:
    query_pos = np.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, 1)
    key_pos = np.arange(t_k)[None, :]  # (1, Tk)
    return np.abs(query_pos - key_pos).astype(np.float64)  # (Tq, Tk)


def per_query_span(weights) -> np.ndarray:
    """sum_j a_ij |i - j| for every query: (..., Tq, Tk) -> (..., Tq)."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.sum(weights * _distances(*weights.shape[-2:]), axis=-1)


def attention_span(weights) -> np.ndarray:
    """Mean attention distance over queries: (..., Tq, Tk) -> (...)."""
    return per_query_span(weights).mean(axis=-1)


def normalised_span(weights, allowed=None) -> np.ndarray:
    """Span divided by the span of uniform attention over the allowed keys (None: all keys).

    Rows with no allowed key are left out of both spans.
    """
    weights = np.asarray(weights, dtype=np.float64)
    allowed = np.ones(weights.shape[-2:], bool) if allowed is None else np.asarray(allowed, bool)
    allowed = np.broadcast_to(allowed, weights.shape)
    counts = allowed.sum(axis=-1, keepdims=True)  # (..., Tq, 1)
    uniform = np.where(counts > 0, allowed / np.maximum(counts, 1), 0.0)
    has_keys = counts[..., 0] > 0  # (..., Tq)
    span = np.sum(per_query_span(weights) * has_keys, axis=-1)
    uniform_span = np.sum(per_query_span(uniform) * has_keys, axis=-1)
    return span / np.where(uniform_span > 0, uniform_span, np.nan)


def attention_entropy(weights) -> np.ndarray:
    """Mean over queries of -sum_j a_ij log a_ij, in nats: (..., Tq, Tk) -> (...)."""
    weights = np.asarray(weights, dtype=np.float64)
    logs = np.log(np.where(weights > 0, weights, 1.0))  # 0 log 0 = 0
    return -np.sum(weights * logs, axis=-1).mean(axis=-1)


def span_report(weights_by_layer: dict, allowed=None) -> dict:
    """Span, normalised span and entropy per layer and head, and their means.

    `weights_by_layer` maps a layer name to weights (B, nh, Tq, Tk); values are averaged over
    the batch. Returns {"layers": {name: {"span": [per head], ...}}, "span": mean, ...}.
    """
    layers = {}
    for name, weights in weights_by_layer.items():
        weights = np.asarray(weights, dtype=np.float64)
        layers[name] = {
            "span": attention_span(weights).mean(axis=0).tolist(),
            "normalised_span": normalised_span(weights, allowed).mean(axis=0).tolist(),
            "entropy": attention_entropy(weights).mean(axis=0).tolist(),
        }
    summary = {
        key: float(np.mean([np.mean(layer[key]) for layer in layers.values()]))
        for key in ("span", "normalised_span", "entropy")
    }
    return {"layers": layers, **summary}


def span_metrics(report: dict, scale: float = 1.0) -> dict[str, float]:
    """A `span_report` as flat scalars for tracking: `attention_span`, `normalised_span` and
    `attention_entropy` (means), and per head `attention_span_head{h}` and `normalised_span_head{h}`,
    named `..._layer{l}_head{h}` (1-based, in the report's order) when there are several layers.

    `scale` converts spans from positions to the caller's unit (e.g. steps per segment); the
    normalised span and the entropy have none.
    """
    metrics = {"attention_span": report["span"] * scale, "normalised_span": report["normalised_span"],
               "attention_entropy": report["entropy"]}
    several = len(report["layers"]) > 1
    for layer, values in enumerate(report["layers"].values(), start=1):
        where = f"_layer{layer}" if several else ""
        for head, (span, normalised) in enumerate(zip(values["span"], values["normalised_span"]), start=1):
            metrics[f"attention_span{where}_head{head}"] = span * scale
            metrics[f"normalised_span{where}_head{head}"] = normalised
    return metrics
