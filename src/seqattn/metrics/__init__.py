"""Metrics, each family defined once: attention (span, entropy), forecasting, video."""

from seqattn.metrics.attention import (
    attention_entropy,
    attention_span,
    normalised_span,
    per_query_span,
    span_metrics,
    span_report,
)

__all__ = ["attention_entropy", "attention_span", "normalised_span", "per_query_span", "span_metrics",
           "span_report"]
