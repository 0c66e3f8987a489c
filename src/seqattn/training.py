"""Training that survives interruption, logged to MLflow.

`resumable_run` keeps the MLflow run id in the run's state folder, so rerunning the same command
after a crash continues that run instead of opening an orphan one, and holds the folder for its
process (an OS lock on `owner.lock`, which names the pid), so the same command started twice
trains once: the second stops with the first one's pid. `fit` wraps `model.fit` with
`keras.callbacks.BackupAndRestore`, which saves weights, optimizer and epoch at every epoch end
and restores them when training starts again, with `EpochSeeding`, which reseeds the global
random generators and the model's dropout generators at every epoch start, so that a resumed run
draws what an uninterrupted one draws, and with `EarlyStoppingBackup`, which keeps early stopping's
state across the interruption. Arrays to shuffle are batched by `data.batches.ShuffledArrays`,
whose order depends on (seed, epoch) alone: Keras's own shuffle restarts its random state with a
resumed run on tensorflow.
"""

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import keras
import mlflow
import numpy as np

from seqattn import distributed, tracking
from seqattn.data.batches import ShuffledArrays
from seqattn.errors import RunInUseError
from seqattn.io import LockHeld, atomic_path, exclusive_lock, write_json_atomic

_RUN_ID_FILE = "mlflow_run_id"
_OWNER_FILE = "owner.lock"


def _unfinished_run_id(state_dir: Path) -> str | None:
    id_file = state_dir / _RUN_ID_FILE
    if not id_file.is_file():
        return None
    run_id = id_file.read_text().strip()
    try:
        status = mlflow.get_run(run_id).info.status
    except mlflow.exceptions.MlflowException:
        return None  # the store was replaced: start afresh
    return run_id if status != "FINISHED" else None


@contextmanager
def resumable_run(part: str, run_name: str, state_dir: str | os.PathLike, **start_run_kwargs) -> Iterator:
    """Like `tracking.start_run`, but reopens the unfinished run recorded in `state_dir`, which
    this process holds meanwhile: another process already in it raises RunInUseError.

    The lock is the OS's, released when its process ends however it ends, so a run killed with
    kill -9 resumes as before; without it two identical commands would share one MLflow run and
    one BackupAndRestore folder, and log every epoch twice.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(state_dir / _OWNER_FILE, wait=False))
        except LockHeld as other:
            owner = "another seqattn process" if other.pid is None else f"seqattn process {other.pid}"
            raise RunInUseError(f"{state_dir} is in use by {owner}: wait for it to end, or stop it, "
                                f"then rerun") from None
        if not start_run_kwargs.get("nested"):
            tracking.configure(start_run_kwargs.get("tracking_uri"))
        run_id = _unfinished_run_id(state_dir)
        with tracking.start_run(part, run_name, run_id=run_id, **start_run_kwargs) as run:
            with atomic_path(state_dir / _RUN_ID_FILE) as tmp:
                tmp.write_text(run.info.run_id)
            yield run
        (state_dir / _RUN_ID_FILE).unlink(missing_ok=True)


class EpochSeeding(keras.callbacks.Callback):
    """Seeds python, numpy and backend generators with (seed, epoch) when an epoch starts, and the
    model's own: the `SeedGenerator` of each dropout layer keeps its state in a variable that weight
    backups leave out, so a resumed run would otherwise draw other dropout masks."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        epoch_seed = (self.seed * 100_003 + epoch) % 2**31
        keras.utils.set_random_seed(epoch_seed)
        states = [v for v in self.model.non_trainable_variables if v.name == "seed_generator_state"]
        for i, state in enumerate(states):
            state.assign(np.array([(epoch_seed + 7_919 * (i + 1)) % 2**31, 0], dtype=state.dtype))


class EarlyStoppingBackup(keras.callbacks.Callback):
    """Backs up the state of `EarlyStopping` callbacks (epochs waited, best value, best weights)
    at every epoch end, and restores it when training resumes.

    BackupAndRestore saves the model, the optimizer and the epoch only: without this a resumed run
    counts early stopping's patience from zero and restores the best weights of the resumed epochs
    only, so it stops later and ends with other weights than an uninterrupted run. It must come
    after the callbacks it backs up, to save their state once they have seen the epoch. The files
    live in BackupAndRestore's folder, which that callback deletes when training ends.
    """

    def __init__(self, folder: str | os.PathLike, callbacks=()):
        super().__init__()
        self.folder = Path(folder)
        self.stoppers = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
        self._started = False

    def _path(self, epoch: int) -> Path:
        return self.folder / f"early_stopping_epoch{epoch}.npz"  # the state once `epoch` epochs are done

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._started or not self.stoppers:
            return
        self._started = True  # the first epoch of this fit, the one BackupAndRestore resumes at
        path = self._path(epoch)
        if epoch == 0:
            return
        if not path.is_file():
            warnings.warn(f"{path} is missing: early stopping restarts at epoch {epoch + 1}")
            return
        with np.load(path) as saved:
            states = json.loads(str(saved["states"]))
            for i, (stopper, state) in enumerate(zip(self.stoppers, states)):
                stopper.wait, stopper.best = state["wait"], state["best"]
                stopper.best_epoch, stopper.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
                if state["weights"]:
                    stopper.best_weights = [saved[f"stopper{i}_weight{j}"] for j in range(state["weights"])]

    def on_epoch_end(self, epoch, logs=None):
        if not self.stoppers:
            return
        arrays, states = {}, []
        for i, stopper in enumerate(self.stoppers):
            weights = stopper.best_weights or []
            arrays.update({f"stopper{i}_weight{j}": w for j, w in enumerate(weights)})
            best = None if stopper.best is None else float(stopper.best)
            states.append({"wait": stopper.wait, "best": best, "best_epoch": stopper.best_epoch,
                           "stopped_epoch": stopper.stopped_epoch, "weights": len(weights)})
        with atomic_path(self._path(epoch + 1)) as tmp, open(tmp, "wb") as f:
            np.savez(f, states=np.array(json.dumps(states)), **arrays)
        self._path(epoch).unlink(missing_ok=True)


_CLOCK_FILE = "train_time.json"


def train_seconds(state_dir: str | os.PathLike) -> float:
    """Seconds `fit` has trained in `state_dir`, over every call that resumed it (0 before any epoch)."""
    path = Path(state_dir) / _CLOCK_FILE
    return json.loads(path.read_text())["seconds"] if path.is_file() else 0.0


class TrainingClock(keras.callbacks.Callback):
    """Seconds of training summed over the calls that resumed one run, kept in `path` after every
    epoch: a run resumed after an interruption reports the epochs it ran before it, too (an epoch
    cut short is lost with its weights and not counted)."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self.before = json.loads(self.path.read_text())["seconds"] if self.path.is_file() else 0.0
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        write_json_atomic(self.path, {"seconds": self.seconds})


def _first_batch(x):
    """Two rows of the inputs (arrays, dict of arrays, or a PyDataset) to build a model with."""
    if isinstance(x, keras.utils.PyDataset):
        batch = x[0]
        return batch[0] if isinstance(batch, tuple) else batch
    if isinstance(x, dict):
        return {name: values[:2] for name, values in x.items()}
    return x[:2]


def _discard_unfinished_first_backup(backup_dir: Path) -> None:
    """Remove a backup whose first save was cut short, so training starts over from epoch 0.

    BackupAndRestore writes the weights, then the epoch they belong to. Weights with no epoch
    record and no previous backup are the first epoch's save killed midway: a half-written file
    Keras cannot open (and no older one to fall back to), or complete weights it would resume from
    as if no epoch had run.
    """
    if (backup_dir / "latest.weights.h5").exists() and not (backup_dir / "training_metadata.json").exists() \
            and not (backup_dir / "latest.weights.h5.bkp").exists():
        shutil.rmtree(backup_dir)


def _arrays(x, y) -> bool:
    """Inputs and targets given as numpy arrays (or dicts or tuples of them): what Keras shuffles."""
    return y is not None and all(isinstance(a, np.ndarray) for a in keras.tree.flatten((x, y)))


def _shuffled_batches(x, y, seed: int, fit_kwargs: dict, callbacks) -> tuple:
    """Arrays as `ShuffledArrays` batches, with Keras's `validation_split` (the last rows, before
    shuffling; ignored when `validation_data` is given, as Keras does) made explicit: `fit`'s
    arguments for them. Every process of a distributed run gets the whole batch, as Keras gives arrays."""
    fit_kwargs = dict(fit_kwargs)
    split = fit_kwargs.pop("validation_split", 0.0)
    if split and fit_kwargs.get("validation_data") is None:
        rows = len(keras.tree.flatten(x)[0])
        split_at = int(math.floor(rows * (1.0 - split)))  # as Keras splits
        if not 0 < split_at < rows:
            raise ValueError(f"validation_split={split} leaves no training or no validation rows of {rows}")
        head, tail = (keras.tree.map_structure(lambda a, s=s: a[s], (x, y))
                      for s in (slice(None, split_at), slice(split_at, None)))
        (x, y), fit_kwargs["validation_data"] = head, tail
    batch_size = fit_kwargs.pop("batch_size", None) or 32  # Keras's default
    fit_kwargs.setdefault("validation_batch_size", batch_size)  # as Keras validates arrays
    batches = ShuffledArrays(x, y, batch_size, seed)
    return batches, None, {**fit_kwargs, "shuffle": False}, [batches.epoch_callback(), *callbacks]


def fit(model, x, y=None, *, epochs: int, state_dir: str | os.PathLike, seed: int, callbacks=(), **fit_kwargs):
    """`model.fit` that resumes from the last completed epoch saved under `state_dir`.

    A run resumed after interruption ends with the same weights as an uninterrupted one; the
    returned history holds the epochs this call ran (`history.epoch` counts from the resume), and
    `train_seconds(state_dir)` the seconds trained over every call. Arrays to shuffle (Keras's
    default) are batched by `ShuffledArrays`, `validation_split` included. Under
    `distributed.configure`, the context's callbacks keep processes in step (before MLflow logs
    the epoch), and only the chief process prints progress.
    """
    context = distributed.current()
    if not context.is_chief:
        fit_kwargs["verbose"] = 0
    if not model.built:  # BackupAndRestore must load weights into variables that exist
        with context.scope():  # tensorflow: variables built outside the strategy are not mirrored
            model(_first_batch(x))
    if _arrays(x, y) and fit_kwargs.get("shuffle", True):
        x, y, fit_kwargs, callbacks = _shuffled_batches(x, y, seed, fit_kwargs, callbacks)
    backup_dir = Path(state_dir) / "backup"
    _discard_unfinished_first_backup(backup_dir)
    if not backup_dir.exists():  # a fresh start, not a resume: earlier calls' seconds do not count
        (Path(state_dir) / _CLOCK_FILE).unlink(missing_ok=True)
    # double_checkpoint keeps the previous epoch's backup, so a kill while Keras writes the newest
    # one (weights, then metadata, neither atomic) resumes from the one before, not a corrupt file.
    backup = keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True, delete_checkpoint=True)
    return model.fit(
        x, y, epochs=epochs,
        callbacks=[backup, EpochSeeding(seed), TrainingClock(Path(state_dir) / _CLOCK_FILE), *context.callbacks(),
                   tracking.MLflowCallback(), *callbacks,
                   EarlyStoppingBackup(backup_dir, callbacks)],
        **fit_kwargs,
    )
