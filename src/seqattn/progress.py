"""Progress bars for the steps a user waits on outside Keras's own fit output (evaluation, data,
sweeps, benchmark cases).

    for batch in progress(batches, "test windows"):
        ...
    with progress(total=n, desc="rollouts") as bar:
        bar.update(k)

`progress` is tqdm on stderr, drawn only when stderr is a terminal: CI logs, redirected output and
a sweep's child logs get nothing from it. `--quiet` (`set_quiet`) turns the bars off on a terminal
too; it is kept in $SEQATTN_QUIET so that child processes (sweeps, benchmarks) inherit it. Lines
printed while a bar is drawn go through `progress_write`, which keeps the bar below them.
"""

import os
import sys
from collections.abc import Iterable

from tqdm import tqdm

QUIET_ENV = "SEQATTN_QUIET"


def set_quiet(quiet: bool) -> None:
    """--quiet: no progress bars in this process and the processes it starts."""
    if quiet:
        os.environ[QUIET_ENV] = "1"


def is_quiet() -> bool:
    """True when bars are off: --quiet was given, or stderr is not a terminal."""
    return os.environ.get(QUIET_ENV, "") not in ("", "0") or not sys.stderr.isatty()


def progress(iterable: Iterable | None = None, desc: str | None = None, total: int | None = None,
             **tqdm_kwargs) -> tqdm:
    """tqdm over `iterable` (or a manual bar of `total` steps), silent unless stderr is a terminal.

    The finished bar is cleared (leave=False) unless told otherwise: the lines around it are the
    record of the run, the bar only says how long to wait.
    """
    tqdm_kwargs.setdefault("leave", False)
    return tqdm(iterable, desc=desc, total=total, disable=is_quiet(), file=sys.stderr, dynamic_ncols=True,
                **tqdm_kwargs)


def progress_write(line: str, file=None) -> None:
    """print(line) to stdout (or `file`) that does not tear a progress bar drawn below it."""
    file = file or sys.stdout
    tqdm.write(line, file=file)
    file.flush()  # in order with the other lines when the stream is a pipe
