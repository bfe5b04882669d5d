"""Benchmark: paired, multi-seed simulation of what each selection strategy is worth against random.

Per seed, a seeded permutation of the training set gives the initial labeled set (its first ``n0`` images) and
the pool (the next ``pool_size``). Round 0 trains the base model once, shared by every strategy; then, for each
strategy and round, the previous round's model scores the pool (one forward pass over pool + labeled), the
strategy picks ``budget`` images (oracle: the dataset's labels), and the model is retrained from the seed's
initial weights on everything labeled so far and evaluated on the test split.

Standalone: ``python Evaluation/Benchmark/benchmark.py --preset quick --output-dir results/benchmark`` (or
``python -m Evaluation.Benchmark.benchmark ...``) writes ``results.json`` (rewritten after every finished cell,
so a restart with the same arguments resumes), ``learning_curve.png``, ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from altoolkit.cli import (ToolkitArgumentParser, add_logging_arguments, configure_logging, image_size_argument,
                           non_negative_int, positive_int)
from altoolkit.data import Dataset, parse_classes
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import check_writable_directory, write_json
from altoolkit.progress import Countdown, logger
from Evaluation.Benchmark.config import (CURVE_FILENAME, DISTILLED, FAST_LEARNERS, HTML_REPORT_FILENAME, PRESETS,
                                         REPORT_FILENAME, RESULTS_FILENAME,
                                         WORKER_DIRNAME, BenchmarkConfig, benchmark_strategy_names,
                                         load_benchmark_dataset, seed_order)
from Evaluation.Benchmark.records import cell_counts, merge_worker_cells, open_results, seed_record
from Evaluation.Benchmark.report import write_report
from Evaluation.Benchmark.fast import DEFAULT_CACHE_DIR
from Evaluation.Benchmark.simulation import (learner_features, make_seed_run, peak_memory_mb, run_in_workers,
                                             seed_has_work)
from Evaluation.Benchmark.trainer import save_weights


def run_benchmark(config: BenchmarkConfig, output_dir: str | Path, *, dataset: Dataset | None = None,
                  command: str = "", verbose: bool = True, on_cell: Callable[[dict], None] | None = None,
                  workers: int = 1, cache_dir: str | Path = DEFAULT_CACHE_DIR, baseline: str | None = None) -> dict:
    """Run (or resume) the benchmark into ``output_dir``; write results.json and the report.

    ``workers`` > 1 runs that many processes with one TensorFlow thread each (faster on several cores than one
    process using them all; the numbers differ from a one-process run, hence a resume needs the same value).
    ``on_cell(results)`` is called after each finished cell has been written (one process only; a progress
    hook). A fast learner's representation is computed once and cached in ``cache_dir``. Returns the results.
    With ``verbose``, messages go to the ``al_toolkit.benchmark`` logger (stdout, and a ``--log-file``): each
    cell's accuracy, then ``cell 12/40 done (random, seed 3) · elapsed 5m12s · ETA 12m30s``, the ETA at the mean
    time per cell finished in this run (cells resumed from results.json count as done, not toward the rate).
    """
    config.validate()
    if not isinstance(workers, int) or workers < 1:
        raise ToolkitError(f"--workers must be a positive integer, got {workers!r}")
    output_dir = check_writable_directory(output_dir, "--output-dir")
    dataset = dataset if dataset is not None else load_benchmark_dataset(config)
    seed_order(len(dataset.x_train), config, 0)
    results = open_results(output_dir, config, dataset, command, workers)
    if baseline is not None:
        results["baseline"] = str(baseline)
    write_json(output_dir / RESULTS_FILENAME, results)
    say = logger("benchmark").info if verbose else (lambda message: None)
    done, total = cell_counts(results, config)
    if done:
        say(f"{done} of {total} cells already done (recorded in {RESULTS_FILENAME})")
    features = learner_features(config, dataset, cache_dir)
    countdown = Countdown(total)  # after the one-off representation, which would skew the rate

    def saver(name: str, seed: int) -> Callable[[Path | None, list | None], None]:
        """What a seed's run calls as each cell of ``name`` finishes: keep it, then say how far the run is."""
        def save(state: Path | None, weights: list[np.ndarray] | None) -> None:
            if state is not None:
                save_weights(state, weights)
            write_json(output_dir / RESULTS_FILENAME, results)
            say(countdown.finished(cell_counts(results, config)[0], f"{name}, seed {seed}"))
            if on_cell is not None:
                on_cell(results)

        return save

    if workers == 1:
        for seed in config.seed_numbers:
            record = seed_record(results, config, len(dataset.x_train), seed)
            if not seed_has_work(record, config):
                continue
            run = make_seed_run(config, dataset, seed, output_dir, say, features)
            run.run_base(record, saver("base", seed))
            for name in config.strategies:
                run.run_strategy(name, results["seeds"][str(seed)]["strategies"].setdefault(name, []),
                                 saver(name, seed))
    else:
        run_in_workers(config, dataset, output_dir, results, workers, verbose, cache_dir, countdown, done)
        merge_worker_cells(results, output_dir, config, len(dataset.x_train))
    results["peak_memory_mb"] = max(peak_memory_mb(), results.get("peak_memory_mb") or 0.0)
    write_json(output_dir / RESULTS_FILENAME, results)
    shutil.rmtree(output_dir / WORKER_DIRNAME, ignore_errors=True)
    write_report(results, output_dir, dataset)
    say(f"wrote {output_dir / RESULTS_FILENAME}, {output_dir / CURVE_FILENAME}, {output_dir / REPORT_FILENAME} and "
        f"{output_dir / HTML_REPORT_FILENAME}")
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                        help="starting settings, each overridable below (default: quick)")
    parser.add_argument("--output-dir", default=None, help="where files go (default: results/benchmark/<preset>)")
    parser.add_argument("--dataset", default=None, help="data source (digits, fashion_mnist, cifar10, folder, npz)")
    parser.add_argument("--classes", default=None, help="comma-separated class ids or names, or 'all'")
    parser.add_argument("--data-path", default=None, help="archive, folder or .npz to read")
    parser.add_argument("--image-size", type=image_size_argument, default=None, help="square image side (default: 32)")
    parser.add_argument("--n0", type=positive_int, default=None, help="initial labeled images per seed (at least 2)")
    parser.add_argument("--budget", type=positive_int, default=None, help="images selected per round")
    parser.add_argument("--rounds", type=positive_int, default=None, help="selection rounds")
    parser.add_argument("--seeds", type=positive_int, default=None, help="number of paired seeds (0..S-1)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="training epochs per round")
    parser.add_argument("--strategies", default=None, help=f"comma-separated, from {','.join(benchmark_strategy_names())}")
    parser.add_argument("--pool-size", type=positive_int, default=None,
                        help="pool images per seed (default: all the rest)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="training batch size (default: 32)")
    parser.add_argument("--learner", default=None, choices=("mobilenet", DISTILLED, *FAST_LEARNERS),
                        help="mobilenet (trained from scratch every round), mobilenet_distilled (the same on the "
                             "labels plus label spreading's surest pseudo-labels over patch features) or a fast "
                             "learner refitted every round on --representation")
    parser.add_argument("--representation", default=None, choices=("model", "patches", "pixels"),
                        help="what strategies measure distances on, and a fast learner's input (default: model)")
    parser.add_argument("--initial", default=None,
                        help="first n0 labels: random (shared), each (every strategy picks its own from zero "
                             "labels; random stays random), or a strategy name that picks them for all")
    parser.add_argument("--first-seed", type=non_negative_int, default=None,
                        help="first seed number (tuning runs use seeds the reports do not; default: 0)")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="a finished benchmark folder of the design's baseline (random + MobileNetV3Small): the "
                             "report adds every strategy's label efficiency against it")
    parser.add_argument("--max-candidates", type=positive_int, default=None,
                        help="each selection chooses among a seeded random sample of this many unlabeled images "
                             "(default: all), to measure what label.py select --max-candidates costs")
    parser.add_argument("--cache-dir", default=None, help=f"where representations are cached (default: "
                                                          f"{DEFAULT_CACHE_DIR})")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes training in parallel, one TensorFlow thread each (default: 1 process "
                             "with TensorFlow's default threads); use the number of CPU cores for long runs")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_logging_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """The preset with every given option replacing its value."""
    changes = {key: getattr(args, key) for key in ("dataset", "data_path", "image_size", "n0", "budget", "rounds",
                                                   "seeds", "epochs", "pool_size", "batch_size", "learner",
                                                   "representation", "initial", "first_seed", "max_candidates")
               if getattr(args, key) is not None}
    if args.classes is not None:
        changes["classes"] = (None if args.classes.strip().lower() == "all"
                              else tuple(str(c) for c in parse_classes(args.classes)))
    if args.strategies is not None:
        changes["strategies"] = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    return dataclasses.replace(PRESETS[args.preset], **changes)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args, argv)
    config = config_from_args(args)
    output_dir = Path(args.output_dir or f"results/benchmark/{args.preset}")
    command = shlex.join([Path(sys.argv[0]).name if argv is None else "benchmark.py",
                          *(sys.argv[1:] if argv is None else argv)])
    run_benchmark(config, output_dir, command=command, verbose=not args.quiet, workers=args.workers,
                  cache_dir=args.cache_dir or DEFAULT_CACHE_DIR, baseline=args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
