"""Data-parallel training on several devices and hosts, with each backend's own engine.

`configure(strategy)` is called once per process before any model is built; experiments then
build and compile their models inside `context.scope()`, wrap their training `PyDataset` in
`context.shard(...)`, and train with `training.fit` as on one device:

    context = distributed.configure("data-parallel")
    with context.scope():
        model = build_model(config)          # constructor and compile
    training.fit(model, context.shard(train_batches), ...)

What each backend runs:

- jax: `keras.distribution.DataParallel` over `keras.distribution.list_devices()`, set globally
  with `keras.distribution.set_distribution`: one process drives all local devices and Keras
  splits every batch across them. Several hosts: one process per host, joined by
  `keras.distribution.initialize()` (which calls `jax.distributed.initialize`) when
  KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID are set.
- tensorflow: `tf.distribute.MirroredStrategy` over the local GPUs (or the given devices); the
  model is built and compiled in `context.scope()` and Keras splits every batch across replicas.
  One host only (MultiWorkerMirroredStrategy is not wired).
- torch: one process per device started by `torchrun`, joined by `torch.distributed` (nccl on
  GPU, gloo on CPU). Keras 3.15's torch trainer has no distribution support: `fit` calls
  `self(x)` and then `optimizer.apply(grads)`, so wrapping the model in
  `torch.nn.parallel.DistributedDataParallel` (Keras guide "Multi-GPU distributed training with
  PyTorch") only works with a hand-written training loop, which would bypass `training.fit`
  (resume, MLflow logging, callbacks). Instead `DataParallelSync`, a callback that
  `training.fit` adds, does what DDP does with public torch API: at the start of training it
  broadcasts rank 0's model and optimizer variables, and during training a post-accumulate-grad
  hook on every trainable parameter replaces its gradient by the mean over processes before the
  optimizer sees it. Same update as DDP; the difference is speed: one all-reduce per parameter
  tensor, not bucketed and not overlapped with the backward pass. Keras's upstream torch
  DataParallel (keras-team/keras#23316, DDP inside the trainer) is the replacement once the
  pinned Keras ships it.

Batch semantics, on every backend: `--batch-size` is the GLOBAL batch. Each of P processes gets
rows [p*B/P, (p+1)*B/P) of every batch (`ShardedBatches`), the per-process layout that
`jax.make_array_from_process_local_data` expects, and devices within a process split their
process's rows. So steps per epoch, learning rate and the sequence of updates are those of a
single-device run with the same batch size (up to float summation order), and a result does not
depend on the device count. The batch size must divide evenly by the number of replicas
(`ShardedBatches` checks). Every process builds the whole batch and keeps its rows: data must be
deterministic per batch index (as `SequenceBatches` is) and shuffling seeded identically on all
processes. Only a `PyDataset` is split: numpy arrays handed to `fit` reach every torch process
whole, which trains correctly but gains nothing.

tests/test_distributed.py checks on CPU that two workers end with the weights of one worker fed
the combined batch: torch (two processes under torchrun, gloo; a conv net and an H-TAP),
tensorflow (two logical CPUs) and jax (two host devices; skipped unless jax is installed).

Limits, all stated where they matter:
- Validation data is not sharded: every process evaluates all of it, so validation metrics are
  exact and identical. The per-epoch training logs are averaged over processes at epoch end.
- Randomness inside the model (dropout) draws the same masks on every process, each on its own
  rows: unbiased, slightly more correlated than one device's masks.
- A model must use every trainable parameter on every step, in the same order on all processes
  (no data-dependent branches): a parameter without a gradient on one process would leave the
  others waiting in the all-reduce (true of DDP without find_unused_parameters too).
- Processes other than rank 0 run the same code, so their collectives match, but write their
  outputs and MLflow runs under `<out>/.workers/rank<r>/` (`worker_outputs`): results.json and the
  MLflow store hold rank 0's, and each rank keeps its own BackupAndRestore state for resuming.
"""

import atexit
import numbers
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from seqattn.errors import ConfigError

STRATEGIES = ("none", "data-parallel")
_WORKERS_DIR = ".workers"


@dataclass
class Context:
    """Where this process stands in a data-parallel job.

    Attributes:
        strategy: "none" or "data-parallel".
        process_index: this process's rank among `process_count` processes (torchrun ranks, JAX
            processes); 0 is the chief, the one that writes results.
        process_count: processes training in step.
        num_replicas: model replicas in step over all processes (devices for jax/tensorflow,
            processes for torch): the global batch is split into this many equal parts.
    """

    strategy: str = "none"
    process_index: int = 0
    process_count: int = 1
    num_replicas: int = 1
    tf_strategy: object = field(default=None, repr=False)

    @property
    def is_chief(self) -> bool:
        return self.process_index == 0

    def scope(self):
        """Build and compile models in this scope (needed by tensorflow, harmless elsewhere)."""
        return self.tf_strategy.scope() if self.tf_strategy is not None else nullcontext()

    def shard(self, dataset: keras.utils.PyDataset) -> keras.utils.PyDataset:
        """This process's rows of every global batch of `dataset` (unchanged on one replica)."""
        if self.num_replicas == 1:
            return dataset
        return ShardedBatches(dataset, self.process_index, self.process_count, self.num_replicas)

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """Callbacks `training.fit` adds before its MLflow logging (torch processes only)."""
        if keras.backend.backend() == "torch" and self.process_count > 1:
            return [DataParallelSync()]
        return []

    def worker_outputs(self, out: str, tracking_uri: str | None) -> tuple[str, str | None]:
        """(out, tracking URI) for this process: unchanged on the chief, private on the others.

        A worker also forgets a sweep's parent run (seqattn.sweep), which its store does not hold.
        """
        if self.is_chief:
            return out, tracking_uri
        from seqattn import tracking

        os.environ.pop(tracking.PARENT_RUN_ENV, None)
        folder = Path(out).resolve() / _WORKERS_DIR / f"rank{self.process_index}"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder), f"sqlite:///{folder / 'mlflow.db'}"


_current = Context()


def current() -> Context:
    """The context set by the last `configure` (single-process "none" before any)."""
    return _current


def configure(strategy: str = "none", devices: list[str] | None = None) -> Context:
    """Set up data parallelism for this process's backend and return the context.

    `devices` narrows jax's or tensorflow's local devices (e.g. ["/cpu:0", "/cpu:1"] for
    MirroredStrategy); torch takes one device per process from torchrun's LOCAL_RANK.
    """
    global _current
    if strategy not in STRATEGIES:
        raise ConfigError(f"--distribute must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if strategy == "none":
        _current = Context()
        return _current
    backend = keras.backend.backend()
    if backend == "jax":
        _current = _configure_jax(devices)
    elif backend == "tensorflow":
        _current = _configure_tensorflow(devices)
    elif backend == "torch":
        if devices is not None:
            raise ConfigError("torch takes its device from torchrun's LOCAL_RANK; do not pass devices")
        _current = _configure_torch()
    else:
        raise ConfigError(f"--distribute data-parallel is not available on the {backend!r} backend")
    return _current


def _configure_jax(devices) -> Context:
    import jax

    if "KERAS_DISTRIBUTION_NUM_PROCESSES" in os.environ or "KERAS_DISTRIBUTION_JOB_ADDRESSES" in os.environ:
        keras.distribution.initialize()
    devices = devices or keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Context("data-parallel", jax.process_index(), jax.process_count(), len(devices))


def _configure_tensorflow(devices) -> Context:
    import tensorflow as tf

    if "TF_CONFIG" in os.environ:
        raise ConfigError("TF_CONFIG is set, but only one-host MirroredStrategy is supported on tensorflow; "
                          "use the jax or torch backend across hosts")
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return Context("data-parallel", 0, 1, strategy.num_replicas_in_sync, tf_strategy=strategy)


def _configure_torch() -> Context:
    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:  # plain `python`/`seqattn`: one process, one device
        return Context("data-parallel")
    if not dist.is_initialized():
        if torch.cuda.is_available():
            # Keras places tensors on "cuda", which means the current device: make it this rank's.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(dist.destroy_process_group)
    world = dist.get_world_size()
    return Context("data-parallel", dist.get_rank(), world, world)


class ShardedBatches(keras.utils.PyDataset):
    """Process `index`'s contiguous block of rows of every batch of `dataset`.

    Everything else (length, epoch bookkeeping such as `SequenceBatches.epoch_callback`) is the
    wrapped dataset's, so all processes walk the same batch sequence in step.
    """

    def __init__(self, dataset: keras.utils.PyDataset, index: int, count: int, num_replicas: int):
        super().__init__(workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        if not 0 <= index < count or num_replicas % count:
            raise ConfigError(f"process {index} of {count} cannot share {num_replicas} replicas evenly")
        self.dataset, self.index, self.count, self.num_replicas = dataset, index, count, num_replicas

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # e.g. SequenceBatches.epoch_callback, batch_seed
        if name == "dataset":  # not set yet: avoid recursing while unpickling
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _rows(self, array, batch_index: int):
        size = array.shape[0]
        if size % self.num_replicas:
            raise ConfigError(
                f"batch {batch_index} has {size} rows, which {self.num_replicas} replicas cannot share "
                f"evenly: make the global batch size a multiple of {self.num_replicas}"
            )
        part = size // self.count
        return array[self.index * part:(self.index + 1) * part]  # (B / P, ...)

    def __getitem__(self, index: int):
        batch = self.dataset[index]
        return keras.tree.map_structure(lambda a: self._rows(np.asarray(a), index), batch)

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class DataParallelSync(keras.callbacks.Callback):
    """Keeps torch processes in step inside `model.fit`: what DDP does, with public torch API.

    At train begin (after BackupAndRestore has restored), rank 0's model and optimizer variables
    are broadcast. During training each trainable parameter's gradient, once accumulated, is
    replaced by its mean over processes, so every process applies the same update. At epoch end
    the numeric logs are averaged, so the logged training loss is the global batch's.
    """

    def __init__(self):
        super().__init__()
        self._hooks = []

    def on_train_begin(self, logs=None):
        import torch
        import torch.distributed as dist

        variables = list(self.model.variables)
        if self.model.optimizer is not None and self.model.optimizer.built:
            variables += list(self.model.optimizer.variables)
        with torch.no_grad():
            for variable in variables:
                dist.broadcast(variable.value.data, src=0)
        world = dist.get_world_size()

        def average(param):
            dist.all_reduce(param.grad)  # sum; ReduceOp.AVG exists on nccl only
            param.grad.div_(world)

        self._hooks = [v.value.register_post_accumulate_grad_hook(average) for v in self.model.trainable_variables]

    def on_train_end(self, logs=None):
        for hook in self._hooks:
            hook.remove()  # evaluate/predict and later gradients outside fit stay local
        self._hooks = []

    def on_epoch_end(self, epoch, logs=None):
        import torch
        import torch.distributed as dist

        names = sorted(name for name, value in (logs or {}).items()
                       if isinstance(value, numbers.Real) or getattr(value, "ndim", None) == 0)
        if not names:
            return
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # nccl reduces GPU tensors only
        values = torch.tensor([float(logs[name]) for name in names], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        values /= dist.get_world_size()
        logs.update(dict(zip(names, values.tolist())))
