"""Human-in-the-loop labeling: select a batch from a folder of unlabeled images, label it, retrain from the labels.

A project folder holds ``labels.sqlite`` (the label store) and ``batches/`` (exports). The steps:

    python label.py select --project P --pool POOL --labeled LABELED --budget 50   # no model yet: seconds
    python label.py select --project P --pool POOL --labeled LABELED --model M.keras --budget 50
    python label.py serve  --project P          # label in the browser (127.0.0.1), or:
    python label.py export --project P          # CSV + Label Studio files for an external tool,
    python label.py import --project P FILE     # and bring the filled-in CSV / Label Studio export back
    python label.py ml-backend --project P      # or connect Label Studio to the live learner (ML backend)
    python train.py --dataset folder --data-path LABELED --label-store P --output-dir models/round-1

``select`` leaves out every image that already has a label or waits for one in an earlier round's batch, so each
round picks from what nobody has been asked to label yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from altoolkit.cli import (ToolkitArgumentParser, add_backbone_arguments, add_logging_arguments, configure_logging,
                           image_size_argument, positive_float, positive_int, seed_argument)
from altoolkit.data import DEFAULT_IMAGE_SIZE
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.feature_cache import DEFAULT_CACHE_LIMIT_BYTES
from altoolkit.labeling.exports import MAX_LABELS_FILE_BYTES
from altoolkit.labeling.live import DEFAULT_REFIT_EVERY
from altoolkit.labeling.ml_backend import DEFAULT_PORT as ML_BACKEND_PORT
from altoolkit.labeling.pool import SKIP_CHANGED_OPTION
from altoolkit.labeling.store import BatchItem, LabelStore, current_user, damage_message
from altoolkit.validation import check_positive_int

DEFAULT_STRATEGY = "recommended"
NOVELTY_NEIGHBOURS = 5
MODEL_FREE_REPRESENTATION = "patches"
"""What ``select`` without a model measures on and fits its learner to (Coates–Ng patch features)."""
MODEL_FREE_LEARNER = "linear"


def select_batch(project: str | Path, pool: str | Path, labeled: str | Path, model_path: str | Path | None,
                 budget: int, *, strategy: str = DEFAULT_STRATEGY, representation: str = "model", seed: int = 0,
                 skip_changed_images: bool = False, image_size: int = DEFAULT_IMAGE_SIZE,
                 backbone: str | None = None, backbone_weights: str | None = "imagenet",
                 cache_limit: int | None = None, max_candidates: int | None = None, engine=None,
                 verbose: bool = True) -> tuple[int, list[BatchItem]]:
    """Pick ``budget`` still-unlabeled pool images with ``strategy`` and record them as a new round.

    The pool is streamed (:mod:`altoolkit.streaming`): its files are hashed once (later rounds re-hash only
    files whose size or modification time changed), decoded in parallel batches and passed through the model or
    the representation once; the per-image arrays land in ``PROJECT/.cache/pool`` (trimmed to ``cache_limit``
    bytes) and later rounds read them memory-mapped. The labeled set is the labeled folder's training images
    plus every label already in the store. With a model, distance-based strategies measure on its embeddings
    or on a label-free ``representation``. Without one (``model_path=None``, the cold start) no training is
    needed: a label-free representation (``patches`` unless ``representation`` names another) is fitted on a
    sample of the pool's own images and applied to pool and labeled set alike; a logistic regression fitted on
    the labeled set in about a second gives the predictions and the uncertainty,
    and every strategy measures distances on that representation ("recommended": typical images while classes
    have fewer than 10 labels, then diverse margin). Images an earlier round selected and nobody has labeled yet
    are left out (they wait in that round's batch), so two selections never hand out the same image twice.
    ``representation="backbone"`` measures on the penultimate features of ``backbone`` (a ``.keras`` file or a
    ``keras.applications`` name, with ``backbone_weights``: "imagenet" or a local weights file). A
    labeled image whose file changed is an error, or left out with ``skip_changed_images``. The store is
    written only once the selection is made. Returns (round, batch).
    """
    import AL_functions as alf
    from altoolkit.data import load_dataset
    from altoolkit.files import file_sha256
    from altoolkit.label_free import LabelFreeRepresentation, PoolRepresentation, RepresentationSettings
    from altoolkit.labeling.pool import (check_labeled_pool_files, recorded_pool_hashes, stored_images,
                                         store_labeled_images)
    from altoolkit.labeling.schema import STORE_FILENAME
    from altoolkit.sampling import seeded_subsample
    from altoolkit.streaming import scan_file_pool

    check_budget_filling(strategy)
    alf.check_representation(representation)
    check_positive_int(budget, "budget")
    if backbone and representation != "backbone":
        raise ToolkitError("--backbone is measured on with --representation backbone: add it, or drop --backbone")
    settings = RepresentationSettings(backbone=backbone, backbone_weights=backbone_weights)
    if representation == "backbone":
        LabelFreeRepresentation("backbone", settings)  # no network named: refused before any image is read
    model = None
    if model_path is None:
        representation = MODEL_FREE_REPRESENTATION if representation == "model" else representation
        if strategy != alf.RECOMMENDED and "head" in alf.strategy_entry(strategy).needs:
            raise ToolkitError(f"strategy {strategy!r} reruns a trained model's last layer: pass --model, or "
                               "choose a strategy that needs no model (e.g. recommended, typicality, margin)")
        size = image_size
    else:
        from altoolkit.model import load_classifier

        model = load_classifier(model_path)
        size = int(model.inputs[0].shape[1])
    folder = load_dataset("folder", path=labeled, image_size=size)
    if model is not None and int(model.outputs[0].shape[1]) != folder.num_classes:
        raise ToolkitError(f"{model_path} predicts {model.outputs[0].shape[1]} classes but {labeled} has "
                           f"{folder.num_classes}: train the model on this labeled folder (train.py --dataset folder)")
    file_pool = scan_file_pool(pool, size, recorded_pool_hashes(project, pool))
    pool_images = stored_images(file_pool)
    representations: dict[str, PoolRepresentation] = {}

    def pool_representation(name: str) -> PoolRepresentation:
        if name not in representations:
            representations[name] = PoolRepresentation(name, file_pool, settings=settings, seed=seed,
                                                       cache_dir=Path(project) / ".cache", limit_bytes=cache_limit,
                                                       engine=engine)
        return representations[name]

    if (Path(project) / STORE_FILENAME).is_file():  # what the store refuses, refused before anything is written
        with LabelStore(project, class_names=folder.class_names, read_only=True) as existing:
            pool_candidates(existing, pool_images, pool)
            if not skip_changed_images:
                check_labeled_pool_files(existing, pool)
    # One streamed pass over the whole pool (cached for later rounds), before the store is touched: a bad pool
    # image is refused here, and no round sees more than the rows it selects from.
    if model is None:
        pool_representation(representation).pool_rows()
    else:
        from altoolkit.outputs import streamed_model_outputs

        all_probabilities, all_embeddings = streamed_model_outputs(model, file_sha256(model_path), file_pool,
                                                                   Path(project) / ".cache", cache_limit,
                                                                   engine=engine, model_path=model_path)
    store = LabelStore(project, class_names=folder.class_names)
    with store:
        candidate_rows, unlabeled, left_out = pool_candidates(store, pool_images, pool)
        eligible_count = len(candidate_rows)
        if max_candidates is not None and len(candidate_rows) > max_candidates:
            candidate_rows = [candidate_rows[i] for i in seeded_subsample(len(candidate_rows), max_candidates, seed)]
        candidates = [pool_images[row] for row in candidate_rows]
        store_images, store_classes = store_labeled_images(store, pool, size, skip_changed=skip_changed_images)
        labeled_images = np.concatenate([folder.x_train, store_images])
        labeled_classes = np.concatenate([folder.y_train, store_classes])
        labeled_count = len(labeled_images)
        if verbose:
            sampled = f" (selecting among a seeded sample of {len(candidates)})" if eligible_count > len(
                candidates) else ""
            print(f"pool: {eligible_count} unlabeled of {len(pool_images)} images{sampled}; labeled: "
                  f"{len(folder.x_train)} in {labeled} + {len(store_classes)} in the store")
            if left_out:
                print(f"left out {len(unlabeled) - eligible_count} unlabeled images that round "
                      f"{_rounds_text(left_out)} selected already: label them with label.py serve --round N")
        rows = np.asarray(candidate_rows, dtype=np.int64)

        def features_for(name: str) -> tuple[np.ndarray, np.ndarray]:
            chosen = pool_representation(name)
            # the folder's rows and the store's are cached apart: the folder's stay valid as the store grows, and
            # the live queue's worker reads them back (altoolkit.labeling.live)
            return rows_of(chosen.pool_rows(), rows), np.concatenate([chosen.rows_for(folder.x_train),
                                                                      chosen.rows_for(store_images)])

        if model is None:
            pool_embeddings, labeled_embeddings = features_for(representation)
            pool_probabilities = model_free_probabilities(pool_embeddings, labeled_embeddings, labeled_classes,
                                                          folder.num_classes)
            learner, head_for = MODEL_FREE_LEARNER, None
        else:
            from altoolkit.model import classifier_head, probabilities_and_embeddings

            _, labeled_embeddings = probabilities_and_embeddings(model, labeled_images)
            pool_probabilities, pool_embeddings = rows_of(all_probabilities, rows), rows_of(all_embeddings, rows)
            learner, head_for = model_learner(model_path), (lambda: classifier_head(model))
        selection = alf.select(strategy, alf.SelectionRound(
            pool_probabilities, pool_embeddings, labeled_embeddings, labeled_classes, features_for=features_for,
            head_for=head_for, learner=learner), budget, seed=seed, representation=representation)
        chosen, ran = selection.indices, selection.strategy
        measured_on = representation if model is None else selection.representation
        if verbose and ran != strategy:
            print(f"{strategy}: {ran} over {measured_on} features for {labeled_count} labels")
        chosen_probabilities = np.asarray(pool_probabilities[chosen])
        scores = {"entropy": alf.entropy_scores(chosen_probabilities), "margin": alf.margin_scores(chosen_probabilities),
                  "novelty": alf.analyze_novelty_embeddings(np.asarray(pool_embeddings[chosen]), labeled_embeddings,
                                                            min(NOVELTY_NEIGHBOURS, labeled_count)).scores}
        items = [BatchItem(candidates[i].image_id, store.class_names[int(chosen_probabilities[position].argmax())],
                           {name: round(float(p), 4) for name, p in zip(store.class_names,
                                                                        chosen_probabilities[position])},
                           {name: round(float(values[position]), 6) for name, values in scores.items()})
                 for position, i in enumerate(chosen)]
        store.add_images(pool_images)
        store.record_pool_file_hashes(file_pool.files)
        store.set_meta("pool", str(Path(pool).resolve()))
        store.set_meta("labeled", str(Path(labeled).resolve()))
        round_id = store.start_round(strategy, {"budget": budget, "seed": seed,
                                                "model": None if model_path is None else str(Path(model_path)),
                                                "learner": learner, "ran": ran, "representation": measured_on,
                                                **({"backbone": backbone, "backbone_weights": backbone_weights}
                                                   if measured_on == "backbone" else {}),
                                                "pool_size": len(candidates), "image_size": size,
                                                **({"unlabeled": eligible_count, "max_candidates": max_candidates}
                                                   if eligible_count > len(candidates) else {})}, items)
    return round_id, items


def engine_from_args(args: argparse.Namespace):
    """The Ray engine the select options ask for (None: local); Ray options without ``--engine ray`` are refused."""
    if args.engine != "ray":
        if args.ray_address is not None or args.ray_actors is not None:
            raise ToolkitError("--ray-address and --ray-actors configure --engine ray: add it, or drop them")
        return None
    from altoolkit.ray_engine import RayEngine, check_ray_available

    check_ray_available()
    return RayEngine(address=args.ray_address, actors=args.ray_actors or RayEngine.actors)


def rows_of(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` for ascending distinct ``rows``; all rows leave a memory-mapped array on disk (no copy)."""
    return values if len(rows) == len(values) else np.asarray(values[rows])


def pool_candidates(store: LabelStore, pool_images: list, pool: str | Path) -> tuple[list[int], list, list[int]]:
    """(rows of the pool images a selection may pick, the unlabeled images, rounds whose open batches hold the
    rest): neither labeled nor waiting in an earlier round's batch. No candidate left is an error saying why."""
    already = store.current_labels()
    waiting = images_waiting_for_labels(store, already)
    unlabeled = [image for image in pool_images if image.image_id not in already]
    candidate_rows = [row for row, image in enumerate(pool_images)
                      if image.image_id not in already and image.image_id not in waiting]
    left_out = sorted({waiting[image.image_id] for image in unlabeled if image.image_id in waiting})
    if not candidate_rows:
        if left_out:
            raise ToolkitError(f"every unlabeled image in {pool} waits in the batch of round "
                               f"{_rounds_text(left_out)}: label those (label.py serve --round N, or export and "
                               "import) before selecting more")
        raise ToolkitError(f"every image in {pool} is labeled already: retrain, or add images to the pool")
    return candidate_rows, unlabeled, left_out


def model_free_probabilities(pool_features: np.ndarray, labeled_features: np.ndarray, labeled_classes: np.ndarray,
                             num_classes: int) -> np.ndarray:
    """Class probabilities of the pool from a logistic regression fitted on the labeled set's label-free features
    (the cold start's learner: about a second, no trained model needed)."""
    from altoolkit.learners import make_learner

    learner = make_learner(MODEL_FREE_LEARNER, num_classes).fit(labeled_features, labeled_classes)
    return learner.predict_proba(pool_features)


def model_learner(model_path: str | Path) -> str:
    """The learner a model was trained with, from the metrics.json train.py writes beside it (mobilenet if none)."""
    import json

    try:
        recipe = json.loads((Path(model_path).parent / "metrics.json").read_text()).get("recipe", {})
    except (OSError, ValueError, AttributeError):
        return "mobilenet"
    learner = recipe.get("learner", "mobilenet") if isinstance(recipe, dict) else "mobilenet"
    return learner if isinstance(learner, str) else "mobilenet"


def check_budget_filling(strategy: str) -> None:
    """A labeling round needs a strategy that fills its budget (the design's intersection has any size)."""
    import AL_functions as alf

    if strategy == alf.RECOMMENDED:
        return
    name, _ = alf.resolve_strategy(strategy, "model", 0, 1)
    if not alf.strategy_entry(name).fills_budget:
        budgeted = (alf.RECOMMENDED, *(name for name, entry in alf.STRATEGY_TABLE.items() if entry.fills_budget))
        raise ToolkitError(f"strategy {strategy!r} cannot fill a budget: choose one of {', '.join(budgeted)}")


def images_waiting_for_labels(store: LabelStore, labels: dict[str, str]) -> dict[str, int]:
    """image id → the latest round that selected it, for every selected image without a current label."""
    waiting = {}
    for record in store.rounds(with_parameters=False):
        for image_id in store.batch_image_ids(record["round"]):
            if image_id not in labels:
                waiting[image_id] = record["round"]
    return waiting


def _rounds_text(rounds: list[int]) -> str:
    shown = ", ".join(str(round_id) for round_id in rounds[:10])
    return shown + (f" and {len(rounds) - 10} more" if len(rounds) > 10 else "")


def retrain_command(store: LabelStore, project: str | Path, round_id: int) -> str:
    """The train.py command that trains on the labeled folder plus every label in the store (with the fast learner
    when the round was selected without a model)."""
    labeled = store.get_meta("labeled") or "LABELED_FOLDER"
    parameters = next((record["parameters"] for record in store.rounds(with_parameters=True)
                       if record["round"] == round_id), {})
    learner = parameters.get("learner") if parameters.get("model", "") is None else None
    fast = f" --learner {learner}" if learner == MODEL_FREE_LEARNER else ""
    return (f"python train.py --dataset folder --data-path {labeled} --label-store {project}{fast} "
            f"--output-dir models/round-{round_id}")


def pool_root(store: LabelStore, override: str | None) -> Path:
    """The pool folder: ``--pool`` when given (the folder moved), else where ``select`` found it."""
    root = override or store.get_meta("pool")
    if root is None:
        raise ToolkitError(f"{store.path} does not know its pool folder: pass --pool")
    return Path(root)


def build_parser() -> argparse.ArgumentParser:
    from altoolkit.selection import REPRESENTATIONS

    parser = ToolkitArgumentParser(prog="label.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    add_logging_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--project", required=True, help="project folder (holds labels.sqlite)")
        return sub

    select = command("select", "pick a batch of still-unlabeled pool images and record it as a new round")
    select.add_argument("--pool", required=True, help="folder of unlabeled images (sub-folders allowed)")
    select.add_argument("--labeled", required=True, help="folder with one sub-folder of images per class")
    select.add_argument("--model", default=None,
                        help="trained .keras classifier (train.py --dataset folder); without one, a logistic "
                             "regression on label-free features of pool and labeled images (seconds, no training)")
    select.add_argument("--image-size", type=image_size_argument, default=DEFAULT_IMAGE_SIZE,
                        help=f"without --model: the side images are resized to (default: {DEFAULT_IMAGE_SIZE}); "
                             "a model sets its own")
    select.add_argument("--budget", type=positive_int, required=True, help="how many images to label this round")
    select.add_argument("--strategy", default=DEFAULT_STRATEGY, help=f"default: {DEFAULT_STRATEGY}")
    select.add_argument("--representation", default="model", choices=REPRESENTATIONS,
                        help="features for distance-based strategies: the model's embeddings, PCA of the pixels, "
                             "the label-free patch features or a pretrained --backbone's features (default: model, "
                             "or patches without --model; 'recommended' chooses its own with a model)")
    add_backbone_arguments(select, "with --representation backbone, distances (and, without --model, the "
                                   "learner) use its features")
    select.add_argument("--seed", type=seed_argument, default=0, help="seed of every random choice (default: 0)")
    select.add_argument("--max-candidates", type=positive_int, default=None,
                        help="select among a seeded random sample of this many unlabeled images (the whole pool "
                             "is still scored once and cached): bounds the memory and time of the expensive "
                             "strategies on a very large pool (default: all)")
    select.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where the pool's pass runs: this process (local, the default) or Ray Data actors "
                             "(ray: pip install 'al-toolkit[ray]'), on this machine or the --ray-address cluster")
    select.add_argument("--ray-address", default=None,
                        help="with --engine ray: the cluster to join (auto: the one `ray start --head` runs here; "
                             "default: a local Ray on this machine's cores)")
    select.add_argument("--ray-actors", type=positive_int, default=None,
                        help="with --engine ray: actors scoring in parallel, one core each (default: 2)")
    select.add_argument("--cache-limit-gb", type=positive_float, default=DEFAULT_CACHE_LIMIT_BYTES / 2**30,
                        help="the project's cache of per-image arrays (PROJECT/.cache) is trimmed to this size, "
                             "least recently used first (default: %(default)g)")
    select.add_argument(SKIP_CHANGED_OPTION, action="store_true",
                        help="leave out the labels of pool images whose files changed or went missing since they "
                             "were labeled (default: refuse and name them)")

    export = command("export", "write a batch folder for an external tool: images, manifest.csv, Label Studio files")
    export.add_argument("--round", type=int, default=None, help="default: the latest round")
    export.add_argument("--pool", default=None, help="the pool folder, if it moved since `select`")
    export.add_argument("--output-dir", default=None, help="default: PROJECT/batches/round-NNN")
    export.add_argument("--link", action="store_true", help="symlink the images instead of copying them")
    export.add_argument("--image-url-prefix", default=None,
                        help="put before images/<file> in Label Studio tasks "
                             "(default: /data/local-files/?d=round-NNN/)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing batch folder (only a folder holding a manifest.csv)")

    importing = command("import", "record the labels of a filled-in manifest.csv or a Label Studio JSON export")
    importing.add_argument("file", help="manifest.csv with the label column filled in, or Label Studio .json "
                                        f"(UTF-8, at most {MAX_LABELS_FILE_BYTES // 2**20} MiB); labels already "
                                        "recorded are counted as unchanged")
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
    serve.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                       help="refit the fast learner while you label and reorder the images not yet shown "
                            "(default: on for a round selected without --model, whose representation is cached)")
    serve.add_argument("--refit-every", type=positive_int, default=DEFAULT_REFIT_EVERY,
                       help="with --live: new labels between two refits (default: %(default)s)")

    backend = command("ml-backend", "serve Label Studio's ML backend protocol: predictions that order the tasks, "
                                    "annotations written to the store and refitted on")
    backend.add_argument("--round", type=int, default=None, help="default: the latest round")
    backend.add_argument("--pool", default=None, help="the pool folder, if it moved since `select`")
    backend.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    backend.add_argument("--port", type=int, default=ML_BACKEND_PORT, help="default: %(default)s (0: any free port)")
    backend.add_argument("--allow-remote", action="store_true", help="allow a --host other machines can reach")
    backend.add_argument("--refit-every", type=positive_int, default=DEFAULT_REFIT_EVERY,
                         help="new labels between two refits (default: %(default)s)")

    command("status", "labels per class and the rounds so far")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args, argv)
    if args.command == "select":
        round_id, items = select_batch(args.project, args.pool, args.labeled, args.model, args.budget,
                                       strategy=args.strategy, representation=args.representation,
                                       seed=args.seed, skip_changed_images=args.skip_changed_images,
                                       image_size=args.image_size, backbone=args.backbone,
                                       backbone_weights=args.backbone_weights,
                                       cache_limit=int(args.cache_limit_gb * 2**30),
                                       max_candidates=args.max_candidates, engine=engine_from_args(args))
        predicted = {}
        for item in items:
            predicted[item.predicted_class] = predicted.get(item.predicted_class, 0) + 1
        print(f"round {round_id}: {len(items)} images selected with {args.strategy} "
              f"(predicted: {', '.join(f'{name} {count}' for name, count in sorted(predicted.items()))})")
        print(f"label them: python label.py serve --project {args.project}   "
              f"(or export: python label.py export --project {args.project})")
        return 0
    if args.command == "status":
        with LabelStore(args.project, read_only=True) as store:
            return print_status(store)
    with LabelStore(args.project) as store:
        round_id = store.resolve_round(args.round)
        if args.command == "export":
            from altoolkit.labeling.exports import batch_folder_name, export_batch

            output_dir = Path(args.output_dir) if args.output_dir else (
                Path(args.project) / "batches" / batch_folder_name(round_id))
            export_batch(store, round_id, pool_root(store, args.pool), output_dir, link=args.link,
                         image_url_prefix=args.image_url_prefix, overwrite=args.overwrite)
            print(f"round {round_id}: {output_dir}/manifest.csv (fill in the label column), "
                  f"label_studio_tasks.json and label_studio_config.xml")
            print(f"then: python label.py import --project {args.project} FILE")
        elif args.command == "import":
            from altoolkit.labeling.exports import import_labels, read_labels_file

            labels, source = read_labels_file(args.file)
            counts = import_labels(store, round_id, labels, labeler=args.labeler or current_user(),
                                   source=source, file_name=Path(args.file).name)
            if not labels:
                print(f"{args.file} holds no filled-in labels: nothing imported")
                return 0
            print(f"imported {counts.recorded} labels into round {round_id} ({counts.new} new, {counts.changed} "
                  f"changed, {counts.unchanged} unchanged); retrain: {retrain_command(store, args.project, round_id)}")
        elif args.command == "ml-backend":
            import AL_functions as alf
            from altoolkit.labeling.ml_backend import make_backend_server, serve_backend

            serve_backend(make_backend_server(store, round_id, pool_root(store, args.pool), alf.select,
                                              host=args.host, port=args.port, allow_remote=args.allow_remote,
                                              refit_every=args.refit_every))
        elif args.command == "serve":
            import AL_functions as alf
            from altoolkit.labeling.server import serve

            live = serve_live(store, round_id, args.live)
            serve(store, round_id, pool_root(store, args.pool), host=args.host, port=args.port,
                  allow_remote=args.allow_remote, labeler=args.labeler or current_user(),
                  retrain_command=retrain_command(store, args.project, round_id),
                  open_browser=not args.no_browser, live_select=alf.select if live else None,
                  refit_every=args.refit_every)
    return 0


def serve_live(store: LabelStore, round_id: int, asked: bool | None) -> bool:
    """Whether ``serve`` runs the live queue: as asked, or by default when the round was selected without a model
    (``--live`` on a round selected with one is refused, saying why)."""
    from altoolkit.labeling.live import live_round

    if asked is False:
        return False
    try:
        live_round(store, round_id)
    except ToolkitError:
        if asked:
            raise
        return False
    return True


def live_status(record: dict) -> str:
    """One line on a round's latest live reorder: what it ran on how many labels, the estimate, the stop signal."""
    details = record["details"]
    estimate = details.get("estimate")
    accuracy = (f"accuracy {estimate['accuracy']:.0%} ± {estimate['standard_error']:.0%} ({estimate['folds']}-fold "
                f"CV on {estimate['labels']} labels)" if estimate else "accuracy: not yet (a class has one label)")
    stop = details.get("stop") or {}
    if stop.get("mean_kappa") is None:
        signal = f"stop signal after {stop.get('refits_needed', '?')} more refit(s)"
    else:
        verdict = "predictions stable: you can stop" if stop["stop"] else "predictions still changing: keep labeling"
        signal = (f"stabilizing predictions: mean kappa {stop['mean_kappa']:.3f} over the last {stop['window']} "
                  f"refits (stop at ≥ {stop['threshold']}): {verdict}")
    return f"  live: reorder {record['reorder']} ran {record['strategy']} on {details.get('labeled')} labels; " \
           f"{accuracy}; {signal}"


def print_status(store: LabelStore) -> int:
    """Print the images, labels per class and rounds; damaged rows are left out and named in one error after it.

    The store is opened read-only, so status also works on a project folder the user cannot write to.
    """
    labels = store.current_labels(skip_damaged=True)
    print(f"{store.path}: {len(store.images())} pool images, {len(labels)} labeled")
    if store.class_names:
        counts = {name: 0 for name in store.class_names}
        for class_name in labels.values():
            counts[class_name] += 1
        print("labels per class: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    for record in store.rounds(with_parameters=False):
        labeled = sum(image_id in labels for image_id in store.batch_image_ids(record["round"]))
        print(f"round {record['round']}: {record['strategy']}, {record['batch_size']} images, {labeled} labeled")
        reorders = store.reorders(record["round"])
        if reorders:
            print(live_status(reorders[-1]))
    damage = store.damaged_rows()
    if damage:
        raise ToolkitError(damage_message(store.path, damage, note=", left out of the status above"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
