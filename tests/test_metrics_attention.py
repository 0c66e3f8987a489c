"""Attention Span, normalised span and entropy against values computed by hand."""

import json
import math

import numpy as np
import pytest

from seqattn.metrics.attention import (
    attention_entropy,
    attention_span,
    normalised_span,
    per_query_span,
    span_metrics,
    span_report,
)


def uniform_causal(t: int) -> np.ndarray:
    """Query i spreads its weight evenly over keys 0..i."""
    allowed = np.tril(np.ones((t, t)))
    return allowed / allowed.sum(axis=-1, keepdims=True)


def uniform_full(t_q: int, t_k: int | None = None) -> np.ndarray:
    t_k = t_q if t_k is None else t_k
    return np.full((t_q, t_k), 1.0 / t_k)


# A hand-made matrix: rows are queries 0..2, columns keys 0..2.
HAND_MADE = np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("t", [1, 2, 5, 16])
def test_identity_attention_has_span_zero(t):
    assert attention_span(np.eye(t)) == 0.0
    assert attention_entropy(np.eye(t)) == 0.0
    if t > 1:
        assert normalised_span(np.eye(t)) == 0.0


@pytest.mark.parametrize("t", [1, 2, 4, 7, 12])
def test_uniform_causal_attention(t):
    # Query i is uniform over keys 0..i: span_i = (0 + 1 + ... + i) / (i + 1) = i / 2.
    np.testing.assert_allclose(per_query_span(uniform_causal(t)), np.arange(t) / 2)
    assert attention_span(uniform_causal(t)) == pytest.approx((t - 1) / 4)
    if t > 1:
        assert normalised_span(uniform_causal(t), allowed=np.tril(np.ones((t, t), bool))) == pytest.approx(1.0)


def test_uniform_causal_normalised_against_all_keys():
    # T = 4: causal spans 0, 1/2, 1, 3/2 (sum 3); uniform over all 4 keys: 6/4, 4/4, 4/4, 6/4 (sum 5).
    assert normalised_span(uniform_causal(4)) == pytest.approx(3 / 5)


@pytest.mark.parametrize("t", [2, 3, 5, 10])
def test_uniform_full_attention(t):
    # sum_{i,j} |i - j| = (T^3 - T) / 3, divided by T for the weights and by T for the mean.
    # By hand for T = 5: row spans 2, 1.4, 1.2, 1.4, 2 -> mean 1.6 = 24 / 15.
    assert attention_span(uniform_full(t)) == pytest.approx((t**2 - 1) / (3 * t))
    assert normalised_span(uniform_full(t)) == pytest.approx(1.0)
    assert attention_span(uniform_full(5)) == pytest.approx(1.6)


def test_hand_made_matrix():
    # Row spans: 0.5*1 = 0.5; 0.25*1 + 0.25*1 = 0.5; 0 -> mean 1/3.
    np.testing.assert_allclose(per_query_span(HAND_MADE), [0.5, 0.5, 0.0])
    assert attention_span(HAND_MADE) == pytest.approx(1 / 3)
    # Uniform over all keys: row spans 1, 2/3, 1 (sum 8/3); ours sum to 1 -> 3/8.
    assert normalised_span(HAND_MADE) == pytest.approx(3 / 8)
    # Row entropies: ln 2; -(2 * 0.25 ln 0.25 + 0.5 ln 0.5) = 1.5 ln 2; 0 -> mean 2.5 ln 2 / 3.
    assert attention_entropy(HAND_MADE) == pytest.approx(2.5 * math.log(2) / 3)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 64])
def test_entropy_of_uniform_is_log_n(n):
    assert attention_entropy(uniform_full(3, n)) == pytest.approx(math.log(n))


def test_queries_aligned_bottom_right_when_fewer_queries_than_keys():
    # One query over 5 keys sits at position 4: attending to key 0 reaches 4 back, to key 4 none.
    to_first = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]])
    assert attention_span(to_first) == 4.0
    assert attention_span(np.array([[0.0, 0.0, 0.0, 0.0, 1.0]])) == 0.0
    # Two queries at positions 3 and 4, each attending to key 1: distances 2 and 3.
    to_second = np.zeros((2, 5))
    to_second[:, 1] = 1.0
    np.testing.assert_allclose(per_query_span(to_second), [2.0, 3.0])
    # Uniform over all 5 keys from position 4: (4 + 3 + 2 + 1 + 0) / 5 = 2.
    assert attention_span(uniform_full(1, 5)) == pytest.approx(2.0)
    assert normalised_span(to_first) == pytest.approx(4.0 / 2.0)


def test_leading_axes_are_kept():
    weights = np.stack([np.stack([np.eye(4), uniform_causal(4), uniform_full(4)])] * 2)  # (B=2, nh=3, 4, 4)
    np.testing.assert_allclose(attention_span(weights), [[0.0, 0.75, 1.25]] * 2)
    np.testing.assert_allclose(attention_entropy(weights), [[0.0, math.log(24) / 4, math.log(4)]] * 2)
    assert per_query_span(weights).shape == (2, 3, 4)
    assert normalised_span(weights, allowed=np.tril(np.ones((4, 4), bool)))[0, 1] == pytest.approx(1.0)


def test_normalised_span_is_undefined_when_uniform_span_is_zero():
    assert np.isnan(normalised_span(np.ones((1, 1))))  # one query on its own key: nowhere to reach


def test_span_report_structure_and_values():
    t = 4
    layer0 = np.stack([np.stack([np.eye(t), uniform_causal(t), uniform_full(t)])] * 2)  # (B=2, nh=3, T, T)
    layer1 = np.stack([np.eye(t)[None], uniform_full(t)[None]])  # (B=2, nh=1, T, T): batch means
    report = span_report({"layer0": layer0, "layer1": layer1})

    assert set(report) == {"layers", "span", "normalised_span", "entropy"}
    assert list(report["layers"]) == ["layer0", "layer1"]
    for name, heads in (("layer0", 3), ("layer1", 1)):
        assert set(report["layers"][name]) == {"span", "normalised_span", "entropy"}
        for values in report["layers"][name].values():
            assert isinstance(values, list) and len(values) == heads
    np.testing.assert_allclose(report["layers"]["layer0"]["span"], [0.0, 0.75, 1.25])
    np.testing.assert_allclose(report["layers"]["layer0"]["normalised_span"], [0.0, 0.6, 1.0])
    np.testing.assert_allclose(report["layers"]["layer0"]["entropy"], [0.0, math.log(24) / 4, math.log(4)])
    np.testing.assert_allclose(report["layers"]["layer1"]["span"], [1.25 / 2])  # batch of 0 and 1.25
    np.testing.assert_allclose(report["layers"]["layer1"]["normalised_span"], [0.5])
    # Means: over heads within a layer, then over layers.
    assert report["span"] == pytest.approx(((0.0 + 0.75 + 1.25) / 3 + 0.625) / 2)
    assert report["normalised_span"] == pytest.approx(((0.0 + 0.6 + 1.0) / 3 + 0.5) / 2)
    json.dumps(report)  # plain floats and lists, ready for results.json


def test_span_report_with_causal_allowed_keys():
    t = 5
    weights = uniform_causal(t)[None, None]  # (1, 1, T, T)
    report = span_report({"decoder": weights}, allowed=np.tril(np.ones((t, t), bool)))
    assert report["normalised_span"] == pytest.approx(1.0)
    assert report["span"] == pytest.approx((t - 1) / 4)


def test_span_metrics_flattens_a_report_per_head_and_scales_spans_only():
    t = 4
    one_layer = span_report({"decoder": np.stack([np.stack([np.eye(t), uniform_full(t)])])})  # (1, nh=2, T, T)
    metrics = span_metrics(one_layer, scale=3.0)  # e.g. segments of 3 steps
    assert metrics == pytest.approx({
        "attention_span": 3.0 * 1.25 / 2, "normalised_span": 0.5, "attention_entropy": math.log(4) / 2,
        "attention_span_head1": 0.0, "normalised_span_head1": 0.0,
        "attention_span_head2": 3.0 * 1.25, "normalised_span_head2": 1.0,
    })
    two_layers = span_report({"first": np.eye(t)[None, None], "second": uniform_full(t)[None, None]})
    assert set(span_metrics(two_layers)) == {
        "attention_span", "normalised_span", "attention_entropy",
        "attention_span_layer1_head1", "normalised_span_layer1_head1",
        "attention_span_layer2_head1", "normalised_span_layer2_head1",
    }
    assert span_metrics(two_layers)["attention_span_layer2_head1"] == pytest.approx(1.25)
