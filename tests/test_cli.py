"""The command line: help, choices, and one clear line for every user error (no traceback)."""

import os
import subprocess
import sys

import pytest

from seqattn import cli


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "seqattn.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_lists_every_part():
    result = _run("--help")
    assert result.returncode == 0
    for part in cli.PARTS:
        assert part in result.stdout


@pytest.mark.parametrize("args, env, expected", [
    (["attention", "--backend", "theano"], {}, "invalid choice: 'theano' (choose from 'torch', 'tensorflow', 'jax')"),
    (["attention"], {"KERAS_BACKEND": "theano"}, "KERAS_BACKEND='theano' is not a backend; choose one of torch, tensorflow, jax"),
    (["nopart"], {}, "invalid choice: 'nopart' (choose from 'attention', 'forecast', 'video', 'ui')"),
    (["attention", "--profile", "huge"], {}, "invalid choice: 'huge'"),
])
def test_unknown_choice_exits_2_naming_the_choices(args, env, expected):
    result = _run(*args, env=env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "0"], "--epochs must be a positive integer; got 0"),
    (["--num-heads", "3"], "--num-heads 3 must divide d_model=32"),
    (["--n-pairs", "99"], "--n-pairs 99 exceeds the 16 distinct keys"),
])
def test_bad_part_option_is_one_error_line(tmp_path, args, expected):
    result = _run("attention", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"seqattn: error: {expected}"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "attention" / "results.json").exists()


def test_unwritable_output_folder_is_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _run("attention", "--out", str(blocker / "out"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert result.returncode == 1
    assert "output folder" in result.stderr and str(blocker) in result.stderr
    assert "Traceback" not in result.stderr
