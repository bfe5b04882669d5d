"""User-facing errors and the wrapper that turns them into one-line CLI messages."""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
from typing import Callable, Iterator


class ToolkitError(Exception):
    """A problem with the user's input or environment, with a message that says what to do.

    Command-line entry points print it as a single ``error: ...`` line instead of a traceback.
    """


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a ``main(argv)`` so ToolkitError and Ctrl-C end the program with one line and exit code 2/130.

    Also quiets TensorFlow's C++ start-up chatter (before TensorFlow is first imported, lazily, by ``main``) and
    its "retracing" warnings: the toolkit traces one inference function per model on purpose, which TensorFlow
    counts as retracing once a run has used a few models.
    """

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        quiet_tensorflow_import()
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        try:
            return int(main(argv) or 0)
        except ToolkitError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: nothing half-written was kept", file=sys.stderr)
            return 130

    return wrapper


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: C++ libraries write there directly, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilencedLoader(importlib.abc.Loader):
    """Run another loader's ``exec_module`` with native stderr silenced."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with native_stderr_silenced():
            self.loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Meta-path hook that imports TensorFlow (when something first needs it) with native stderr silenced.

    TensorFlow's shared libraries log start-up notices (e.g. "oneDNN custom operations are on", on CPUs where oneDNN
    is the default) through absl before ``TF_CPP_MIN_LOG_LEVEL`` is read; a CLI error must stay one line.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilencedLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Make the first ``import tensorflow`` (direct or through Keras) silent on native stderr; no-op once imported."""
    if "tensorflow" in sys.modules or any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
