"""Command-line options shared by every entry point (dataset choice, image size), so they read the same everywhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from altoolkit.data import DATASET_NAMES, DEFAULT_IMAGE_SIZE, Dataset, dataset_classes, load_dataset
from altoolkit.errors import ToolkitError
from altoolkit.limits import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, check_image_size
from altoolkit.validation import (check_fraction, check_non_negative_int, check_percentile, check_positive_float,
                                  check_positive_int, check_seed)


class ToolkitArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one ``error: ...`` line (exit code 2), like every other error.

    argparse prints the whole usage block before its message; a bad option is then several lines that a script
    or a person has to read through. Sub-command parsers inherit the class.
    """

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _argument_type(check: Callable, converter: Callable, what: str) -> Callable[[str], object]:
    """An argparse ``type=`` that converts the text and applies a :mod:`altoolkit.validation` check."""

    def parse(text: str):
        try:
            value = converter(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {what}") from None
        try:
            return check(value, "the value")
        except ToolkitError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = what
    return parse


seed_argument = _argument_type(check_seed, int, "an integer seed")
"""``type=`` for seeds: 0 to 2**32 - 1."""
positive_int = _argument_type(check_positive_int, int, "a positive integer")
non_negative_int = _argument_type(check_non_negative_int, int, "a non-negative integer")
positive_float = _argument_type(check_positive_float, float, "a positive number")
fraction_argument = _argument_type(check_fraction, float, "a number from 0 to below 1")
"""``type=`` for shares of a set, such as a validation fraction: 0 up to (not including) 1."""

percentile_argument = _argument_type(check_percentile, float, "a percentile")
"""``type=`` for percentiles: above 0, at most 100 (NaN and infinity are refused)."""

image_size_argument = _argument_type(check_image_size, int, "an image size")
"""``type=`` for ``--image-size``: MIN_IMAGE_SIZE to MAX_IMAGE_SIZE pixels."""

def add_backbone_arguments(group, used_for: str, weights_default: str | None = "imagenet") -> None:
    """``--backbone`` and ``--backbone-weights``, worded alike by every CLI; ``used_for`` says what the network's
    features serve there (``weights_default`` None lets a CLI tell weights given without a backbone)."""
    group.add_argument("--backbone", default=None,
                       help="a pretrained network, a .keras model or a keras.applications name such as "
                            f"MobileNetV3Small: {used_for}")
    group.add_argument("--backbone-weights", default=weights_default,
                       help="for a keras.applications --backbone: imagenet (the default; downloaded once, needs the "
                            "network) or the path of a local weights file")


def add_dataset_arguments(parser: argparse.ArgumentParser, default: str = "cifar10") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=default, choices=DATASET_NAMES,
                       help=f"data source (default: {default})")
    group.add_argument("--classes", default=None,
                       help="comma-separated class ids or names to keep, remapped to 0..K-1 in this order, "
                            "or 'all' (default: airplane,automobile,ship for cifar10, all classes otherwise)")
    group.add_argument("--data-path", default=None,
                       help="archive, folder or .npz to read (cifar10: cifar-10-python.tar.gz or "
                            "cifar-10-batches-py/, also $AL_CIFAR10_PATH; required for folder and npz)")
    group.add_argument("--image-size", type=image_size_argument, default=DEFAULT_IMAGE_SIZE,
                       help=f"images are resized to this square size, {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} "
                            f"(default: {DEFAULT_IMAGE_SIZE})")


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    return load_dataset(args.dataset, path=args.data_path, classes=dataset_classes(args.dataset, args.classes),
                        image_size=args.image_size)


def add_logging_arguments(parser) -> None:
    """``--log-file PATH`` on a parser or argument group: where :func:`configure_logging` also appends the run's
    messages, timestamped."""
    parser.add_argument("--log-file", default=None, metavar="PATH",
                        help="also append the progress messages, with timestamps, to this file (created with its "
                             "folders; a run on a server can be followed with tail -f and audited later)")


def configure_logging(args: argparse.Namespace, argv: list[str] | None = None) -> None:
    """Route the toolkit's messages for this command: stdout as always, and ``args.log_file`` when given; the file
    gets the command line first (``argv`` when ``main`` was called with one). An unopenable log file is a
    ToolkitError, before any work."""
    import shlex

    from altoolkit.progress import FILE_ONLY, logger, start_log_file, stop_log_file

    stop_log_file()
    if getattr(args, "log_file", None) is None:
        return
    start_log_file(args.log_file)
    command = [Path(sys.argv[0]).name, *sys.argv[1:]] if argv is None else list(argv)
    logger().info(f"run: {shlex.join(command)}", extra=FILE_ONLY)


def keras_verbosity(quiet: bool) -> int:
    """Keras' progress bar on a terminal, one line per epoch in logs, nothing when quiet."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


DEFAULT_MODEL_PATH = "models/500_train/best_model.keras"
DEFAULT_LABELED_SIZE = 500
DEFAULT_START_IDX = 501
ANALYSIS_END_IDX = 1000
"""End (exclusive) of the standalone analyses' default pool, images 501–999: the design's Evaluation modules.
The cycle's default pool is larger (``AL_cycle.CYCLE_END_IDX``)."""


def add_pool_arguments(parser: argparse.ArgumentParser, output_dir: str) -> None:
    """Model, labeled set, pool range and output options of the analysis entry points."""
    group = parser.add_argument_group("pool")
    group.add_argument("--model", default=DEFAULT_MODEL_PATH, help=f"trained .keras model (default: {DEFAULT_MODEL_PATH})")
    group.add_argument("--labeled-size", type=positive_int, default=DEFAULT_LABELED_SIZE,
                       help=f"the labeled set is the first N training images (default: {DEFAULT_LABELED_SIZE})")
    group.add_argument("--start-idx", type=non_negative_int, default=DEFAULT_START_IDX,
                       help=f"first pool image, 0-based absolute training index (default: {DEFAULT_START_IDX})")
    group.add_argument("--end-idx", type=positive_int, default=ANALYSIS_END_IDX,
                       help=f"end of the pool, exclusive (default: {ANALYSIS_END_IDX})")
    group.add_argument("--output-dir", default=output_dir, help=f"where files go (default: {output_dir})")
    group.add_argument("--cache-dir", default=None,
                       help="where the model's outputs are cached (default: .cache beside --output-dir, e.g. "
                            f"{Path(output_dir).parent / '.cache'}, so the three analyses share one forward pass)")
    group.add_argument("--no-plots", action="store_true", help="skip the figures")
    group.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")
