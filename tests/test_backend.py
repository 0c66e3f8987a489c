"""Tests of `seqattn.backend`: the default backend's thread policy and its quiet start.

Each case runs in a fresh process: Keras and TensorFlow read their settings once, when they load.
"""

import os
import subprocess
import sys

import pytest


def _python(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "OMP_NUM_THREADS",
                                                              "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    return subprocess.run([sys.executable, *code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           env={**clean, **env})


def test_a_bad_option_on_the_default_backend_is_one_stderr_line(tmp_path):
    """KERAS_BACKEND unset: on tensorflow, its C++ load notices (oneDNN, absl) would come first."""
    result = _python(["-m", "seqattn.cli", "attention", "--epochs", "0", "--out", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == ["seqattn: error: --epochs must be a positive integer; got 0"]


@pytest.mark.parametrize("omp, threads", [(None, "unset unset"), ("1", "1 1")])
def test_tensorflow_keeps_its_thread_default_unless_omp_num_threads_is_set(tmp_path, omp, threads):
    """Unset, tensorflow picks one thread per core; OMP_NUM_THREADS=1 is what parallel lanes use."""
    code = ("import os; from seqattn.backend import import_quietly, select_backend; select_backend('tensorflow'); import_quietly(); "
            "import tensorflow as tf; tf.constant(1.0) + 1; "
            "print(os.environ.get('TF_NUM_INTRAOP_THREADS', 'unset'), os.environ.get('TF_NUM_INTEROP_THREADS', 'unset'))")
    result = _python(["-c", code], tmp_path, **({} if omp is None else {"OMP_NUM_THREADS": omp}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == threads.split()
    assert result.stderr == ""  # loaded quietly
