"""User-facing errors and the wrapper that turns them into one-line CLI messages."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Callable


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
