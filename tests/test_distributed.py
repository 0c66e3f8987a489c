"""Data-parallel training: workers that each see part of every batch train in step with one worker.

Two workers on this CPU machine, each backend with its own engine: torch as two processes under
torchrun (gloo), tensorflow as MirroredStrategy over two logical CPUs, jax as DataParallel over
two host devices (XLA_FLAGS). After 6 steps (SGD with momentum, and Adam) on a global batch of
8, the weights must match those of a single worker fed the whole batch, up to float summation
order. The workers run in subprocesses, because a process group, logical devices and XLA flags
are fixed per process; this file is also the workers' script
(`python tests/test_distributed.py <mode> <out>`). The subprocesses choose their backend, so
the tests are not marked `backend`: running them again under another pytest backend would
repeat the same work.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from seqattn import distributed, training
from seqattn.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH, STEPS, EPOCHS = 8, 3, 2


class FixedBatches(keras.utils.PyDataset):
    """Batch i is the same on every process: (x (B, 4, 8, 8, 1) clips, y next frames)."""

    def __init__(self, batch_size=GLOBAL_BATCH, steps=STEPS):
        super().__init__()
        self.batch_size, self.steps = batch_size, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        clips = np.random.default_rng(index).uniform(size=(self.batch_size, 4, 8, 8, 1)).astype("float32")
        return clips, clips[:, 1:]  # (B, 4, 8, 8, 1), (B, 3, 8, 8, 1)


def build_models(names=("conv", "htap")) -> dict[str, keras.Model]:
    """A small conv net and a tiny H-TAP (the Part 3 transformer predictor), same init per seed."""
    from seqattn.models.video import HTAP

    keras.utils.set_random_seed(0)
    conv = keras.Sequential([
        keras.Input((4, 8, 8, 1)),
        keras.layers.Lambda(lambda clip: clip[:, :3]),
        keras.layers.TimeDistributed(keras.layers.Conv2D(4, 3, padding="same", activation="tanh")),
        keras.layers.TimeDistributed(keras.layers.Conv2D(1, 3, padding="same")),
    ])
    htap = HTAP(context=2, latent_channels=2, codec_widths=(4,), token_patch=2, frame_size=8, d_model=8,
                num_layers=1, num_heads=2, ff_dim=16)
    # SGD's update is proportional to the gradient, so a sum instead of a mean over workers
    # shows; Adam's is not, but carries per-weight state that must stay in step.
    conv.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    htap.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return {name: model for name, model in {"conv": conv, "htap": htap}.items() if name in names}


def train(models: dict, state_dir: Path) -> dict:
    """Fit every model through `training.fit`; return weights and per-epoch losses."""
    context = distributed.current()
    result = {}
    for name, model in models.items():
        history = training.fit(model, context.shard(FixedBatches()), epochs=EPOCHS, state_dir=state_dir / name,
                               seed=0, shuffle=False, verbose=0)
        result[name] = {"weights": [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.get_weights()],
                        "loss": history.history["loss"]}
    return result


def save(result: dict, path: Path) -> None:
    arrays = {f"{name}/{i}": w for name, r in result.items() for i, w in enumerate(r["weights"])}
    np.savez(path.with_suffix(".npz"), **arrays)
    path.with_suffix(".json").write_text(json.dumps({name: r["loss"] for name, r in result.items()}))


def load(path: Path) -> dict:
    arrays = np.load(path.with_suffix(".npz"))
    losses = json.loads(path.with_suffix(".json").read_text())
    return {name: {"weights": [arrays[f"{name}/{i}"] for i in range(sum(k.startswith(f"{name}/") for k in arrays))],
                   "loss": loss} for name, loss in losses.items()}


def worker(mode: str, out: Path) -> None:
    """torchrun: one of several processes; single: one process; devices: reference, then two devices."""
    if mode == "torchrun":
        context = distributed.configure("data-parallel")
        save(train(build_models(), out / f"rank{context.process_index}"), out / f"rank{context.process_index}")
        return
    devices = None
    if mode == "devices" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # logical devices must be set before tensorflow starts its runtime

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        devices = ["/cpu:0", "/cpu:1"]
    # jax and tensorflow split batches inside Keras's own engines: the conv net suffices there
    # (and tensorflow's tracing of the H-TAP rollout alone would take a minute).
    names = ("conv", "htap") if mode == "single" else ("conv",)
    save(train(build_models(names), out / "reference"), out / "reference")
    if mode == "single":
        return
    context = distributed.configure("data-parallel", devices=devices)
    assert context.num_replicas == 2, context
    with context.scope():
        models = build_models(names)
    save(train(models, out / "parallel"), out / "parallel")


def _run(command: list[str], env: dict, timeout: int = 240) -> None:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def _env(backend: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "XLA_"))}
    env.update(KERAS_BACKEND=backend, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]), **extra)
    return env


def assert_in_step(parallel: dict, reference: dict) -> None:
    for name in reference:
        # A wrong, missing or unaveraged gradient moves weights by ~1e-2 per step, far above these
        # tolerances; summation order alone stays below 1e-5.
        for got, want in zip(parallel[name]["weights"], reference[name]["weights"], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(parallel[name]["loss"], reference[name]["loss"], rtol=1e-5, err_msg=name)
        assert reference[name]["loss"][-1] < reference[name]["loss"][0], name  # it trained


@pytest.mark.slow
def test_two_torch_processes_train_in_step_with_one_worker_on_the_combined_batch(tmp_path, free_port):
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port}",
               __file__, "torchrun", str(tmp_path)]
    _run(command, _env("torch"))
    # The reference: one worker, whole batches, the same training.fit path (here when on torch).
    if keras.backend.backend() == "torch":
        reference = train(build_models(), tmp_path / "reference")
    else:
        _run([sys.executable, __file__, "single", str(tmp_path)], _env("torch"))
        reference = load(tmp_path / "reference")
    rank0, rank1 = load(tmp_path / "rank0"), load(tmp_path / "rank1")
    for name in rank0:  # in step: the same update on both, bit for bit
        for w0, w1 in zip(rank0[name]["weights"], rank1[name]["weights"], strict=True):
            np.testing.assert_array_equal(w0, w1, err_msg=name)
    assert_in_step(rank0, reference)


@pytest.mark.slow
def test_tensorflow_mirrored_strategy_on_two_cpus_trains_like_one_device(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    _run([sys.executable, __file__, "devices", str(tmp_path)], _env("tensorflow"))
    assert_in_step(load(tmp_path / "parallel"), load(tmp_path / "reference"))


@pytest.mark.slow
def test_jax_data_parallel_on_two_host_devices_trains_like_one_device(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (it is not in requirements.txt); pip install jax to run this test")
    _run([sys.executable, __file__, "devices", str(tmp_path)],
         _env("jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert_in_step(load(tmp_path / "parallel"), load(tmp_path / "reference"))


# ----------------------------------------------------------------------------- in this process


def test_shard_gives_each_process_its_contiguous_rows_of_every_batch():
    batches = FixedBatches()
    shards = [distributed.Context("data-parallel", p, 2, 2).shard(batches) for p in range(2)]
    assert [len(s) for s in shards] == [STEPS, STEPS]
    for index in range(STEPS):
        x, y = batches[index]
        np.testing.assert_array_equal(np.concatenate([s[index][0] for s in shards]), x)
        np.testing.assert_array_equal(shards[1][index][1], y[4:])


def test_shard_keeps_the_whole_batch_for_one_process_over_two_devices_and_checks_divisibility():
    x, _ = distributed.Context("data-parallel", 0, 1, 2).shard(FixedBatches())[0]
    assert x.shape[0] == GLOBAL_BATCH
    with pytest.raises(ConfigError, match="batch 0 has 6 rows, which 4 replicas cannot share"):
        distributed.Context("data-parallel", 1, 4, 4).shard(FixedBatches(batch_size=6))[0]


def test_shard_forwards_epoch_bookkeeping_to_the_wrapped_dataset():
    from seqattn.data.moving_mnist import SequenceBatches

    pool = np.zeros((3, 28, 28), dtype=np.uint8)
    batches = SequenceBatches(pool, batch_size=4, steps_per_epoch=2, length=3, canvas=32)
    shard = distributed.Context("data-parallel", 1, 2, 2).shard(batches)
    shard.epoch_callback().on_epoch_begin(5)
    assert batches.epoch == 5 and shard.batch_seed(5, 1) == batches.batch_seed(5, 1)
    np.testing.assert_array_equal(shard[1][0], batches[1][0][2:])


def test_configure_none_and_plain_python_on_torch_are_one_process():
    assert distributed.configure("none") == distributed.Context()
    try:
        if keras.backend.backend() == "torch" and "WORLD_SIZE" not in os.environ:
            context = distributed.configure("data-parallel")
            assert (context.process_count, context.num_replicas, context.callbacks()) == (1, 1, [])
    finally:
        distributed.configure("none")
    with pytest.raises(ConfigError, match="--distribute must be one of none, data-parallel; got 'ddp'"):
        distributed.configure("ddp")


def test_workers_write_outputs_and_mlflow_runs_apart_from_the_chief(tmp_path):
    chief = distributed.Context("data-parallel", 0, 2, 2)
    assert chief.worker_outputs("outputs", None) == ("outputs", None)
    out, uri = distributed.Context("data-parallel", 1, 2, 2).worker_outputs(str(tmp_path), "http://server:5000")
    assert Path(out) == tmp_path / ".workers" / "rank1" and Path(out).is_dir()
    assert uri == f"sqlite:///{tmp_path}/.workers/rank1/mlflow.db"


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
