"""Atomic result writing: strict JSON, no half-written or leftover files, clear errors; and the
file lock that keeps a second process out."""

import json
import math
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from seqattn.errors import ConfigError
from seqattn.io import LockHeld, atomic_path, ensure_writable_dir, environment_info, exclusive_lock, write_json_atomic


def _reject_constant(name):
    raise AssertionError(f"non-standard JSON constant {name} written")


def test_write_json_atomic_writes_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(
        path,
        {
            "nan": float("nan"),
            "inf": [1.5, float("inf"), -math.inf],
            "numpy_nan": np.float32("nan"),
            "array": np.array([[1.0, np.nan]]),
            "count": np.int64(3),
            "nested": {"tuple": (np.float64(0.25), None), 7: "seven"},
        },
    )
    loaded = json.loads(path.read_text(), parse_constant=_reject_constant)
    assert loaded == {
        "nan": None,
        "inf": [1.5, None, None],
        "numpy_nan": None,
        "array": [[1.0, None]],
        "count": 3,
        "nested": {"tuple": [0.25, None], "7": "seven"},
    }


def test_write_json_atomic_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})  # overwriting too
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]
    assert json.loads(path.read_text()) == {"a": 2}


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("half-written")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_atomic_path_replaces_the_file_when_the_block_succeeds(tmp_path):
    path = tmp_path / "figure.png"
    path.write_text("old")
    with atomic_path(path) as tmp:
        tmp.write_text("new")
        assert path.read_text() == "old"  # nothing visible until the block ends
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


def test_atomic_path_gives_the_file_the_mode_open_would(tmp_path):
    """Not mkstemp's owner-only 0600: results and figures must be readable like any other file."""
    (tmp_path / "plain.txt").write_text("")
    write_json_atomic(tmp_path / "results.json", {})
    assert (tmp_path / "results.json").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_ensure_writable_dir_creates_missing_parents(tmp_path):
    path = tmp_path / "a" / "b" / "c"
    assert ensure_writable_dir(path) == path
    assert path.is_dir()
    assert ensure_writable_dir(path) == path  # existing folder is fine


def test_ensure_writable_dir_under_a_regular_file_raises_config_error_naming_the_path(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    for path in (blocker / "outputs", blocker):
        with pytest.raises(ConfigError, match=re.escape(f"output folder '{path}' cannot be created")):
            ensure_writable_dir(path)
    with pytest.raises(ConfigError, match="not_a_folder"):
        write_json_atomic(blocker / "results.json", {})


def test_exclusive_lock_names_its_holder_and_is_removed_on_release(tmp_path):
    path = tmp_path / "owner.lock"
    with exclusive_lock(path, wait=False):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()
    with exclusive_lock(path, wait=False):  # released: the next holder gets it at once
        assert path.is_file()


_HOLDER = """
import sys, time
from seqattn.io import exclusive_lock
with exclusive_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path):
    """The OS lock ends with its process, even under kill -9: the file left behind blocks no one."""
    path = tmp_path / "owner.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(LockHeld) as held:
            with exclusive_lock(path, wait=False):
                pass
        assert held.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert path.read_text() == f"{holder.pid}\n"  # left behind by the killed holder
    with exclusive_lock(path, wait=False):
        assert path.read_text() == f"{os.getpid()}\n"


def test_environment_info_records_versions_and_commit():
    info = environment_info()
    assert info["backend"] == keras.backend.backend()
    assert info["keras"] == keras.__version__
    assert info[keras.backend.backend()]  # the backend's own version
    assert "git_commit" in info
    json.dumps(info)


def test_source_state_is_read_once_so_a_long_run_records_the_code_it_loaded(monkeypatch):
    from seqattn import io

    answers = {"rev-parse": "abc123\n", "status": " M src/seqattn/io.py\n"}
    calls = []

    def fake_git(command, **kwargs):
        calls.append(command[1])
        return subprocess.CompletedProcess(command, 0, stdout=answers[command[1]], stderr="")

    io.source_state.cache_clear()
    monkeypatch.setattr(io.subprocess, "run", fake_git)
    try:
        assert io.source_state() == {"git_commit": "abc123", "git_dirty": True}
        answers["rev-parse"] = "def456\n"  # HEAD moves while the run goes on
        assert io.environment_info()["git_commit"] == "abc123"
        assert calls == ["rev-parse", "status"]
    finally:
        io.source_state.cache_clear()
