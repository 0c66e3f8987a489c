"""`seqattn video evaluate --checkpoint MODEL.keras --test-set FILE.npy`: a saved TAP, H-TAP or
ConvLSTM on a sequence file a user brings (e.g. the official `mnist_test_seq.npy`), through the
same evaluation and metrics as the study."""

import argparse
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from seqattn import tracking
from seqattn.data import moving_mnist
from seqattn.errors import ConfigError
from seqattn.experiments import video_eval, video_report
from seqattn.experiments.common import write_outputs
from seqattn.io import ensure_writable_dir


def _load_checkpoint(path: Path) -> keras.Model:
    """A saved TAP, H-TAP or ConvLSTM; ConfigError naming the file for anything else."""
    # Keras reports a file that is not a zip archive as "File not found".
    reason = None if zipfile.is_zipfile(path) else "not a zip archive"
    if reason is None:
        try:
            model = keras.models.load_model(path, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - keras raises many types for a bad archive
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if reason is not None:
        raise ConfigError(f"--checkpoint {str(path)!r} is not a readable .keras model ({reason})")
    if not hasattr(model, "frame_size"):
        raise ConfigError(f"--checkpoint {str(path)!r} holds a {type(model).__name__}, not a TAP, H-TAP or "
                          "ConvLSTM video model")
    return model


def run_evaluation(args: argparse.Namespace) -> dict:
    if not args.checkpoint or not args.test_set:
        raise ConfigError("seqattn video evaluate needs --checkpoint MODEL.keras and --test-set FILE.npy")
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        problem = "is not a file" if checkpoint.exists() else "does not exist"
        raise ConfigError(f"--checkpoint {str(checkpoint)!r} {problem}")
    model = _load_checkpoint(checkpoint)
    if args.context is not None:
        model.context = args.context  # every model's rollout works from any number of observed frames
    size = model.frame_size
    sequences = moving_mnist.load_sequences(args.test_set, args.layout, min_length=model.context + 1,
                                            frame_size=(size, size))
    out = ensure_writable_dir(Path(args.out) / "video" / "evaluate")  # after the inputs are checked
    started = time.time()
    with tracking.start_run("video", f"evaluate-{checkpoint.stem}", tracking_uri=args.tracking_uri,
                            config={"checkpoint": str(checkpoint), "test_set": str(args.test_set),
                                    "context": model.context, "layout": args.layout}):
        evaluation = video_eval.evaluate(video_eval.model_predictor(model, 16), sequences, model.context, keep=1,
                                         desc=f"{model.name} on {Path(args.test_set).name}")
        numbers = video_eval.window_scores(evaluation, model.context)
        tracking.log_metrics(numbers)
        tracking.log_curve("test_mse_per_frame", evaluation["per_frame"]["mse"], first_step=model.context + 1)
        results = {
            "part": "video",
            "mode": "evaluate",
            "checkpoint": str(checkpoint),
            "model": model.name,
            "test_set": str(args.test_set),
            "sequences": int(sequences.shape[0]),
            "frames": int(sequences.shape[1]),
            "context": model.context,
            "windows": evaluation["windows"],
            "backend": keras.backend.backend(),
            "metrics": numbers,
            "per_frame": {k: np.asarray(v).tolist() for k, v in evaluation["per_frame"].items()},
            "wall_time_s": time.time() - started,
        }
        paths = video_report.write_evaluation_figures(model.name, evaluation, sequences[:1], model.context,
                                                      Path(args.test_set).name, out)
        table = video_report.metrics_table(numbers)
        write_outputs(out, results, f"# {model.name} on {Path(args.test_set).name}\n\n{table}\n", paths)
    print(table)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return results

