"""Train the base MobileNetV3Small classifier on the first ``labeled_size`` images of a dataset.

Run ``python train.py --help``. Importable: ``train_model(additional_indices=..., output_dir=..., ...)`` is how
the active-learning cycle retrains with extra (absolute) training-set indices.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from altoolkit.cli import (ToolkitArgumentParser, add_backbone_arguments, add_dataset_arguments,
                           add_logging_arguments, configure_logging, dataset_from_args, fraction_argument,
                           keras_verbosity, positive_float, positive_int, seed_argument)
from altoolkit.data import DEFAULT_IMAGE_SIZE, check_dataset_argument, dataset_classes, load_dataset
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.model import IMAGENET_WEIGHTS_FILE
from altoolkit.pipelines import LEARNER_NAMES
from altoolkit.training import DEFAULT_MODELS_DIR, TrainResult, default_run_dir, recipe_for
from altoolkit.training import train_model as train_on_dataset
from altoolkit.validation import check_seed

IMAGENET_DEFAULTS = {"learning_rate": 3e-4, "batch_size": 2}


def train_model(additional_indices: Sequence[int] | None = None, output_dir: str | Path | None = None, *,
                dataset_name: str = "cifar10", classes: Sequence[int | str] | None = None,
                data_path: str | Path | None = None, image_size: int = DEFAULT_IMAGE_SIZE, dataset=None,
                labeled_size: int = 500, epochs: int = 30, batch_size: int = 32, learning_rate: float = 1e-3,
                validation_fraction: float = 0.1, weights: str | None = None, flip_augmentation: bool | None = None,
                seed: int = 42, overwrite: bool = False, verbose: int = 1, label_store: str | Path | None = None,
                pool: str | Path | None = None, learner: str = "mobilenet",
                representation: str = "patches", backbone: str | None = None,
                backbone_weights: str | None = "imagenet") -> TrainResult:
    """Load the data (unless ``dataset`` is given) and train; see :func:`altoolkit.training.train_model`.

    ``classes=None`` means the dataset's default (airplane/automobile/ship for CIFAR-10, all otherwise).
    ``label_store`` (a ``label.py`` project folder, with a labeled-folder dataset) adds every label in it to
    the training set and trains on all of it (``labeled_size`` is then ignored); ``pool`` overrides where the
    store's pool folder is. A seed outside 0..2**32-1 is refused before any data is loaded. ``learner`` and
    ``representation``: see :class:`altoolkit.training.TrainingRecipe` (``linear`` on ``patches`` trains in
    seconds; the training images beyond the labeled set are its unlabeled pool); ``representation="backbone"``
    uses the frozen features of ``backbone`` (a ``.keras`` file, or a ``keras.applications`` name with
    ``backbone_weights``: ``imagenet`` or a local weights file), saved inside the classifier.
    """
    seed = check_seed(seed)
    check_dataset_argument(dataset)
    if dataset is None:
        class_list = dataset_classes(dataset_name, None) if classes is None else list(classes)
        dataset = load_dataset(dataset_name, path=data_path, classes=class_list, image_size=image_size)
    if label_store is not None:
        dataset = dataset_with_store_labels(dataset, label_store, pool)
        labeled_size = len(dataset.x_train)
    overrides = {} if flip_augmentation is None else {"flip_augmentation": flip_augmentation}
    recipe = recipe_for(dataset.name, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                        validation_fraction=validation_fraction, weights=weights, learner=learner,
                        representation=representation, backbone=backbone, backbone_weights=backbone_weights,
                        **overrides)
    return train_on_dataset(additional_indices, output_dir, dataset=dataset, labeled_size=labeled_size,
                            recipe=recipe, seed=seed, overwrite=overwrite, verbose=verbose)


def dataset_with_store_labels(dataset, project: str | Path, pool: str | Path | None,
                              skip_changed_images: bool = False):
    """``dataset`` (a labeled folder) plus every image labeled in the project's label store.

    A labeled pool file that changed or went missing since it was labeled is an error naming it, or, with
    ``skip_changed_images``, its label is left out with a warning.
    """
    from altoolkit.labeling.pool import with_store_labels
    from altoolkit.labeling.store import LabelStore

    if dataset.name != "folder":
        raise ToolkitError("--label-store adds labels to a labeled folder: use --dataset folder --data-path "
                           "<the labeled folder the project was made with>")
    with LabelStore(project) as store:
        root = pool or store.get_meta("pool")
        if root is None:
            raise ToolkitError(f"{store.path} does not know its pool folder: pass --pool")
        return with_store_labels(dataset, store, root, skip_changed=skip_changed_images)


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(
        prog="train.py", description="Train the base MobileNetV3Small model on the first --labeled-size "
                                     "training images (the labeled set the analyses assume).")
    add_dataset_arguments(parser)
    group = parser.add_argument_group("training")
    group.add_argument("--labeled-size", type=positive_int, default=500, help="first N training images (default: 500)")
    group.add_argument("--epochs", type=positive_int, default=30, help="default: 30")
    group.add_argument("--batch-size", type=positive_int, default=None, help="default: 32 (2 with --weights imagenet)")
    group.add_argument("--learning-rate", type=positive_float, default=None,
                       help="Adam learning rate (default: 1e-3; 3e-4 with --weights imagenet); a rate that makes "
                            "the loss NaN stops training with an error")
    group.add_argument("--validation-fraction", type=fraction_argument, default=0.1,
                       help="last part of the labeled set held out to pick the best epoch, 0 to below 1 "
                            "(default: 0.1)")
    group.add_argument("--weights", choices=("none", "imagenet"), default="none",
                       help="'none' trains from scratch offline (default); 'imagenet' downloads "
                            f"{IMAGENET_WEIGHTS_FILE} into ~/.keras/models/ unless it is already there")
    group.add_argument("--learner", choices=LEARNER_NAMES, default="mobilenet",
                       help="mobilenet (default: MobileNetV3Small from scratch); linear or label_spreading (seconds: "
                            "a fast learner on a label-free --representation, saved as a .keras classifier); "
                            "mobilenet_distilled (MobileNetV3Small on the labels plus label-spreading pseudo-labels)")
    group.add_argument("--representation", choices=("patches", "pixels", "backbone"), default="patches",
                       help="label-free features for the fast learners and the pseudo-labels (default: patches; "
                            "backbone: a pretrained network's frozen features, see --backbone)")
    add_backbone_arguments(group, "with --representation backbone, its frozen features feed the fast learners")
    group.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                       help="random horizontal flips while training (default: on for cifar10 and fashion_mnist)")
    group.add_argument("--seed", type=seed_argument, default=42, help="fixes the initial weights and shuffling (default: 42)")
    group.add_argument("--output-dir", default=None,
                       help=f"run directory (default: {DEFAULT_MODELS_DIR}/<labeled-size>_train)")
    group.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    group.add_argument("--label-store", default=None, metavar="PROJECT",
                       help="also train on every label in this label.py project (with --dataset folder); "
                            "--labeled-size is then all of it")
    group.add_argument("--pool", default=None, help="the project's pool folder, if it moved")
    group.add_argument("--skip-changed-images", action="store_true",
                       help="with --label-store: leave out the labels of pool images whose files changed or went "
                            "missing since they were labeled (default: refuse and name them)")
    group.add_argument("--quiet", action="store_true", help="no Keras progress output")
    add_logging_arguments(group)
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args, argv)
    weights = None if args.weights == "none" else args.weights
    imagenet = weights == "imagenet"
    dataset = dataset_from_args(args)
    labeled_size = args.labeled_size
    if args.label_store:
        dataset = dataset_with_store_labels(dataset, args.label_store, args.pool, args.skip_changed_images)
        labeled_size = len(dataset.x_train)
    output_dir = Path(args.output_dir) if args.output_dir else default_run_dir(labeled_size)
    print(f"data: {dataset.source}: {len(dataset.x_train)} train / {len(dataset.x_test)} test images, "
          f"classes {', '.join(dataset.class_names)}")
    result = train_model(
        output_dir=output_dir, dataset=dataset, labeled_size=labeled_size, epochs=args.epochs,
        batch_size=args.batch_size if args.batch_size is not None else (
            IMAGENET_DEFAULTS["batch_size"] if imagenet else 32),
        learning_rate=args.learning_rate if args.learning_rate is not None else (
            IMAGENET_DEFAULTS["learning_rate"] if imagenet else 1e-3),
        validation_fraction=args.validation_fraction, weights=weights, flip_augmentation=args.flip,
        seed=args.seed, overwrite=args.overwrite, verbose=keras_verbosity(args.quiet), learner=args.learner,
        representation=args.representation, backbone=args.backbone, backbone_weights=args.backbone_weights)
    epoch = "" if result.metrics["best_epoch"] is None else f"; best epoch {result.metrics['best_epoch']}"
    if result.test_accuracy is None:
        print(f"no test images: accuracy not measured{epoch}")
    else:
        print(f"test accuracy: {result.test_accuracy:.3f} on {result.metrics['test_size']} test images "
              f"(chance {result.metrics['chance_accuracy']:.3f}){epoch}")
    print(f"model: {result.model_path}")
    plot = result.output_dir / "training_history.png"
    print(f"metrics: {result.output_dir / 'metrics.json'}" + (f"  plot: {plot}" if plot.is_file() else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
