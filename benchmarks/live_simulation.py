"""Benchmark: what the live queue is worth — rounds of 10 (a refit after every 10 labels, as ``serve --live``)
against batch rounds of 100, at equal labels, same learner, representation and strategy, the dataset's labels
as the oracle.

Run ``python -m benchmarks.live_simulation --help``. Fashion-MNIST (Debian's ``dataset-fashion-mnist``), the
``patches`` representation fitted once on the training images without labels (cached in ``--cache-dir``: the
benchmark's own cache, so a run after ``make bench-pipelines`` reads it back), the ``linear`` learner and the
``recommended`` strategy. Each seed draws a pool of ``--pool-size`` training images and ``--initial`` random
labels from it; both arms start from those and label ``--labels`` more, the live arm ``--live-step`` at a time,
the batch arm ``--batch-step`` at a time, refitting after every step. Test accuracy (the 10,000 test images) is
compared after every ``--batch-step`` labels: the mean of each arm, and their paired difference over seeds with
its 95 % t interval and the paired t-test's p-value. The report is written either way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report

SCRIPT = "benchmarks/live_simulation.py"
LEARNER = "linear"
REPRESENTATION = "patches"
STRATEGY = "recommended"


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=positive_int, default=10, help="seeds 0 … N−1 (default: 10)")
    parser.add_argument("--pool-size", type=positive_int, default=5_000, help="default: 5000")
    parser.add_argument("--initial", type=positive_int, default=100, help="random labels to start (default: 100)")
    parser.add_argument("--labels", type=positive_int, default=500, help="labels added by each arm (default: 500)")
    parser.add_argument("--live-step", type=positive_int, default=10, help="default: 10")
    parser.add_argument("--batch-step", type=positive_int, default=100, help="default: 100")
    parser.add_argument("--cache-dir", default="results/.cache", help="representation cache (default: results/.cache)")
    parser.add_argument("--output", default=None, metavar="FILE.md", help="also write the report here (and the "
                                                                          "per-seed accuracies beside it as .json)")
    return parser


def run_arm(features: np.ndarray, classes: np.ndarray, test_features: np.ndarray, test_classes: np.ndarray,
            pool: np.ndarray, initial: int, added: int, step: int, every: int, seed: int) -> list[float]:
    """Test accuracy after 0, ``every``, 2 × ``every`` … ``added`` labels added to the pool's first ``initial``,
    ``step`` at a time, each step selected by the recommended strategy after a refit on all labels so far."""
    import AL_functions as alf
    from altoolkit.learners import make_learner
    from altoolkit.selection import SelectionRound

    num_classes = int(classes.max()) + 1
    labeled = list(pool[:initial])
    candidates = np.ones(len(pool), dtype=bool)
    candidates[:initial] = False
    accuracies = []
    for round_number in range(added // step + 1):
        rows = np.asarray(labeled)
        learner = make_learner(LEARNER, num_classes).fit(features[rows], classes[rows])
        if (len(labeled) - initial) % every == 0:
            predicted = np.argmax(learner.predict_proba(test_features), axis=1)
            accuracies.append(float(np.mean(predicted == test_classes)))
        if len(labeled) - initial >= added:
            break
        positions = np.flatnonzero(candidates)
        pool_features = features[pool[positions]]
        selection = alf.select(STRATEGY, SelectionRound(
            learner.predict_proba(pool_features), pool_features, features[rows], classes[rows],
            features_for=lambda _: (pool_features, features[rows]), learner=LEARNER),
            step, seed=seed * 100_003 + round_number, representation=REPRESENTATION)
        chosen = positions[np.asarray(selection.indices, dtype=np.int64)]
        candidates[chosen] = False
        labeled.extend(pool[chosen])
    return accuracies


def paired_difference(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``first − second`` over seeds, the half-width of its 95 % t interval, and the paired t-test's p."""
    from scipy import stats

    difference = np.asarray(first) - np.asarray(second)
    if len(difference) < 2:
        raise ToolkitError("a paired difference needs at least two seeds: raise --seeds")
    error = float(np.std(difference, ddof=1) / np.sqrt(len(difference)))
    half_width = float(stats.t.ppf(0.975, len(difference) - 1) * error)
    if error == 0:  # every seed differs by the same amount: certain, unless that amount is zero
        return float(np.mean(difference)), 0.0, 0.0 if np.any(difference) else 1.0
    p_value = float(stats.ttest_rel(first, second).pvalue)
    return float(np.mean(difference)), half_width, p_value


def report_lines(arguments: argparse.Namespace, live: np.ndarray, batch: np.ndarray, seconds: dict) -> list[str]:
    lines = ["# The live queue against batch rounds, at equal labels", "",
             f"Fashion-MNIST, {arguments.seeds} seeds; each seed a pool of {arguments.pool_size} training images and "
             f"{arguments.initial} random labels from it; then {arguments.labels} labels chosen by `{STRATEGY}` "
             f"with the `{LEARNER}` learner on `{REPRESENTATION}` features, refitted after every step: the live "
             f"queue {arguments.live_step} at a time, batch rounds {arguments.batch_step} at a time. Test accuracy "
             "on the 10,000 test images; the difference is paired by seed (95 % t interval, paired t-test).", "",
             "| labels | live (mean %) | batch (mean %) | live − batch (points) | p |", "|---:|---:|---:|---:|---:|"]
    for column in range(1, live.shape[1]):
        mean, half_width, p_value = paired_difference(live[:, column], batch[:, column])
        labels = arguments.initial + column * arguments.batch_step
        lines.append(f"| {labels} | {100 * live[:, column].mean():.2f} | {100 * batch[:, column].mean():.2f} | "
                     f"{100 * mean:+.2f} ± {100 * half_width:.2f} | {p_value:.3g} |")
    last_mean, last_half, last_p = paired_difference(live[:, -1], batch[:, -1])
    verdict = ("better" if last_mean - last_half > 0 else "worse" if last_mean + last_half < 0
               else "not distinguishable from batch rounds")
    lines += ["", f"At {arguments.initial + arguments.labels} labels the live queue is {verdict} "
                  f"({100 * last_mean:+.2f} ± {100 * last_half:.2f} points, p = {last_p:.3g}). Selection and "
                  f"refitting took {seconds['live']:.0f} s for the live arm and {seconds['batch']:.0f} s for the "
                  "batch arm over all seeds."]
    return lines


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from altoolkit.data import load_dataset
    from altoolkit.label_free import RepresentationSettings, label_free_features

    arguments = build_parser().parse_args(argv)
    if arguments.labels % arguments.batch_step or arguments.batch_step % arguments.live_step:
        raise ToolkitError("--labels must be a multiple of --batch-step, and --batch-step of --live-step")
    started = time.perf_counter()
    dataset = load_dataset("fashion_mnist")
    if arguments.initial + arguments.labels > min(arguments.pool_size, len(dataset.x_train)):
        raise ToolkitError("--initial plus --labels exceeds the pool: raise --pool-size or lower --labels")
    rows = label_free_features(REPRESENTATION, np.concatenate([dataset.x_train, dataset.x_test]),
                               fit_images=dataset.x_train, seed=0, settings=RepresentationSettings(),
                               cache_dir=arguments.cache_dir)
    features, test_features = np.asarray(rows[:len(dataset.x_train)]), np.asarray(rows[len(dataset.x_train):])
    curves = {"live": [], "batch": []}
    seconds = {"live": 0.0, "batch": 0.0}
    for seed in range(arguments.seeds):
        pool = np.random.default_rng(seed).choice(len(dataset.x_train), arguments.pool_size, replace=False)
        for arm, step in (("live", arguments.live_step), ("batch", arguments.batch_step)):
            arm_started = time.perf_counter()
            curves[arm].append(run_arm(features, dataset.y_train, test_features, dataset.y_test, pool,
                                       arguments.initial, arguments.labels, step, arguments.batch_step, seed))
            seconds[arm] += time.perf_counter() - arm_started
        print(f"seed {seed}: live {curves['live'][-1][-1]:.4f}, batch {curves['batch'][-1][-1]:.4f}", flush=True)
    live, batch = np.asarray(curves["live"]), np.asarray(curves["batch"])
    if arguments.output is not None:
        from altoolkit.files import write_text

        write_text(Path(arguments.output).with_suffix(".json"), json.dumps(
            {"arguments": vars(arguments), "live": live.tolist(), "batch": batch.tolist()}, indent=1) + "\n")
    finish_report(report_lines(arguments, live, batch, seconds), started, arguments.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
