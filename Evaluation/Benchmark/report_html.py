"""The benchmark's ``report.html``: the setting, the targets, the learning curves, the paired differences at equal
labels with their CIs, per-class accuracy as a heat map, and a gallery of the images each strategy picked in
round 1, all in one self-contained file rendered from ``results.json``, the report's figures and the data set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError
from altoolkit.report_html import escape, figure_tag, heat_cell, image_tag, inline_code, page, table
from Evaluation.Benchmark.config import (ACCURACY_PER_LABEL_FILENAME, BASELINE, CURVE_FILENAME, BenchmarkConfig,
                                         load_benchmark_dataset, seed_order)
from Evaluation.Benchmark.picks import DUPLICATE_RATIO, describe_picks, typicality_percentiles
from Evaluation.Benchmark.stats import finished_seed_numbers, format_number, target_check, verdict

GALLERY_ROUND = 1
GALLERY_SIZE = 40
"""Picks shown per strategy (its first, in the order it ranked them); the summary line counts all of them."""
OUTLIER_PERCENTILE = 10.0
TYPICAL_PERCENTILE = 90.0


def benchmark_config(config: dict) -> BenchmarkConfig:
    """The run's settings as recorded in results.json, back as a :class:`BenchmarkConfig`."""
    known = {field.name for field in dataclasses.fields(BenchmarkConfig)}
    return BenchmarkConfig(**{key: tuple(value) if isinstance(value, list) else value
                              for key, value in config.items() if key in known})


def load_run_dataset(results: dict) -> Dataset:
    """The data set the run used, checked against its recorded fingerprint."""
    dataset = load_benchmark_dataset(benchmark_config(results["config"]))
    if dataset.fingerprint != results["dataset"]["fingerprint"]:
        raise ToolkitError(f"the {dataset.name} data here (fingerprint {dataset.fingerprint}) is not the data this "
                           f"run used ({results['dataset']['fingerprint']}): render it where that data is")
    return dataset


def round_picks(results: dict, dataset: Dataset, round_number: int = GALLERY_ROUND) -> dict[str, dict]:
    """Per strategy, the images it picked at ``round_number`` in the first finished seed, described the same way
    for all (Evaluation.Benchmark.picks, over a pixel PCA of the seed's images), with their training indices."""
    from altoolkit.strategies import pixel_pca_features

    numbers = finished_seed_numbers(results)
    if not numbers:
        return {}
    seed = int(numbers[0])
    order = seed_order(len(dataset.x_train), benchmark_config(results["config"]), seed)
    features = pixel_pca_features(dataset.x_train[order], seed=seed)
    typicality = typicality_percentiles(features)
    row_of = np.full(len(dataset.x_train), -1, dtype=np.int64)
    row_of[order] = np.arange(len(order))
    described = {}
    for name in results["config"]["strategies"]:
        cell = next((cell for cell in results["seeds"][numbers[0]]["strategies"][name]
                     if cell["round"] == round_number), None)
        if cell is None or not cell["selected_indices"]:
            continue
        rows = row_of[np.asarray(cell["selected_indices"], np.int64)]
        described[name] = {**describe_picks(features, rows, dataset.y_train[order], typicality),
                           "indices": cell["selected_indices"], "labels": cell["labels"], "seed": seed}
    return described


def pick_figure(image: np.ndarray, class_name: str, typicality: float, nearest: float) -> str:
    """One picked image with its class and scores; framed by what it is (outlier, near-duplicate, typical)."""
    kind = ("duplicate" if nearest < DUPLICATE_RATIO else "outlier" if typicality < OUTLIER_PERCENTILE
            else "typical" if typicality >= TYPICAL_PERCENTILE else "")
    nearest_text = "—" if not np.isfinite(nearest) else f"{nearest:.1f}"
    return (f"<figure>{image_tag(image, f'{class_name}, typicality {typicality:.0f}', kind)}"
            f"<figcaption>{escape(class_name)}<br>typ {typicality:.0f}<br>near {nearest_text}</figcaption></figure>")


def gallery_section(picks: dict[str, dict], ranked: list[str], dataset: Dataset) -> list[str]:
    """The round-1 galleries, one per strategy in ranking order."""
    if not picks:
        return []
    seed = next(iter(picks.values()))["seed"]
    lines = [f"<h2 id=\"picks\">What each strategy picked in round {GALLERY_ROUND} (seed {seed})</h2>",
             '<p class="note">Every image is scored the same way, whatever the strategy, over a 50-component PCA of '
             "the seed's pixels: <b>typ</b> is the share (%) of the seed's images at least as isolated as this one "
             "(mean distance to its 20 nearest images; 100 = the densest spot, near 0 = an outlier) and <b>near</b> "
             "is its distance to the nearest other pick ÷ the median distance between neighbouring images (near 0 "
             f"= a near-duplicate of another pick). Frames: red = near-duplicate (near &lt; {DUPLICATE_RATIO}), "
             f"orange = outlier (typ &lt; {OUTLIER_PERCENTILE:.0f}), blue = typical (typ ≥ "
             f"{TYPICAL_PERCENTILE:.0f}). The first {GALLERY_SIZE} picks are shown, in the strategy's order.</p>"]
    for name in ranked:
        if name not in picks:
            continue
        entry = picks[name]
        count = len(entry["indices"])
        lines.append(f'<h3 id="picks-{escape(name)}">{escape(name)}</h3>'
                     f'<p class="note" data-strategy="{escape(name)}">{count} picks (labels after the round: '
                     f'{entry["labels"]}): median typicality {entry["median_typicality"]:.0f}, '
                     f'{entry["near_duplicates"]} near-duplicates, {entry["classes_covered"]} of '
                     f"{len(dataset.class_names)} classes.</p>")
        figures = [pick_figure(dataset.x_train[index], dataset.class_names[int(label)], typicality, nearest)
                   for index, label, typicality, nearest in list(zip(entry["indices"], entry["classes"],
                                                                      entry["typicality"],
                                                                      entry["nearest_pick"]))[:GALLERY_SIZE]]
        lines.append(f'<div class="gallery">{"".join(figures)}</div>')
    return lines


def check_table(checks: list[tuple[str, str, bool | None]]) -> str:
    """The (criterion, measured, met?) rows of a target, as in report.md."""
    shown = {True: '<span class="met">yes</span>', False: '<span class="missed">no</span>', None: "—"}
    return table(["criterion", "measured", "met"], [[escape(criterion), escape(measured), shown[met]]
                                                    for criterion, measured, met in checks])


def render_html(results: dict, summary: dict, ranked: list[str], output_dir: Path, picks: dict[str, dict],
                dataset: Dataset, setting: list[str], pipeline_checks: list) -> str:
    """The whole report page."""
    classes = results["dataset"]["class_names"]
    body = [f"<p class=\"note\">Rendered from <code>results.json</code> by "
            f"<code>python -m Evaluation.Benchmark.report {escape(output_dir)}</code>; the run's command:</p>",
            f"<pre>{escape(results['command'])}</pre>", "<h2>Setting</h2>",
            "<ul>" + "".join(f"<li>{inline_code(line.removeprefix('- '))}</li>" for line in setting) + "</ul>"]
    checks = target_check(summary, len(classes))
    if checks:
        body += ["<h2>Target: recommended vs random, same learner</h2>", check_table(checks),
                 f"<p><b>{escape(verdict(checks))}</b></p>"]
    if pipeline_checks:
        body += ["<h2>Target: recommended pipeline against the design's baseline</h2>", check_table(pipeline_checks),
                 f"<p><b>{escape(verdict(pipeline_checks))}</b></p>"]
    body += ["<h2>Learning curves</h2>", figure_tag(output_dir / CURVE_FILENAME, "learning curves per strategy family")]
    if (output_dir / ACCURACY_PER_LABEL_FILENAME).is_file():
        body.append(figure_tag(output_dir / ACCURACY_PER_LABEL_FILENAME, "accuracy per label against the baseline"))
    rows, attributes = [], []
    for name in ranked:
        entry = summary["strategies"][name]
        rows.append([escape(name), str(entry["seeds"]), f"{entry['labels_mean'][-1]:.0f}",
                     f"{format_number(entry['final_mean'], percent=True)} ± "
                     f"{format_number(entry['final_std'], percent=True)}", format_number(entry["auc"], percent=True)])
        attributes.append(f'data-strategy="{escape(name)}" data-final="{entry["final_mean"]:.6f}"')
    body += ["<h2>Strategies</h2>", '<p class="note">In ranking order: by the last difference from random at equal '
             "labels.</p>", table(["strategy", "seeds", "labels (last round)", "final accuracy % (mean ± std)",
                                    "AUC %"], rows, attributes)]
    body += paired_section(summary, ranked)
    body += heat_map_section(summary, ranked, classes)
    body += gallery_section(picks, ranked, dataset)
    return page(f"Active-learning benchmark: {results['dataset']['name']}", body)


def paired_section(summary: dict, ranked: list[str]) -> list[str]:
    """The paired differences from random at equal labels, ± 95 % CI, with corrected p-values."""
    compared = [name for name in ranked if "paired" in summary["strategies"][name]]
    if not compared:
        return []
    rounds = len(summary["strategies"][compared[0]]["paired"])
    rows = []
    for name in compared:
        entry = summary["strategies"][name]
        corrected = entry.get("paired_corrected") or [p for _, p in entry["paired"]]
        cells = [escape(name)]
        for (difference, _), spread, p, labels in zip(entry["paired"], entry["paired_ci"], corrected,
                                                      entry["labels_mean"]):
            if difference is None:
                cells.append(f'<td title="{labels:.0f} labels: beyond {BASELINE}\'s curve">n/a</td>')
            else:
                strong = p is not None and p < 0.05
                text = f"{100 * difference:+.1f} ± {100 * spread:.1f}"
                cells.append(f'<td data-difference="{difference:.6f}">{"<b>" if strong else ""}{text}'
                             f'{"</b>" if strong else ""}<br><span class="note">p={format_number(p, 3)}</span></td>')
        rows.append(cells)
    return [f"<h2>Paired difference from {BASELINE} at equal labels</h2>",
            f'<p class="note">Points, mean ± 95 % CI over paired seeds; {BASELINE}\'s accuracy is read on its own '
            "curve of the same seed at the strategy's label count (interpolated where they differ; n/a beyond the "
            f"labels {BASELINE} reached). p: paired t-test, Benjamini–Hochberg-corrected; bold where below 0.05.</p>",
            table(["strategy", *[f"round {r}" for r in range(rounds)]], rows)]


def heat_map_section(summary: dict, ranked: list[str], classes: list[str]) -> list[str]:
    """Per-class accuracy at the last round, coloured from the table's lowest to its highest value."""
    values = [summary["strategies"][name]["per_class_final"].get(cls) for name in ranked for cls in classes]
    known = [value for value in values if value is not None]
    if not known:
        return []
    low, high = min(known), max(known)
    rows = [[escape(name), f"{summary['strategies'][name]['labels_mean'][-1]:.0f}",
             *[heat_cell(summary["strategies"][name]["per_class_final"].get(cls), low, high,
                         format_number(summary["strategies"][name]["per_class_final"].get(cls), percent=True))
               for cls in classes]] for name in ranked]
    return ["<h2>Per-class accuracy at the last round (%)</h2>",
            f'<p class="note">Red = the lowest value in the table ({100 * low:.1f} %), green = the highest '
            f"({100 * high:.1f} %); mind the labels column where the strategies used different numbers.</p>",
            table(["strategy", "labels", *map(escape, classes)], rows)]
