"""Progress a person can follow: the toolkit's log (console and an optional timestamped file), elapsed time and ETA
of long runs, and a progress bar for forward passes.

Long-running paths log through :func:`logger` instead of printing. Messages at INFO reach stdout as bare text,
as ``print`` would (the first :func:`logger` call installs the console handler, so library use prints what it
always printed); :func:`start_log_file` also appends them, with a timestamp and level, to a file. The ETA
arithmetic is pure (:func:`eta_seconds`, :func:`format_duration`, :func:`progress_line`) so it can be checked
with known numbers.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from altoolkit.errors import ToolkitError

LOGGER_NAME = "al_toolkit"
"""Every progress message goes through this logger or a child of it (``al_toolkit.benchmark``, ...)."""
LOG_FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
FILE_ONLY = {"file_only": True}
"""``extra=`` for a record meant for the log file alone (e.g. the command line a run was started with)."""


def logger(name: str | None = None) -> logging.Logger:
    """The toolkit's logger, or its child ``name`` (e.g. ``logger("benchmark")``); the first call installs the
    console handler (nothing is configured at import)."""
    _install_console()
    return logging.getLogger(LOGGER_NAME if not name else f"{LOGGER_NAME}.{name}")


class _ConsoleHandler(logging.StreamHandler):
    """Bare messages to whatever ``sys.stdout`` is at the moment (a test's capture, a redirected stream)."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(lambda record: not getattr(record, "file_only", False))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler assigns it; the current sys.stdout is always used
        pass


def _install_console() -> None:
    root = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, _ConsoleHandler) for handler in root.handlers):
        root.addHandler(_ConsoleHandler())
    root.setLevel(logging.INFO)
    root.propagate = False


def start_log_file(path: str | os.PathLike) -> Path:
    """Also append every toolkit message to ``path`` (timestamped), replacing any log file started before.

    Missing parent folders are created. A path that cannot be opened for appending is a ToolkitError.
    """
    path = Path(path)
    stop_log_file()
    blocking = next((folder for folder in path.parents if folder.exists() and not folder.is_dir()), None)
    try:
        if blocking is not None:
            raise NotADirectoryError(errno.ENOTDIR, f"{blocking} is a file, not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ToolkitError(f"--log-file {path} cannot be opened for writing ({reason}): choose a path in a "
                           "writable folder") from None
    handler.setFormatter(logging.Formatter(LOG_FILE_FORMAT))
    handler.setLevel(logging.INFO)
    logger().addHandler(handler)
    return path


def stop_log_file() -> None:
    """Close the log file :func:`start_log_file` opened, if any."""
    root = logger()
    for handler in [handler for handler in root.handlers if isinstance(handler, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def current_log_file() -> Path | None:
    """The file toolkit messages are appended to, or None (a worker process is given it to log there too)."""
    files = [handler for handler in logger().handlers if isinstance(handler, logging.FileHandler)]
    return Path(files[0].baseFilename) if files else None


def format_duration(seconds: float) -> str:
    """``42s``, ``5m12s``, ``2h05m``: whole seconds under an hour, whole minutes above."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def eta_seconds(elapsed: float, finished_here: int, remaining: int) -> float | None:
    """Seconds left at the mean time of the items finished in this run; None before the first one.

    Items that were already done when the run started (a resume) count as done but not toward the rate.
    """
    if remaining <= 0:
        return 0.0
    if finished_here <= 0:
        return None
    return elapsed / finished_here * remaining


def progress_line(noun: str, done: int, total: int, what: str, elapsed: float, finished_here: int) -> str:
    """``cell 12/40 done (random, seed 3) · elapsed 5m12s · ETA 12m30s``."""
    eta = eta_seconds(elapsed, finished_here, total - done)
    shown = "unknown" if eta is None else format_duration(eta)
    return f"{noun} {done}/{total} done ({what}) · elapsed {format_duration(elapsed)} · ETA {shown}"


class Countdown:
    """The clock of a long run of ``total`` items, ``done`` of them finished before it started."""

    def __init__(self, total: int, noun: str = "cell", clock: Callable[[], float] = time.monotonic):
        self.total, self.noun, self.clock = int(total), noun, clock
        self.started = clock()
        self.finished_here = 0

    def finished(self, done: int, what: str, count: int = 1) -> str:
        """Record ``count`` more items finished in this run (``done`` in all, resumed ones included); the line."""
        self.finished_here += count
        return progress_line(self.noun, min(done, self.total), self.total, what, self.clock() - self.started,
                             self.finished_here)


class ForwardPassBar:
    """A progress bar (Keras' ``Progbar``: count, bar, ETA, time per image) on stderr for ``total`` images.

    On a terminal it redraws in place; elsewhere it writes one line when the pass ends.
    """

    def __init__(self, total: int, description: str | None = None):
        import keras

        self.terminal = sys.stderr.isatty()
        with contextlib.redirect_stdout(sys.stderr):
            if description:
                print(description, flush=True)
            self.bar = keras.utils.Progbar(total, verbose=1 if self.terminal else 2, unit_name="image")

    def update(self, done: int) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            self.bar.update(done)


def forward_pass_bar(total: int, batches: int, progress: bool | str | None) -> ForwardPassBar | None:
    """The bar a forward pass shows: ``progress`` True or a description always, False never, None (the default)
    when stderr is a terminal and the pass takes more than one batch."""
    if progress is False or total == 0 or (progress is None and (batches < 2 or not sys.stderr.isatty())):
        return None
    return ForwardPassBar(total, progress if isinstance(progress, str) else None)
