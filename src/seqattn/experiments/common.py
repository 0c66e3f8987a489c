"""What every part of the study does the same way, so it is written once:

- `PositiveInt`: the argparse action of an integer option that must be >= 1, checked when the
  command line is parsed and never again;
- `config_tag`: the short hash that names a trained model's state folder after its options;
- `write_outputs`: a part's results.json and results.md, logged to MLflow with its figures.

Each part (`attention`, `forecast`, `video`) keeps only what is its own: its config, data,
models and report. Seed statistics ("mean ± std over seeds", of scalars and curves) are
`seqattn.report.mean_std`, which the keras-free sweep uses too.
"""

import argparse
import hashlib
import json
from pathlib import Path

from seqattn import tracking
from seqattn.errors import ConfigError
from seqattn.io import atomic_path, write_json_atomic


class PositiveInt(argparse.Action):
    """`parser.add_argument("--epochs", action=PositiveInt)`: an integer >= 1 (or a list of them,
    with nargs).

    argparse's int type rejects a non-integer as a usage error; a 0 or a negative is a
    ConfigError naming the option, raised while parsing, which the command line prints as one
    line before any data is read.
    """

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault("type", int)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        for value in values if isinstance(values, list) else [values]:
            if value < 1:
                raise ConfigError(f"{option_string} must be a positive integer; got {value}")
        setattr(namespace, self.dest, values)


def config_tag(options) -> str:
    """8 hex digits of the SHA-256 of `options` (JSON-able; dict keys sorted, other objects as
    str): a state folder named with it is reused only by a run with the same options."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:8]


def write_outputs(out: Path, results: dict, markdown: str, figures=()) -> None:
    """`out/results.json` and `out/results.md`, then both and `figures` as artifacts of the active
    MLflow run."""
    write_json_atomic(out / "results.json", results)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown)
    for path in (*figures, out / "results.json", out / "results.md"):
        tracking.log_artifact(path)
