"""Benchmark: how good is each label-free representation, and what does it cost?

Run ``python benchmarks/representations.py --help``. For each dataset (scikit-learn's digits, Fashion-MNIST from
Debian's ``dataset-fashion-mnist``) and each representation, it fits the representation on every training image
without labels, times it, and trains a linear probe (logistic regression, as the ``linear`` learner) on 100, 500
and all training labels drawn at random (``--seeds`` draws; all labels: one fit), reporting test accuracy. The
``backbone`` representation needs pretrained weights, which this machine cannot download: it is measured only
when ``--backbone`` (a ``.keras`` file or a ``keras.applications`` name with ``--backbone-weights``) is given.
A benchmark to read, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import cli_entry
from benchmarks.reporting import finish_report

SCRIPT = "benchmarks/representations.py"
LABEL_COUNTS = (100, 500)


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,fashion_mnist", help="comma-separated (default: both)")
    parser.add_argument("--representations", default="pixels,patches", help="comma-separated (default: pixels,patches)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="random label draws per count (default: 3)")
    parser.add_argument("--backbone", default=None, help="a .keras file or keras.applications name (adds a row)")
    parser.add_argument("--backbone-weights", default="imagenet", help="imagenet, or a local weights file")
    parser.add_argument("--output", default=None, metavar="FILE.md", help="also write the report here")
    return parser


def probe_accuracy(features: np.ndarray, labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray,
                   rows: np.ndarray, num_classes: int) -> float:
    from altoolkit.learners import LinearLearner

    learner = LinearLearner(num_classes).fit(features[rows], labels[rows])
    return float((learner.predict_proba(test_features).argmax(axis=1) == test_labels).mean())


@cli_entry
def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    from altoolkit.data import load_dataset
    from altoolkit.label_free import LabelFreeRepresentation, RepresentationSettings

    names = [name.strip() for name in args.representations.split(",") if name.strip()]
    if args.backbone:
        names.append("backbone")
    settings = RepresentationSettings(backbone=args.backbone, backbone_weights=args.backbone_weights)
    started = time.perf_counter()
    lines = ["# Label-free representations: linear-probe accuracy and cost", "", "```",
             shlex.join(["python", SCRIPT, *arguments]), "```", "",
             f"Logistic regression (C = 0.1) on each representation's features, trained on labels drawn at random "
             f"(mean over {args.seeds} draws; all labels: one fit) and scored on the test split. Cost: seconds to fit "
             "the representation (no labels) and to compute the features of 10,000 images, on this machine "
             f"({os.cpu_count()} CPUs).", "",
             "| dataset | representation | features | 100 labels | 500 labels | all labels | fit s | s per 10,000 "
             "images |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for dataset_name in [name.strip() for name in args.datasets.split(",") if name.strip()]:
        data = load_dataset(dataset_name, classes=None)
        for name in names:
            began = time.perf_counter()
            representation = LabelFreeRepresentation(name, settings, seed=0).fit(data.x_train)
            fitted = time.perf_counter()
            features = representation.transform(data.x_train)
            transform_seconds = (time.perf_counter() - fitted) / len(data.x_train) * 10_000
            test_features = representation.transform(data.x_test)
            cells = []
            for count in LABEL_COUNTS:
                scores = [probe_accuracy(features, data.y_train, test_features, data.y_test,
                                         np.random.default_rng(seed).choice(len(features), count, replace=False),
                                         data.num_classes) for seed in range(args.seeds)]
                cells.append(f"{100 * np.mean(scores):.1f} %")
            everything = probe_accuracy(features, data.y_train, test_features, data.y_test,
                                        np.arange(len(features)), data.num_classes)
            lines.append(f"| {dataset_name} ({len(data.x_train):,} train) | {name} | {features.shape[1]:,} | "
                         + " | ".join(cells) + f" | {100 * everything:.1f} % | {fitted - began:.1f} | "
                         f"{transform_seconds:.1f} |")
            print(lines[-1], flush=True)
    if not args.backbone:
        lines += ["", "`backbone` (a pretrained network's penultimate features) is not measured here: its ImageNet "
                  "weights cannot be downloaded on this machine. Pass `--backbone` with a local weights file to add it."]
    finish_report(lines, started, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
