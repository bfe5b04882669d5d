"""Human-in-the-loop labeling: select a batch from a folder of unlabeled images, label it, retrain from the labels.

A project folder holds ``labels.sqlite`` (the label store) and ``batches/`` (exports). The steps:

    python label.py select --project P --pool POOL --labeled LABELED --model M.keras --budget 50
    python label.py serve  --project P          # label in the browser (127.0.0.1), or:
    python label.py export --project P          # CSV + Label Studio files for an external tool,
    python label.py import --project P FILE     # and bring the filled-in CSV / Label Studio export back
    python train.py --dataset folder --data-path LABELED --label-store P --output-dir models/round-1

``select`` leaves out every image that already has a label, so each round picks from what is still unlabeled.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, seed_argument
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.labelstore import BatchItem, LabelStore, current_user

DEFAULT_STRATEGY = "recommended"
NOVELTY_NEIGHBOURS = 5


def select_batch(project: str | Path, pool: str | Path, labeled: str | Path, model_path: str | Path, budget: int, *,
                 strategy: str = DEFAULT_STRATEGY, representation: str = "model", seed: int = 0,
                 verbose: bool = True) -> tuple[int, list[BatchItem]]:
    """Pick ``budget`` still-unlabeled pool images with ``strategy`` and record them as a new round.

    The labeled set is the labeled folder's training images plus every label already in the store; the model
    makes one pass over labeled set and pool (probabilities and embeddings together). Distance-based strategies
    measure on the model's embeddings or (``representation="pixels"``) on PCA of the pixels; "recommended"
    chooses both from the labeled set's size. Returns (round, batch).
    """
    import AL_functions as alf
    from altoolkit.analyses import check_representation
    from altoolkit.data import load_dataset
    from altoolkit.imagepool import read_pool_images, scan_pool, store_labeled_images
    from altoolkit.model import classifier_head, load_classifier, probabilities_and_embeddings
    from altoolkit.strategies import check_budget, pixel_pca_features

    budgeted = (alf.RECOMMENDED, *(name for name in alf.STRATEGIES if name != "intersection"))
    if strategy not in budgeted:
        raise ToolkitError(f"strategy {strategy!r} cannot fill a budget: choose one of {', '.join(budgeted)}")
    check_representation(representation)
    check_budget(budget)
    model = load_classifier(model_path)
    size = int(model.inputs[0].shape[1])
    folder = load_dataset("folder", path=labeled, image_size=size)
    if int(model.outputs[0].shape[1]) != folder.num_classes:
        raise ToolkitError(f"{model_path} predicts {model.outputs[0].shape[1]} classes but {labeled} has "
                           f"{folder.num_classes}: train the model on this labeled folder (train.py --dataset folder)")
    pool_images = scan_pool(pool)
    pool_pixels = read_pool_images(pool, pool_images, size)  # a bad pool image is refused before the store is touched
    store = LabelStore(project, class_names=folder.class_names)
    with store:
        store.add_images(pool_images)
        store.set_meta("pool", str(Path(pool).resolve()))
        store.set_meta("labeled", str(Path(labeled).resolve()))
        already = store.current_labels()
        unlabeled = [index for index, image in enumerate(pool_images) if image.image_id not in already]
        candidates = [pool_images[index] for index in unlabeled]
        if not candidates:
            raise ToolkitError(f"every image in {pool} is labeled already: retrain, or add images to the pool")
        store_images, store_classes = store_labeled_images(store, pool, size)
        labeled_images = np.concatenate([folder.x_train, store_images])
        labeled_classes = np.concatenate([folder.y_train, store_classes])
        if verbose:
            print(f"pool: {len(candidates)} unlabeled of {len(pool_images)} images; labeled: "
                  f"{len(folder.x_train)} in {labeled} + {len(store_classes)} in the store")
        images = np.concatenate([labeled_images, pool_pixels[unlabeled]])
        probabilities, embeddings = probabilities_and_embeddings(model, images)
        labeled_embeddings = embeddings[:len(labeled_images)]
        pool_probabilities, pool_embeddings = probabilities[len(labeled_images):], embeddings[len(labeled_images):]
        ran, representation = alf.resolve_strategy(strategy, representation, len(labeled_images), folder.num_classes)
        features = pixel_pca_features(images, seed=seed) if representation == "pixels" else embeddings
        if verbose and ran != strategy:
            print(f"{strategy}: {ran} over {representation} features for {len(labeled_images)} labels")
        chosen = alf.select_samples(pool_probabilities, features[len(labeled_images):],
                                    features[:len(labeled_images)], budget, ran, seed=seed,
                                    labeled_classes=labeled_classes,
                                    head=classifier_head(model) if ran == "bald" else None)
        scores = {"entropy": alf.entropy_scores(pool_probabilities), "margin": alf.margin_scores(pool_probabilities),
                  "novelty": alf.analyze_novelty_embeddings(
                      pool_embeddings, labeled_embeddings, min(NOVELTY_NEIGHBOURS, len(labeled_embeddings))).scores}
        items = [BatchItem(candidates[i].image_id, store.class_names[int(pool_probabilities[i].argmax())],
                           {name: round(float(p), 4) for name, p in zip(store.class_names, pool_probabilities[i])},
                           {name: round(float(values[i]), 6) for name, values in scores.items()})
                 for i in chosen]
        round_id = store.start_round(strategy, {"budget": budget, "seed": seed, "model": str(Path(model_path)),
                                                "ran": ran, "representation": representation,
                                                "pool_size": len(candidates)}, items)
    return round_id, items


def retrain_command(store: LabelStore, project: str | Path, round_id: int) -> str:
    """The train.py command that trains on the labeled folder plus every label in the store."""
    labeled = store.get_meta("labeled") or "LABELED_FOLDER"
    return (f"python train.py --dataset folder --data-path {labeled} --label-store {project} "
            f"--output-dir models/round-{round_id}")


def pool_root(store: LabelStore, override: str | None) -> Path:
    """The pool folder: ``--pool`` when given (the folder moved), else where ``select`` found it."""
    root = override or store.get_meta("pool")
    if root is None:
        raise ToolkitError(f"{store.path} does not know its pool folder: pass --pool")
    return Path(root)


def build_parser() -> argparse.ArgumentParser:
    from altoolkit.analyses import REPRESENTATIONS

    parser = ToolkitArgumentParser(prog="label.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--project", required=True, help="project folder (holds labels.sqlite)")
        return sub

    select = command("select", "pick a batch of still-unlabeled pool images and record it as a new round")
    select.add_argument("--pool", required=True, help="folder of unlabeled images (sub-folders allowed)")
    select.add_argument("--labeled", required=True, help="folder with one sub-folder of images per class")
    select.add_argument("--model", required=True, help="trained .keras classifier (train.py --dataset folder)")
    select.add_argument("--budget", type=int, required=True, help="how many images to label this round")
    select.add_argument("--strategy", default=DEFAULT_STRATEGY, help=f"default: {DEFAULT_STRATEGY}")
    select.add_argument("--representation", default="model", choices=REPRESENTATIONS,
                        help="features for distance-based strategies: the model's embeddings or PCA of the pixels "
                             "(default: model; 'recommended' chooses its own)")
    select.add_argument("--seed", type=seed_argument, default=0, help="seed of every random choice (default: 0)")

    export = command("export", "write a batch folder for an external tool: images, manifest.csv, Label Studio files")
    export.add_argument("--round", type=int, default=None, help="default: the latest round")
    export.add_argument("--pool", default=None, help="the pool folder, if it moved since `select`")
    export.add_argument("--output-dir", default=None, help="default: PROJECT/batches/round-NNN")
    export.add_argument("--link", action="store_true", help="symlink the images instead of copying them")
    export.add_argument("--image-url-prefix", default=None,
                        help="put before images/<file> in Label Studio tasks "
                             "(default: /data/local-files/?d=round-NNN/)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing batch folder")

    importing = command("import", "record the labels of a filled-in manifest.csv or a Label Studio JSON export")
    importing.add_argument("file", help="manifest.csv with the label column filled in, or Label Studio .json")
    importing.add_argument("--round", type=int, default=None, help="default: the latest round")
    importing.add_argument("--labeler", default=None, help="who labeled (default: the current user)")

    serve = command("serve", "label the batch in a local web page")
    serve.add_argument("--round", type=int, default=None, help="default: the latest round")
    serve.add_argument("--pool", default=None, help="the pool folder, if it moved since `select`")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="default: 8765 (0: any free port)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a --host other machines can reach")
    serve.add_argument("--labeler", default=None, help="who labels (default: the current user)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")

    command("status", "labels per class and the rounds so far")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "select":
        round_id, items = select_batch(args.project, args.pool, args.labeled, args.model, args.budget,
                                       strategy=args.strategy, representation=args.representation,
                                       seed=args.seed)
        predicted = {}
        for item in items:
            predicted[item.predicted_class] = predicted.get(item.predicted_class, 0) + 1
        print(f"round {round_id}: {len(items)} images selected with {args.strategy} "
              f"(predicted: {', '.join(f'{name} {count}' for name, count in sorted(predicted.items()))})")
        print(f"label them: python label.py serve --project {args.project}   "
              f"(or export: python label.py export --project {args.project})")
        return 0
    with LabelStore(args.project) as store:
        if args.command == "status":
            return print_status(store)
        round_id = store.resolve_round(args.round)
        if args.command == "export":
            from altoolkit.batches import batch_folder_name, export_batch

            output_dir = Path(args.output_dir) if args.output_dir else (
                Path(args.project) / "batches" / batch_folder_name(round_id))
            export_batch(store, round_id, pool_root(store, args.pool), output_dir, link=args.link,
                         image_url_prefix=args.image_url_prefix, overwrite=args.overwrite)
            print(f"round {round_id}: {output_dir}/manifest.csv (fill in the label column), "
                  f"label_studio_tasks.json and label_studio_config.xml")
            print(f"then: python label.py import --project {args.project} FILE")
        elif args.command == "import":
            from altoolkit.batches import import_labels, read_labels_file

            labels, source = read_labels_file(args.file)
            count = import_labels(store, round_id, labels, labeler=args.labeler or current_user(),
                                  source=source, file_name=Path(args.file).name)
            print(f"imported {count} labels into round {round_id}; retrain: "
                  f"{retrain_command(store, args.project, round_id)}")
        elif args.command == "serve":
            from altoolkit.labelserver import serve

            serve(store, round_id, pool_root(store, args.pool), host=args.host, port=args.port,
                  allow_remote=args.allow_remote, labeler=args.labeler or current_user(),
                  retrain_command=retrain_command(store, args.project, round_id),
                  open_browser=not args.no_browser)
    return 0


def print_status(store: LabelStore) -> int:
    labels = store.current_labels()
    counts = {name: 0 for name in store.class_names}
    for class_name in labels.values():
        counts[class_name] += 1
    print(f"{store.path}: {len(store.images())} pool images, {len(labels)} labeled")
    print("labels per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    for record in store.rounds():
        batch = {item.image_id for item in store.batch(record["round"])}
        print(f"round {record['round']}: {record['strategy']}, {record['batch_size']} images, "
              f"{len(batch & set(labels))} labeled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
