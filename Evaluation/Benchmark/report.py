"""The benchmark's report: ``report.md`` (tables of the statistics, speed, per-class accuracy), its figures and
``report.html``, rendered from ``results.json`` (and, for the HTML's picked images, the run's data set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from AL_functions import RECOMMENDED
from altoolkit.cli import ToolkitArgumentParser
from altoolkit.data import Dataset
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import write_text
from altoolkit.pipelines import PSEUDO_LABELS_PER_LABEL
from Evaluation.Benchmark.config import (ACCURACY_PER_LABEL_FILENAME, BASELINE, CURVE_FILENAME, HTML_REPORT_FILENAME,
                                         REPORT_FILENAME, RESULTS_FILENAME)
from Evaluation.Benchmark.records import execution_settings
from Evaluation.Benchmark.stats import (check_rows, finished_seed_numbers, finished_seeds, format_number,
                                        pipeline_check, pipeline_efficiency, ranking, summarise, target_lines,
                                        verdict)

def render_report(results: dict, summary: dict) -> str:
    """The markdown report: command, setting, detectable effect, strategy tables, per-class accuracy, speed."""
    config, data = results["config"], results["dataset"]
    rounds = config["rounds"]
    lines = ["# Active-learning benchmark", "", "## Command", "", f"```\n{results['command']}\n```", "",
             "## Setting", "", *setting_bullets(results), "",
             "## What the benchmark can detect", "",
             f"Round-0 (base model) accuracy over seeds: mean {format_number(summary['base_mean'], percent=True)} %, "
             f"std {format_number(summary['base_std'], percent=True)} points"
             f"{' (a spread needs two seeds)' if len(finished_seeds(results)) < 2 else ''}. Differences between "
             "strategies smaller than this spread are within seed-to-seed noise: it is the smallest effect this "
             "benchmark can detect without the paired test below.", "",
             "## Strategies", "",
             "| strategy | seeds | labels (last round) | final accuracy % (mean ± std) | AUC % | label efficiency |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in summary["strategies"].items():
        lines.append(f"| {name} | {entry['seeds']} | {entry['labels_mean'][-1]:.0f} | "
                     f"{format_number(entry['final_mean'], percent=True)} ± {format_number(entry['final_std'], percent=True)} | "
                     f"{format_number(entry['auc'], percent=True)} | {format_number(entry.get('label_efficiency'), 2)} |")
    lines += ["", "AUC: trapezoid area under accuracy vs labels, divided by the label range. Label efficiency: labels "
              "random needs to reach the strategy's mean final accuracy (linear interpolation on random's mean "
              "curve) ÷ labels the strategy used; n/a when that accuracy is outside random's range."]
    paired = {name: entry for name, entry in summary["strategies"].items() if "paired" in entry}
    if paired:
        lines += ["", f"## Paired difference vs {BASELINE} at equal labels (points ± 95 % CI, p-value)", "",
                  "Cells are paired by seed and taken at the same number of labels"
                  + interpolation_note([name for name, entry in paired.items() if entry.get("interpolated")])
                  + " p is a paired t-test's, corrected for the number of tests in this table "
                  "(Benjamini–Hochberg).", "",
                  "| strategy | " + " | ".join(f"round {r}" for r in range(rounds + 1)) + " |",
                  "| --- |" + " --- |" * (rounds + 1)]
    for name, entry in paired.items():
        corrected = entry.get("paired_corrected") or [p for _, p in entry["paired"]]
        lines.append(f"| {name} | " + " | ".join(paired_cell(difference, spread, p) for (difference, _), spread, p
                                                  in zip(entry["paired"], entry["paired_ci"], corrected)) + " |")
    target_section = target_lines(summary, len(data["class_names"]))
    if target_section:
        lines += ["", *target_section]
    lines += pipeline_lines(results)
    classes = data["class_names"]
    lines += ["", "## Per-class accuracy at the last round (%)", "",
              "| strategy | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
    for name, entry in summary["strategies"].items():
        lines.append(f"| {name} | " + " | ".join(format_number(entry["per_class_final"][c], percent=True) for c in classes)
                     + " |")
    lines += ["", "## Speed", "", "Median seconds per cell over seeds and strategies.", "",
              "| round | forward pass | selection | training | evaluation |", "| --- | --- | --- | --- | --- |"]
    for round_number, medians in speed_table(results).items():
        lines.append(f"| {round_number} | " + " | ".join(f"{medians[k]:.2f}" for k in
                                                        ("forward_s", "selection_s", "training_s", "evaluation_s"))
                     + " |")
    lines += ["", "Per strategy (median seconds over its seeds and rounds): the forward pass over pool + labeled "
              "that feeds it, the strategy's own selection, and the retraining.", "",
              "| strategy | forward pass | selection | selection / forward pass | training |",
              "| --- | --- | --- | --- | --- |"]
    for name, medians in strategy_speed_table(results).items():
        ratio = medians["selection_s"] / medians["forward_s"] if medians["forward_s"] > 0 else float("nan")
        lines.append(f"| {name} | {medians['forward_s']:.2f} | {medians['selection_s']:.2f} | {ratio:.2f}× | "
                     f"{medians['training_s']:.1f} |")
    execution = results.get("execution", execution_settings(1))
    lines += ["", f"Peak memory (resident, largest process): {format_number(results.get('peak_memory_mb'), 0)} MB. "
              f"Processes: {execution['workers']}, TensorFlow threads each: {execution['tensorflow_threads']}.",
              ""]
    return "\n".join(lines)


def interpolation_note(names: list[str]) -> str:
    """How the paired table compares the strategies that labeled a different number of images than random."""
    if not names:
        return f" (every strategy labeled as many images as {BASELINE} each round)."
    return (f": {', '.join(names)} labeled a different number of images than {BASELINE} (as many as met "
            f"{'its' if len(names) == 1 else 'their'} criteria), so each of its rounds is compared with "
            f"{BASELINE}'s accuracy at that round's label count, interpolated on {BASELINE}'s curve of the same seed; "
            f"n/a where a seed used more labels than {BASELINE} reached.")


def setting_bullets(results: dict) -> list[str]:
    """The Setting section's bullet lines: data, labels and training, what recommended ran, seeds."""
    config, data = results["config"], results["dataset"]
    return [f"- data: {data['name']} ({', '.join(data['class_names'])}), {data['train_size']} training / "
            f"{data['test_size']} test images, fingerprint {data['fingerprint']}",
            *setting_lines(config), *recommended_lines(results),
            f"- seeds: {config['seeds']} (finished, and used below: {len(finished_seeds(results))}); "
            f"config hash {results['config_hash']}"]


def paired_cell(difference: float | None, spread: float | None, p: float | None) -> str:
    """One cell of the paired-difference table: points ± CI half-width (p), or n/a when not compared."""
    if difference is None:
        return "n/a"
    return f"{100 * difference:+.1f} ± {100 * spread:.1f} (p={format_number(p, 3)})"


PIPELINE_COLUMNS_PER_CLASS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 150)
"""Labels per class the label-efficiency table may show: those of them this run has a round at."""


def efficiency_columns(rows_by_strategy: dict[str, list[dict]], classes: int) -> list[int]:
    """The labels-per-class columns of the label-efficiency table: :data:`PIPELINE_COLUMNS_PER_CLASS` where the
    run has a round."""
    counts = {int(round(row["labels"])) for rows in rows_by_strategy.values() for row in rows}
    return [per_class for per_class in PIPELINE_COLUMNS_PER_CLASS if per_class * classes in counts]


def load_baseline(results: dict) -> dict | None:
    """The design's baseline run named by ``results["baseline"]`` (a benchmark folder), if there is one."""
    import json

    folder = results.get("baseline")
    if not folder:
        return None
    try:
        return json.loads((Path(folder) / RESULTS_FILENAME).read_text())
    except (OSError, ValueError) as error:
        raise ToolkitError(f"cannot read the baseline {Path(folder) / RESULTS_FILENAME} ({error}): run the baseline "
                           "preset first, or drop --baseline") from None


def pipeline_lines(results: dict) -> list[str]:
    """The sections comparing every strategy's curve with the design's baseline, in labels (empty without one)."""
    baseline = load_baseline(results)
    if baseline is None or not finished_seeds(results) or not finished_seeds(baseline):
        return []
    classes = len(results["dataset"]["class_names"])
    base_config = baseline["config"]
    efficiency = {name: pipeline_efficiency(results, baseline, name) for name in results["config"]["strategies"]}
    columns = efficiency_columns(efficiency, classes)
    lines = ["", "## Label efficiency against the design's baseline", "",
             f"The design's baseline: random labels and MobileNetV3Small trained from scratch "
             f"(`{results['baseline']}`, {len(finished_seeds(baseline))} seeds, {base_config['epochs']} epochs per "
             "round). Each cell: the pipeline's mean accuracy, then its label efficiency — the labels the baseline's "
             "mean curve needs for that accuracy ÷ the labels used (± 95 % CI over paired seeds); `>` marks an "
             "accuracy above everything the baseline reached, where the ratio to the baseline's last point is a "
             "lower bound.", "",
             "| strategy | " + " | ".join(f"{n} per class" for n in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    base_last = max(cell["labels"] for cell in baseline["seeds"][finished_seed_numbers(baseline)[0]]["strategies"]
                    [BASELINE])
    for name in results["config"]["strategies"]:
        rows = {int(round(row["labels"])): row for row in efficiency[name]}
        cells = []
        for per_class in columns:
            row = rows.get(per_class * classes)
            if row is None:
                cells.append("—")
            elif row["efficiency"] is None:
                bound = f"> {base_last / row['labels']:.1f}×" if row["above_baseline"] else "n/a"
                cells.append(f"{100 * row['accuracy']:.1f} % ({bound})")
            else:
                spread = f" ± {row['ci']:.1f}" if row["ci"] is not None else ""
                cells.append(f"{100 * row['accuracy']:.1f} % ({row['efficiency']:.1f}×{spread})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    checks = pipeline_check(results, baseline)
    if checks:
        lines += ["", "## Target: recommended pipeline against the design's baseline", "",
                  "| criterion | measured | met |", "| --- | --- | --- |"]
        lines += [*check_rows(checks), "", verdict(checks)]
    return lines


def setting_lines(config: dict) -> list[str]:
    """How each seed's labels are chosen and how the learner is trained, for the report's Setting section."""
    rounds, learner = config["rounds"], config.get("learner", "mobilenet")
    initial = {"random": "chosen at random (shared by every strategy)",
               "each": "picked by each strategy itself from zero labels (random's at random)"}.get(
        config.get("initial", "random"), f"picked by {config.get('initial')} from zero labels for every strategy")
    pool = config["pool_size"] if config["pool_size"] is not None else "all the rest"
    if learner in ("mobilenet", "mobilenet_distilled"):
        distilled = ([] if learner == "mobilenet" else [
            "- distilled: each training also takes the unlabeled seed images that label spreading over the `patches` "
            f"features labels most surely (at most {PSEUDO_LABELS_PER_LABEL} per labeled image), with those "
            "pseudo-labels; the cells record how many and the share the oracle agrees with"])
        return [f"- per seed: {config['n0']} initial labels {initial} (last 10 % = validation for the best epoch), "
                f"pool {pool}, {rounds} rounds × {config['budget']} labels; MobileNetV3Small retrained from the "
                "seed's initial weights each round", *distilled,
                f"- training: {config['epochs']} epochs, batch {config['batch_size']}, Adam {config['learning_rate']}, "
                f"flip augmentation {'on' if config['flip_augmentation'] else 'off'}, learning rate "
                f"{'cosine-decayed to 0' if config.get('cosine_decay') else 'constant'}, weights of the "
                f"{'best-validation' if config.get('keep_best_validation_epoch') else 'last'} epoch",
                "- features the strategies measure distances on: the current model's penultimate embeddings of pool "
                "and labeled images (one forward pass per round); strategies named `*_pixels` use a 50-component "
                "PCA of the raw pixels of pool ∪ labeled instead (no model needed)"]
    what = {"linear": "logistic regression (C = 0.1)",
            "label_spreading": "label spreading over a 10-nearest-neighbour graph of the seed's images, distilled "
                               "into logistic regression with the most confident half of its pseudo-labels"}[learner]
    return [f"- per seed: {config['n0']} initial labels {initial}, pool {pool}, {rounds} rounds × "
            f"{config['budget']} labels",
            f"- learner: {what}, refitted every round on the `{config['representation']}` representation (fitted "
            "once on every training image without labels, seed 0); the pool's probabilities come from the learner "
            "fitted on the labels so far",
            f"- features the strategies measure distances on: the same `{config['representation']}` features; "
            "strategies named `*_pixels` use a 50-component PCA of the raw pixels instead"]


def recommended_lines(results: dict) -> list[str]:
    """The Setting line saying what "recommended" ran in each round (empty when it was not benchmarked)."""
    rounds: dict[int, set[str]] = {}
    for record in finished_seeds(results):
        for cell in record["strategies"].get(RECOMMENDED, []):
            rounds.setdefault(cell["round"], set()).add(cell["ran"])
    if not rounds:
        return []
    spans: list[list] = []
    for r, ran in sorted(rounds.items()):
        text = " / ".join(sorted(ran))
        if spans and spans[-1][2] == text and spans[-1][1] == r - 1:
            spans[-1][1] = r
        else:
            spans.append([r, r, text])
    ran_by_round = "; ".join(f"round {first}: {text}" if first == last else f"rounds {first}–{last}: {text}"
                             for first, last, text in spans)
    return [f"- recommended ran: {ran_by_round} (AL_functions.recommended_choice)"]


def speed_table(results: dict) -> dict[int, dict[str, float]]:
    """round → median timing per stage over every recorded cell of that round."""
    by_round: dict[int, list[dict]] = {}
    for record in results["seeds"].values():
        cells = ([record["base"]] if "base" in record else []) + [
            cell for name_cells in record.get("strategies", {}).values() for cell in name_cells]
        for cell in cells:
            by_round.setdefault(cell["round"], []).append(cell["timings"])
    return {r: {key: float(np.median([t[key] for t in timings])) for key in timings[0]}
            for r, timings in sorted(by_round.items())}


def strategy_speed_table(results: dict) -> dict[str, dict[str, float]]:
    """strategy → median timing per stage over its cells in the finished seeds."""
    table = {}
    for name in results["config"]["strategies"]:
        timings = [cell["timings"] for record in finished_seeds(results) for cell in record["strategies"][name]]
        if timings:
            table[name] = {key: float(np.median([t[key] for t in timings])) for key in timings[0]}
    return table


def accuracy_per_label_curves(results: dict, summary: dict) -> dict[str, dict] | None:
    """The curves of the headline picture: the design's baseline, this run's random and its recommended pipeline
    (mean accuracy and 95 % CI per round); None without a baseline run or a recommended strategy."""
    baseline = load_baseline(results)
    if baseline is None or RECOMMENDED not in summary["strategies"] or not finished_seeds(baseline):
        return None
    design = summarise(baseline)["strategies"][BASELINE]
    named = {f"design's baseline: {BASELINE} labels, MobileNetV3Small from scratch": design,
             f"{BASELINE} labels, same learner as recommended": summary["strategies"].get(BASELINE),
             f"{RECOMMENDED} pipeline": summary["strategies"][RECOMMENDED]}
    return {f"{name} ({entry['seeds']} seeds)": {"labels": entry["labels_mean"], "accuracy": entry["accuracy_mean"],
                                                 "ci": entry["accuracy_ci"]}
            for name, entry in named.items() if entry is not None}


def write_report(results: dict, output_dir: Path, dataset: Dataset | None = None) -> None:
    """Render every file of the report from ``results``: the learning curves, the accuracy-per-label picture
    when a baseline run is named, report.md, and report.html (whose galleries show ``dataset``'s images; the
    run's data set is loaded when not given)."""
    from Evaluation.Benchmark.figures import plot_accuracy_per_label, plot_learning_curves
    from Evaluation.Benchmark.report_html import load_run_dataset, render_html, round_picks

    summary = summarise(results)
    seeds = len(finished_seeds(results))
    plot_learning_curves(summary, ranking(summary), output_dir / CURVE_FILENAME,
                         f"{results['dataset']['name']}: mean ± 95 % CI over {seeds} seeds")
    headline = accuracy_per_label_curves(results, summary)
    if headline is not None:
        plot_accuracy_per_label(headline, next(iter(headline)), "design's baseline",
                                output_dir / ACCURACY_PER_LABEL_FILENAME,
                                f"{results['dataset']['name']}: accuracy per label, mean ± 95 % CI over seeds")
    write_text(output_dir / REPORT_FILENAME, render_report(results, summary))
    dataset = dataset if dataset is not None else load_run_dataset(results)
    baseline = load_baseline(results)
    pipeline_checks = pipeline_check(results, baseline) if baseline is not None and finished_seeds(baseline) else []
    write_text(output_dir / HTML_REPORT_FILENAME,
               render_html(results, summary, ranking(summary), output_dir, round_picks(results, dataset), dataset,
                           setting_bullets(results), pipeline_checks))


def render_folders(folders: list[str]) -> list[Path]:
    """Re-render the report of each finished benchmark folder from its results.json alone (nothing is trained)."""
    from Evaluation.Benchmark.records import read_results_folder

    written = []
    for folder in map(Path, folders):
        results = read_results_folder(folder)
        if not finished_seeds(results):
            raise ToolkitError(f"{folder} has no finished seed yet: run or resume its benchmark first")
        write_report(results, folder)
        written.append(folder / REPORT_FILENAME)
    return written


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description="Re-render benchmark reports from their results.json, training "
                                               "nothing.")
    parser.add_argument("folders", nargs="+", metavar="DIR", help="benchmark output folders (with results.json)")
    args = parser.parse_args(argv)
    for path in render_folders(args.folders):
        print(f"wrote {path}, report.html and the figures beside them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
