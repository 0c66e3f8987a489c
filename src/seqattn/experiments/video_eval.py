"""Part 3's evaluation protocol: every predictor, trained or trivial, through the same windows,
metrics and paired comparison.

- A predictor maps test sequences (b, T, H, W) in [0, 1] to its frames context+1..T,
  (b, T - context, H, W): a model's closed-loop rollout, all-black frames, the last observed
  frame held still, the mean training frame (the best prediction that knows nothing of the
  sequence: a model that has lost the digits should still reach it), or the codec's
  reconstruction of the true frames (the floor of every latent model: no rollout decodes better
  than the codec reconstructs), or an observer told the digits and their motion up to a direction
  error (the tracking a given MSE takes).
- Windows (1-based frames, inclusive), recorded in results.json so nothing downstream
  re-derives them: `short` = the standard 10 -> 10 protocol, frames context+1..context+10;
  `far` = frames 50..T (or context+1..T when the context reaches past frame 50).
- Per frame: MSE and MAE summed over pixels (OpenSTL), SSIM as OpenSTL, PSNR, foreground F1, and
  skill against blank frames (`seqattn.metrics.video`). Per sequence: each window's mean MSE and
  F1, so two models compare paired on the same sequences (`seqattn.metrics.paired`).
"""

import json

import keras
import numpy as np
from keras import ops

from seqattn.data import moving_mnist
from seqattn.metrics.attention import per_query_span, span_report
from seqattn.metrics.video import FrameMetrics, window_means
from seqattn.progress import progress

SHORT_HORIZON = 10  # the standard protocol predicts 10 frames
FAR_START = 50  # far horizon: frames 50..T (1-based)
PER_FRAME = ("mse", "mae", "ssim", "psnr", "f1", "skill")
# evaluate() also keeps the blank frames' MSE per frame, the denominator of a window's skill.
_MEASURED = PER_FRAME + ("mse_blank",)
# Version of what evaluate() returns, part of the key of cached evaluations: bump it when evaluate()
# records something new, and caches written before are recomputed rather than read.
FORMAT = 2
PER_SEQUENCE = ("mse", "f1")


def windows(context: int, length: int) -> dict[str, list[int]]:
    """Evaluation windows as [first, last] 1-based frame numbers, inclusive."""
    out = {"short": [context + 1, min(context + SHORT_HORIZON, length)], "rollout": [context + 1, length]}
    if length >= FAR_START:
        out["far"] = [max(FAR_START, context + 1), length]
    return out


def _index(window: list[int], context: int) -> slice:
    """A window's frames as a slice of the predicted frames (index 0 = frame context + 1)."""
    return slice(window[0] - context - 1, window[1] - context)


def model_predictor(model, batch_size: int):
    """Closed-loop rollout of a TAP, H-TAP or ConvLSTM from the first `model.context` frames."""

    def predict(sequences):
        clips = sequences[..., None].astype(np.float32)  # (b, T, H, W, 1)
        predicted = model.predict(clips, batch_size=batch_size, verbose=0)[..., 0]  # (b, T - 1, H, W)
        return predicted[:, model.context - 1 :]  # frames context+1..T

    return predict


def blank_predictor(context: int):
    return lambda sequences: np.zeros_like(sequences[:, context:], dtype=np.float32)


def last_frame_predictor(context: int):
    def predict(sequences):
        last = sequences[:, context - 1 : context].astype(np.float32)
        return np.repeat(last, sequences.shape[1] - context, axis=1)

    return predict


def mean_frame(clips: np.ndarray) -> np.ndarray:
    """Per-pixel mean of every frame of (N, T, H, W) uint8 training clips, in [0, 1]: (H, W)."""
    return clips.mean(axis=(0, 1), dtype=np.float64).astype(np.float32) / 255.0


def mean_frame_predictor(frame: np.ndarray, context: int):
    """The same (H, W) frame at every predicted step, whatever the sequence."""

    def predict(sequences):
        return np.broadcast_to(frame, (len(sequences), sequences.shape[1] - context, *frame.shape)).copy()

    return predict


def trajectory_oracle_predictor(pool: np.ndarray, layout, context: int, direction_noise_deg: float,
                                samples: int = 64, seed: int = 0):
    """An observer told what no model is: each sequence's digits, starts and speed, and the bounce
    physics, with each direction known up to Gaussian noise of `direction_noise_deg` degrees. It
    predicts the mean of `samples` renderings with directions drawn around the true ones, its
    MSE-best prediction. The ladder over the noise says how well a model must track the digits to
    reach a given MSE; with no noise it renders the test set itself.

    `layout` is the test set's `moving_mnist.Layout`; `evaluate` passes the sequences chunk by chunk
    in order, and each one is checked against its layout's first frame.
    """
    cursor = [0]  # index in `layout` of the next sequence `evaluate` passes
    noise = np.deg2rad(direction_noise_deg)

    def predict(sequences):
        n, length, canvas = sequences.shape[:3]
        out = np.empty((n, length - context, canvas, canvas), np.float32)
        for i, j in enumerate(range(cursor[0], cursor[0] + n)):
            one = moving_mnist.Layout(*(np.repeat(a[j : j + 1], samples, axis=0)
                                        for a in (layout.chosen, layout.start, layout.theta)))
            if not np.array_equal(moving_mnist.render(pool, one, 1, canvas)[0, 0],
                                  np.round(sequences[i, 0] * 255).astype(np.uint8)):
                raise ValueError(f"test sequence {j} is not the one its layout renders")
            rng = np.random.default_rng([seed, j])  # the same draws however the sequences are chunked
            drawn = moving_mnist.Layout(one.chosen, one.start, one.theta + rng.normal(0.0, noise, one.theta.shape))
            frames = moving_mnist.render(pool, drawn, length, canvas)[:, context:]  # (samples, T - context, H, W)
            out[i] = frames.mean(axis=0, dtype=np.float32) / 255.0
        cursor[0] += n
        return out

    return predict


def reconstruction_predictor(predictor, context: int, batch_size: int):
    """The codec's reconstruction of the true frames context+1..T: the floor of latent models."""

    def predict(sequences):
        truth = sequences[:, context:, ..., None].astype(np.float32)  # (b, T - context, H, W, 1)
        out = []
        for lo in range(0, len(truth), batch_size):
            batch = ops.convert_to_tensor(truth[lo : lo + batch_size])
            out.append(ops.convert_to_numpy(predictor.decode(predictor.encode(batch)))[..., 0])
        return np.concatenate(out)

    return predict


def evaluate(predict, sequences, context: int, chunk: int = 64, keep: int = 0, desc: str = "evaluating") -> dict:
    """Run `predict` over the sequences in chunks (a large test file never needs all predictions in
    memory). Returns per-frame means over sequences (context+1..T), per-sequence window means,
    the windows, and the first `keep` predictions."""
    length = sequences.shape[1]
    wins = windows(context, length)
    frames = FrameMetrics(_MEASURED)
    per_sequence = {name: {metric: [] for metric in PER_SEQUENCE} for name in wins}
    kept = []
    for lo in progress(range(0, len(sequences), chunk), desc=desc):
        truth = np.asarray(sequences[lo : lo + chunk], dtype=np.float32)  # (b, T, H, W)
        predicted = predict(truth)  # (b, T - context, H, W)
        future = truth[:, context:]
        values = frames.update(future, predicted)  # each metric per sequence and frame, (b, T - context)
        for name, window in wins.items():
            frames_in = _index(window, context)
            means = window_means({m: values[m] for m in PER_SEQUENCE}, frames_in.start, frames_in.stop)  # (b,) each
            for metric in PER_SEQUENCE:
                per_sequence[name][metric].append(means[metric])
        if sum(len(k) for k in kept) < keep:
            kept.append(predicted[: keep - sum(len(k) for k in kept)])
    return {
        "windows": wins,
        "per_frame": frames.result(),
        "per_sequence": {name: {m: np.concatenate(v) for m, v in metrics.items()} for name, metrics in per_sequence.items()},
        "examples": np.concatenate(kept) if kept else None,
    }


def to_arrays(evaluation: dict) -> dict[str, np.ndarray]:
    """An `evaluate` result as flat arrays for np.savez; `from_arrays` inverts it."""
    arrays = {"windows": np.array(json.dumps(evaluation["windows"]))}
    arrays.update({f"per_frame/{m}": v for m, v in evaluation["per_frame"].items()})
    arrays.update({f"per_sequence/{w}/{m}": v for w, metrics in evaluation["per_sequence"].items()
                   for m, v in metrics.items()})
    if evaluation["examples"] is not None:
        arrays["examples"] = evaluation["examples"]
    return arrays


def from_arrays(arrays: dict) -> dict:
    evaluation = {"windows": json.loads(str(arrays["windows"])), "per_frame": {}, "per_sequence": {},
                  "examples": arrays.get("examples")}
    for name, value in arrays.items():
        parts = name.split("/")
        if parts[0] == "per_frame":
            evaluation["per_frame"][parts[1]] = value
        elif parts[0] == "per_sequence":
            evaluation["per_sequence"].setdefault(parts[1], {})[parts[2]] = value
    return evaluation


def window_scores(evaluation: dict, context: int) -> dict[str, float]:
    """`{metric}_{window}` means of the per-frame curves, e.g. mse_far, skill_short (the skill of a
    window is 1 - its mean MSE / its mean blank MSE, not a mean of per-frame skills)."""
    out = {}
    curves = evaluation["per_frame"]
    for name, window in evaluation["windows"].items():
        frames = _index(window, context)
        for metric in PER_FRAME:
            if metric != "skill":
                out[f"{metric}_{name}"] = float(np.mean(curves[metric][frames]))
        out[f"skill_{name}"] = float(1.0 - curves["mse"][frames].mean() / curves["mse_blank"][frames].mean())
    return out


def attention_analysis(model, sequences: np.ndarray) -> dict:
    """H-TAP's weights over the whole rollout, averaged over latent cells: span per layer and
    head, per prediction step, and the mean map of the last layer."""
    clips = ops.convert_to_tensor(sequences[..., None].astype(np.float32))
    per_layer = [ops.convert_to_numpy(w) for w in model.attention_maps(clips)]  # L x (B*g*g, nh, T-1, T-1)
    n = per_layer[0].shape[-1]
    allowed = np.tril(np.ones((n, n), bool))
    report = span_report({f"layer{i + 1}": w for i, w in enumerate(per_layer)}, allowed)
    rollout_rows = slice(model.context - 1, n)  # queries that predict frames context+1..T
    report["rollout"] = span_report({f"layer{i + 1}": w[:, :, rollout_rows] for i, w in enumerate(per_layer)},
                                    allowed[rollout_rows])
    span_by_step = np.stack([per_query_span(w).mean(axis=0) for w in per_layer])  # (L, nh, T-1)
    return {
        "report": report,
        "span_by_step": span_by_step,
        "mean_weights_last_layer": per_layer[-1].mean(axis=(0, 1)),  # (T-1, T-1)
    }


def clear_backend_memory() -> None:
    keras.backend.clear_session(free_memory=True)
