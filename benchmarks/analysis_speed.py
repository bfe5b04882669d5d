"""Benchmark: does analysing a pool cost at most 1.25× one forward pass over it?

Run ``python benchmarks/analysis_speed.py --help``. For each pool size it measures, on one MobileNetV3Small
classifier (32×32 input; by default untrained, weights from seed 0, or a trained ``--model``):

(a) one plain ``model.predict(pool, batch_size=512)`` of the classifier (probabilities only): the reference
    forward pass;
(b) one two-output pass :func:`altoolkit.model.probabilities_and_embeddings` over the labeled set and the
    pool together — what the toolkit runs once per pool (see :mod:`altoolkit.outputs`);
(c) the heuristics on those arrays: ``select_uncertain``, ``analyze_diversity_embeddings``,
    ``analyze_novelty_embeddings`` and ``intersect_indices``, each timed on its own.

Every time is the median over ``--repeats`` runs, measured after a warm-up predict of each model on the same
batch shapes, so graph tracing is not counted. The target compares the *whole analysis* — (b) + (c) — with (a). Real images (Fashion-MNIST classes 0, 1, 8, resized to 32×32
RGB) are used when Debian's ``dataset-fashion-mnist`` files are installed and hold enough images for the
labeled set plus the pool; otherwise the pixels are synthetic uint8 noise from ``numpy.random.default_rng``.

An untrained MobileNetV3Small's forward pass costs what a trained one's does, but its outputs are degenerate
(embeddings around 1e-11, uniform probabilities), so the heuristics' times are only realistic with a trained
``--model``. On a shared machine, other processes' load inflates wall-clock times (the report shows the load
average, the fastest-run ratio and a CPU-time ratio); ``--heuristic-threads`` measures the heuristics with
BLAS/OpenMP thread pools limited by threadpoolctl.

This is a benchmark to read, not a timed test: it always exits 0 unless its arguments are wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_int, seed_argument
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.model import INFERENCE_BATCH_SIZE

TARGET_RATIO = 1.25
"""The issue's target: the whole analysis of a pool costs at most this many plain forward passes over it."""

PROTOTYPE_PREDICTS_PER_ANALYSIS = 7
"""Forward passes the prototype ran for one analysis of a pool (each module re-predicted the pool itself)."""

NUM_CLASSES = 3
IMAGE_SHAPE = (32, 32, 3)
BATCH_SIZE = INFERENCE_BATCH_SIZE
MODEL_SEED = 0
FASHION_MNIST_CLASSES = (0, 1, 8)

UNCERTAINTY_PERCENTILE = 50
N_CLUSTERS = 20
K_NEIGHBORS = 5

HEURISTICS = ("select_uncertain", "analyze_diversity_embeddings", "analyze_novelty_embeddings",
              "intersect_indices")

SCRIPT = "benchmarks/analysis_speed.py"


@dataclass(frozen=True)
class PoolImages:
    """The images of one benchmark case: the labeled set, the pool, and where their pixels came from."""

    labeled: np.ndarray
    pool: np.ndarray
    source: str


@dataclass(frozen=True)
class Timing:
    """All measured durations of one step, in seconds, in the order they were measured."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def minimum(self) -> float:
        return min(self.seconds)

    def cell(self) -> str:
        """``median s (min–max)``, or just the median when there was a single run."""
        if len(self.seconds) == 1:
            return f"{self.median:.3f} s"
        return f"{self.median:.3f} s ({min(self.seconds):.3f}–{max(self.seconds):.3f})"


@dataclass(frozen=True)
class CaseResult:
    """Measurements for one pool size."""

    pool_size: int
    labeled_size: int
    source: str
    plain_predict: Timing
    two_output_pass: Timing
    heuristics: dict[str, Timing]
    cpu: dict[str, Timing]
    first_heuristics_call: float
    selected: dict[str, int]
    embedding_width: int
    embedding_scale: tuple[float, float]
    distinct_probability_rows: int
    peak_rss_mib: float
    load_average: tuple[float, float]

    @property
    def heuristics_seconds(self) -> float:
        """Sum of the heuristics' median times."""
        return sum(timing.median for timing in self.heuristics.values())

    @property
    def whole_analysis_seconds(self) -> float:
        """One two-output pass over the labeled set and the pool together + all heuristics (medians)."""
        return self.two_output_pass.median + self.heuristics_seconds

    @property
    def whole_ratio_of_minimums(self) -> float:
        """Fastest whole analysis / fastest plain predict: the runs least disturbed by other processes."""
        whole = self.two_output_pass.minimum + sum(timing.minimum for timing in self.heuristics.values())
        return whole / self.plain_predict.minimum

    @property
    def heuristics_ratio(self) -> float:
        return self.heuristics_seconds / self.plain_predict.median

    @property
    def whole_ratio(self) -> float:
        """The number compared with :data:`TARGET_RATIO`: median whole analysis / median plain predict."""
        return self.whole_analysis_seconds / self.plain_predict.median

    def paired_ratios(self, clock: str = "wall") -> list[float]:
        """Whole analysis / plain predict within each repeat, on the wall clock or this process's CPU time."""
        steps = {"plain": self.plain_predict, "pass": self.two_output_pass,
                 **self.heuristics} if clock == "wall" else self.cpu
        ratios = []
        for repeat, plain in enumerate(steps["plain"].seconds):
            whole = sum(steps[step].seconds[repeat] for step in ("pass", *HEURISTICS))
            ratios.append(whole / plain)
        return ratios


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (also used by ``--help``)."""
    parser = ToolkitArgumentParser(
        prog=SCRIPT,
        description="Time one plain forward pass over a pool against the whole active-learning analysis of "
                    f"it (two-output pass + uncertainty, diversity, novelty, intersection); target ≤ "
                    f"{TARGET_RATIO}×. Prints a Markdown table.")
    parser.add_argument("--pool-sizes", type=positive_int, nargs="+", default=[3500, 50000], metavar="N",
                        help="pool sizes to measure (default: 3500 50000)")
    parser.add_argument("--labeled-size", type=positive_int, default=500,
                        help="images in the labeled set used for novelty (default: 500)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed runs of every step; the median is reported (default: 3)")
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the synthetic pixels (default: 0)")
    parser.add_argument("--heuristic-threads", type=positive_int, default=None, metavar="N",
                        help="run the heuristics with BLAS and OpenMP limited to N threads (threadpoolctl), to "
                             "measure that setting (default: the libraries' own default)")
    parser.add_argument("--model", type=Path, default=None, metavar="FILE.keras",
                        help="time this trained classifier (32×32×3 input) instead of the untrained "
                             "build_model(...) — its embeddings and probabilities are realistic, so the "
                             "heuristics' times are too")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.md",
                        help="also write the Markdown report to this file (atomically)")
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    if args.labeled_size < K_NEIGHBORS:
        raise ToolkitError(f"--labeled-size must be at least {K_NEIGHBORS} (the novelty analysis's k), "
                           f"got {args.labeled_size}")
    too_small = [size for size in args.pool_sizes if size < N_CLUSTERS]
    if too_small:
        raise ToolkitError(f"pool sizes must be at least {N_CLUSTERS} (the diversity analysis's clusters), "
                           f"got {too_small[0]}")


def fashion_mnist_folder() -> Path | None:
    """Debian's Fashion-MNIST folder when its training images are installed, else None."""
    from altoolkit.sources import FASHION_MNIST_DEBIAN_DIR

    needed = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if all((FASHION_MNIST_DEBIAN_DIR / name).is_file() for name in needed):
        return FASHION_MNIST_DEBIAN_DIR
    return None


def synthetic_images(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` images of uniform uint8 noise with the benchmark's image shape."""
    return rng.integers(0, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)


def case_images(pool_size: int, labeled_size: int, seed: int, real_train: np.ndarray | None,
                real_source: str) -> PoolImages:
    """Real images (first ``labeled_size`` + next ``pool_size``) when there are enough, else synthetic ones."""
    if real_train is not None and labeled_size + pool_size <= len(real_train):
        return PoolImages(labeled=real_train[:labeled_size], pool=real_train[labeled_size:labeled_size + pool_size],
                          source=real_source)
    rng = np.random.default_rng(seed)
    labeled = synthetic_images(labeled_size, rng)
    pool = synthetic_images(pool_size, rng)
    return PoolImages(labeled=labeled, pool=pool, source=f"synthetic uint8 pixels (numpy default_rng({seed}))")


def _warm_up_slice(images: np.ndarray) -> np.ndarray:
    """The smallest prefix of ``images`` that the predict loop cuts into the same batch shapes as all of it."""
    remainder = len(images) % BATCH_SIZE
    return images[:min(len(images), BATCH_SIZE + remainder)]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure_case(model, two_outputs, images: PoolImages, repeats: int,
                 heuristic_threads: int | None = None) -> CaseResult:
    """Time (a), (b) and (c) for one pool, ``repeats`` times each, after a warm-up of each model and heuristic.

    One repeat runs (a), then the whole analysis (b, c), so every repeat gives a paired ratio
    that a burst of load from other processes affects on both sides alike. ``heuristic_threads`` limits the
    BLAS and OpenMP thread pools while the heuristics run (None: leave the libraries' defaults).
    """
    from altoolkit.model import probabilities_and_embeddings

    pool, labeled = images.pool, images.labeled
    load_before = os.getloadavg()[0]
    for sample in (_warm_up_slice(pool), _warm_up_slice(labeled)):
        model.predict(sample, batch_size=BATCH_SIZE, verbose=0)
        probabilities_and_embeddings(two_outputs, sample, batch_size=BATCH_SIZE)

    steps = ("plain", "pass") + HEURISTICS
    labeled_and_pool = np.concatenate([labeled, pool])
    wall: dict[str, list[float]] = {step: [] for step in steps}
    cpu: dict[str, list[float]] = {step: [] for step in steps}

    def timed(step: str, function: Callable[[], object]):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        result = function()
        cpu[step].append(time.process_time() - cpu_started)
        wall[step].append(time.perf_counter() - wall_started)
        return result

    first_heuristics_call = None
    for repeat in range(repeats):
        timed("plain", lambda: model.predict(pool, batch_size=BATCH_SIZE, verbose=0))
        all_probabilities, all_embeddings = timed(
            "pass", lambda: probabilities_and_embeddings(two_outputs, labeled_and_pool, batch_size=BATCH_SIZE))
        probabilities, embeddings = all_probabilities[len(labeled):], all_embeddings[len(labeled):]
        labeled_embeddings = all_embeddings[:len(labeled)]
        with _thread_limit(heuristic_threads):
            if repeat == 0:  # the first call imports scikit-learn/scipy and starts OpenMP: reported, not counted
                started = time.perf_counter()
                _run_heuristics(probabilities, embeddings, labeled_embeddings)
                first_heuristics_call = time.perf_counter() - started
            selected = _run_heuristics(probabilities, embeddings, labeled_embeddings, timed)

    return CaseResult(pool_size=len(pool), labeled_size=len(labeled), source=images.source,
                      plain_predict=Timing(tuple(wall["plain"])), two_output_pass=Timing(tuple(wall["pass"])),
                      heuristics={name: Timing(tuple(wall[name])) for name in HEURISTICS},
                      cpu={step: Timing(tuple(values)) for step, values in cpu.items()},
                      first_heuristics_call=first_heuristics_call, selected=selected,
                      embedding_width=int(embeddings.shape[1]),
                      embedding_scale=(float(np.abs(embeddings).mean()), float(embeddings.std(axis=0).mean())),
                      distinct_probability_rows=len(np.unique(probabilities.round(4), axis=0)),
                      peak_rss_mib=peak_rss_mib(),
                      load_average=(load_before, os.getloadavg()[0]))


def _thread_limit(threads: int | None):
    """A context limiting BLAS/OpenMP to ``threads`` threads, or doing nothing when ``threads`` is None."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def _run_heuristics(probabilities: np.ndarray, embeddings: np.ndarray, labeled_embeddings: np.ndarray,
                    timed: Callable[[str, Callable[[], object]], object] | None = None) -> dict[str, int]:
    """Run the four heuristics as the toolkit does; ``timed(name, function)`` wraps each one if given."""
    from AL_functions import (analyze_diversity_embeddings, analyze_novelty_embeddings, intersect_indices,
                              select_uncertain)

    def run(name: str, function: Callable[[], object]):
        return function() if timed is None else timed(name, function)

    uncertain = run("select_uncertain", lambda: select_uncertain(probabilities, UNCERTAINTY_PERCENTILE))
    diverse = run("analyze_diversity_embeddings",
                  lambda: analyze_diversity_embeddings(embeddings, N_CLUSTERS, random_state=0))
    novel = run("analyze_novelty_embeddings",
                lambda: analyze_novelty_embeddings(embeddings, labeled_embeddings, K_NEIGHBORS))
    common = run("intersect_indices", lambda: intersect_indices(uncertain.indices, diverse.indices, novel.indices))
    return {"uncertain": len(uncertain.indices), "far from centroid": len(diverse.indices),
            "novel": len(novel.indices), "intersection": len(common)}


def _versions() -> str:
    import keras
    import sklearn
    import tensorflow as tf

    return (f"TensorFlow {tf.__version__}, Keras {keras.__version__}, scikit-learn {sklearn.__version__}, "
            f"numpy {np.__version__}, Python {platform.python_version()}")


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def _verdict(ratio: float) -> str:
    return "✅ holds" if ratio <= TARGET_RATIO else "❌ misses"


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.3f}–{max(values):.3f}"


def render_report(command: str, model_note: str, threads_note: str, results: Sequence[CaseResult],
                  repeats: int, wall_seconds: float) -> str:
    """The Markdown report: command, machine, one column per pool size, verdict."""
    from altoolkit.sampling import FIT_SAMPLE

    usable = _usable_cpus()
    cpus = f"{os.cpu_count()} CPUs (os.cpu_count())" + (f", {usable} usable by this process" if usable else "")
    lines = [
        "# Analysis speed vs one forward pass",
        "",
        "```",
        command,
        "```",
        "",
        f"- Machine: {cpus}, {platform.machine()}, {platform.system()}; {_versions()}.",
        f"- Model: {model_note}.",
        f"- Heuristics' threads: {threads_note}.",
        f"- Each time is the wall-clock median (min–max) of {repeats} repeat(s), measured after one warm-up "
        f"predict per model (so graph tracing is not counted); batch size {BATCH_SIZE}. A repeat runs (a) and "
        "then the whole analysis, so each repeat also gives a paired ratio.",
        f"- The machine may be shared: a {os.cpu_count()}-core load average above ~{os.cpu_count()} means other "
        "processes competed for the cores and wall-clock times are inflated; the CPU-time ratio is then the "
        "steadier number.",
        "- **Whole analysis** = one two-output pass over the labeled set and the pool together + the four "
        f"heuristics. **This is what is compared with the target of ≤ {TARGET_RATIO}× one plain "
        "`model.predict` over the pool (a).**",
        "",
    ]
    header = [""] + [f"pool {r.pool_size:,}" for r in results]
    rows: list[list[str]] = [
        ["pixels"] + [r.source for r in results],
        ["labeled set"] + [f"{r.labeled_size:,} images" for r in results],
        ["(a) plain `model.predict` over the pool (probabilities only)"] + [r.plain_predict.cell() for r in results],
        ["(a) throughput"] + [f"{r.pool_size / r.plain_predict.median:,.0f} img/s" for r in results],
        ["(b) one two-output pass over labeled set + pool (probabilities + embeddings)"]
        + [r.two_output_pass.cell() for r in results],
        ["(b) / (a)"] + [f"{r.two_output_pass.median / r.plain_predict.median:.3f}" for r in results],
    ]
    for name in HEURISTICS:
        label = f"(c) `{name}`"
        if name == "analyze_diversity_embeddings":
            label += f" (k={N_CLUSTERS}; fitted on at most {FIT_SAMPLE:,} sampled rows)"
        elif name == "analyze_novelty_embeddings":
            label += f" (k={K_NEIGHBORS})"
        elif name == "select_uncertain":
            label += f" (top {UNCERTAINTY_PERCENTILE} %)"
        rows.append([label] + [r.heuristics[name].cell() for r in results])
    rows += [
        ["(c) heuristics total (sum of medians)"] + [f"{r.heuristics_seconds:.3f} s" for r in results],
        ["(c) first heuristics call, untimed warm-up (imports scikit-learn, starts OpenMP)"]
        + [f"{r.first_heuristics_call:.3f} s" for r in results],
        ["heuristics / (a)"] + [f"{r.heuristics_ratio:.3f}×" for r in results],
        ["**whole analysis** (b + c)"] + [f"**{r.whole_analysis_seconds:.3f} s**" for r in results],
        [f"**whole analysis / (a)** — target ≤ {TARGET_RATIO}× (ratio of medians; range over repeats)"]
        + [f"**{r.whole_ratio:.3f}× {_verdict(r.whole_ratio)}** ({_range(r.paired_ratios('wall'))})"
           for r in results],
        ["whole analysis / (a), ratio of the fastest runs (least disturbed by other processes)"]
        + [f"{r.whole_ratio_of_minimums:.3f}×" for r in results],
        ["whole analysis / (a) in this process's CPU time (median; range over repeats) — less sensitive to "
         "other processes' load"]
        + [f"{statistics.median(r.paired_ratios('cpu')):.3f}× ({_range(r.paired_ratios('cpu'))})" for r in results],
        [f"prototype's cost model: {PROTOTYPE_PREDICTS_PER_ANALYSIS} × (a), heuristics not counted"]
        + [f"{PROTOTYPE_PREDICTS_PER_ANALYSIS * r.plain_predict.median:.3f} s "
           f"({PROTOTYPE_PREDICTS_PER_ANALYSIS * r.plain_predict.median / r.whole_analysis_seconds:.1f}× "
           "the whole analysis)" for r in results],
        ["selected: uncertain / far / novel / intersection"]
        + [" / ".join(f"{count:,}" for count in r.selected.values()) for r in results],
        ["embeddings: width; mean absolute value; mean std across the pool"]
        + [f"{r.embedding_width}; {r.embedding_scale[0]:.3g}; {r.embedding_scale[1]:.3g}" for r in results],
        ["distinct probability rows (rounded to 4 decimals)"]
        + [f"{r.distinct_probability_rows:,}" for r in results],
        ["peak RSS of the process after this pool"] + [f"{r.peak_rss_mib:,.0f} MiB" for r in results],
        ["1-minute load average before → after this pool"]
        + [f"{r.load_average[0]:.2f} → {r.load_average[1]:.2f}" for r in results],
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] * len(header)) + " |")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    holds = all(r.whole_ratio <= TARGET_RATIO for r in results)
    lines += [
        "",
        f"Target (whole analysis ≤ {TARGET_RATIO}× one plain forward pass): "
        + ("**holds** for every pool size measured." if holds else
           "**missed** for pool size(s) " + ", ".join(f"{r.pool_size:,}" for r in results
                                                     if r.whole_ratio > TARGET_RATIO) + "."),
        "",
        f"Total wall time of this run (imports, data, model, warm-ups and all repeats): {wall_seconds:.1f} s.",
        "",
    ]
    return "\n".join(lines)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    """Measure every ``--pool-sizes`` case, print the Markdown report, and write it to ``--output`` if given."""
    started = time.perf_counter()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    _check_arguments(args)
    command = shlex.join(["python", SCRIPT, *arguments])

    import keras

    from altoolkit.data import load_dataset
    from altoolkit.files import write_text
    from altoolkit.model import build_model, check_input_shape, load_classifier, probabilities_and_embeddings_model

    if args.model is None:
        keras.utils.set_random_seed(MODEL_SEED)
        model = build_model(num_classes=NUM_CLASSES, input_shape=IMAGE_SHAPE, seed=MODEL_SEED)
        model_note = (f"`build_model(num_classes={NUM_CLASSES}, input_shape={IMAGE_SHAPE}, seed={MODEL_SEED})` "
                      f"(MobileNetV3Small, 32×32) with **untrained** weights (keras.utils.set_random_seed("
                      f"{MODEL_SEED})): its forward passes cost what a trained model's do, but its outputs are "
                      "degenerate (tiny embeddings, near-uniform probabilities), so the heuristics run on "
                      "unrealistic arrays; pass --model for a trained classifier")
    else:
        model = load_classifier(args.model)
        check_input_shape(model, IMAGE_SHAPE, name=str(args.model))
        model_note = f"the trained classifier `{args.model}` ({model.count_params():,} parameters)"

    real_train, real_source = None, ""
    folder = fashion_mnist_folder()
    if folder is not None:  # pools that do not fit in its images fall back to synthetic pixels
        dataset = load_dataset("fashion_mnist", path=folder, classes=list(FASHION_MNIST_CLASSES),
                               image_size=IMAGE_SHAPE[0])
        real_train = dataset.x_train
        real_source = (f"Fashion-MNIST train images (classes {', '.join(dataset.class_names)}; first "
                       f"{args.labeled_size:,} labeled, then the pool), 32×32 RGB")

    two_outputs = probabilities_and_embeddings_model(model)

    results = []
    for size in args.pool_sizes:
        images = case_images(size, args.labeled_size, args.seed, real_train, real_source)
        results.append(measure_case(model, two_outputs, images, args.repeats, args.heuristic_threads))
        del images

    threads_note = ("the libraries' defaults (BLAS and OpenMP use every core)" if args.heuristic_threads is None
                    else f"BLAS and OpenMP limited to {args.heuristic_threads} thread(s) with threadpoolctl")
    report = render_report(command, model_note, threads_note, results, args.repeats,
                           time.perf_counter() - started)
    print(report, end="")
    if args.output is not None:
        write_text(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
