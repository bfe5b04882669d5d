"""A cycle's ``report.html``: one self-contained page rebuilt from what AL_cycle.py wrote to its output folder
(``cycle_manifest.json``, the selected images, the score files and the figures): the setting, the verdict, the three
models' per-class accuracy, the class-balance check and the picked images with their scores.

    python -m Evaluation.cycle_report results/demo
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import write_text
from altoolkit.report_html import escape, figure_tag, heat_cell, inline_code, page, table

MANIFEST_FILENAME = "cycle_manifest.json"
REPORT_FILENAME = "report.html"
MODEL_ROWS = {"base": "base model", "al": "+ selected images", "random": "+ as many random images"}
SCORE_FILES = {"uncertainty": ("uncertainty/uncertainty_scores.npz", {"entropy": "H", "margin": "m"}),
               "diversity": ("diversity/diversity_scores.npz", {"distance": "d"}),
               "novelty": ("novelty/novelty_scores.npz", {"novelty": "nov"})}
"""Per analysis, its score file in the output folder and the scores shown under each picked image (short names)."""


def read_manifest(output_dir: Path) -> dict:
    """The cycle's manifest; a missing or unreadable one is one error saying what to run."""
    path = output_dir / MANIFEST_FILENAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ToolkitError(f"cannot read {path} ({type(error).__name__}): give the --output-dir of a finished "
                           "AL_cycle.py run") from None
    if not isinstance(manifest, dict) or not {"dataset", "start_idx", "labeled_size"} <= manifest.keys():
        raise ToolkitError(f"{path} is not a cycle manifest (no dataset, start_idx, labeled_size): give the "
                           "--output-dir of a finished AL_cycle.py run")
    return manifest


def pool_scores(output_dir: Path, analyses: list[str]) -> dict[str, np.ndarray]:
    """The per-pool-image scores that this run's ``analyses`` saved (short name → array over the pool); files an
    earlier run left in the folder are not read."""
    scores = {}
    for analysis, (relative, names) in SCORE_FILES.items():
        path = output_dir / relative
        if analysis in analyses and path.is_file():
            with np.load(path) as saved:
                scores.update({short: saved[name] for name, short in names.items() if name in saved.files})
    return scores


def picked_images(folder: Path) -> dict[int, tuple[Path, str]]:
    """The saved picks of a selection folder: absolute index → (PNG file, class), from ``images/NNNNNN_class.png``."""
    images = {}
    for path in sorted((folder / "images").glob("*.png")):
        number, _, label = path.stem.partition("_")
        if number.isdigit():
            images[int(number)] = (path, label)
    return images


def setting_lines(manifest: dict) -> list[str]:
    data = manifest["dataset"]
    selection = manifest.get("selection") or {}
    lines = [f"data: {data.get('name')} ({', '.join(map(str, data.get('class_names', [])))}), fingerprint "
             f"`{data.get('fingerprint')}`",
             f"labeled: {manifest['labeled_size']} images; pool: training images {manifest['start_idx']}.."
             f"{manifest.get('end_idx', 0) - 1}",
             f"base model: `{(manifest.get('model') or {}).get('path')}`; seed {manifest.get('seed')}"]
    if selection:
        how = selection.get("by")
        lines.append(f"selection: {selection.get('count')} images by `{how}`"
                     + (f" ({', '.join(f'{k} {v}' for k, v in selection.get('parameters', {}).items())})"
                        if selection.get("parameters") else ""))
    for name, parameters in (manifest.get("parameters") or {}).items():
        lines.append(f"{name}: " + ", ".join(f"{key} {value}" for key, value in parameters.items()))
    return lines


def accuracy_section(comparison: dict, classes: list[str]) -> list[str]:
    """Overall and per-class accuracy of the three models as a heat map, and +AL − +random per class."""
    per_class = comparison["per_class_accuracy"]
    values = [per_class[model].get(cls) for model in MODEL_ROWS for cls in classes if model in per_class]
    known = [value for value in values if value is not None]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    rows, attributes = [], []
    for model, label in MODEL_ROWS.items():
        if model not in per_class:
            continue
        overall = comparison["accuracy"][model]
        rows.append([escape(label), heat_cell(overall, low, high, f"{100 * overall:.1f}"),
                     *[heat_cell(per_class[model].get(cls), low, high,
                                 "n/a" if per_class[model].get(cls) is None else f"{100 * per_class[model][cls]:.1f}")
                       for cls in classes]])
        attributes.append(f'data-model="{model}" data-accuracy="{overall:.6f}"')
    gains = comparison.get("al_minus_random_per_class", {})
    rows.append(["<b>+AL − +random, points</b>", f"<b>{100 * comparison['al_minus_random']:+.1f}</b>",
                 *["n/a" if gains.get(cls) is None else f"{100 * gains[cls]:+.1f}" for cls in classes]])
    attributes.append('data-model="difference"')
    return ["<h2>Accuracy of the three models (%)</h2>", f"<p><b>{escape(comparison['verdict'])}</b></p>",
            f'<p class="note">Test accuracy overall and per class; red = the lowest value in the table '
            f"({100 * low:.1f} %), green = the highest ({100 * high:.1f} %).</p>",
            table(["model", "overall", *map(escape, classes)], rows, attributes)]


def balance_section(balance: dict) -> list[str]:
    """Per class: the target, how many images the selection has, ✓ or ✗; and what to do about the misses."""
    rows, attributes = [], []
    for cls, target in balance["targets"].items():
        actual = balance["actual"].get(cls, 0)
        met = actual >= target
        rows.append([escape(cls), str(target), str(actual),
                     '<span class="met">✓</span>' if met else '<span class="missed">✗</span>'])
        attributes.append(f'data-class="{escape(cls)}" data-met="{str(met).lower()}"')
    advice = balance.get("recommendations") or []
    return ["<h2>Class balance of the selection</h2>",
            f"<p><b>{'Every class meets its target.' if balance['all_met'] else 'Some classes miss their target.'}"
            "</b></p>", table(["class", "target", "selected", "met"], rows, attributes),
            *([f"<ul>{''.join(f'<li>{escape(line)}</li>' for line in advice)}</ul>"] if advice else [])]


def gallery_section(output_dir: Path, manifest: dict) -> list[str]:
    """The picked images, each with its class and the analyses' scores, in the selection's order."""
    selection = manifest.get("selection") or {}
    if not selection:
        return []
    folder = output_dir / ("intersection" if selection.get("by") == "intersection" else "selection")
    images = picked_images(folder)
    title = f"<h2 id=\"picks\">The {selection.get('count')} picked images ({escape(selection.get('by'))})</h2>"
    if not images:
        return [title, f"<p>{escape(folder / 'images')} holds no images: run AL_cycle.py without --no-images to see "
                       "them here.</p>"]
    scores = pool_scores(output_dir, list(manifest.get("analyses") or {}))
    start = manifest["start_idx"]
    figures = []
    for rank, index in enumerate(selection.get("absolute_indices", []), start=1):
        if index not in images:
            continue
        path, label = images[index]
        lines = [escape(label), f"#{rank} · {index}"]
        shown = [f"{name} {float(values[index - start]):.{2 if name in ('H', 'm') else 1}f}"
                 for name, values in scores.items() if 0 <= index - start < len(values)]
        lines += [" ".join(shown[number:number + 2]) for number in range(0, len(shown), 2)]
        figures.append(f'<figure data-index="{index}">{figure_tag(path, f"{label}, image {index}", "")}'
                       f"<figcaption>{'<br>'.join(lines)}</figcaption></figure>")
    note = ('<p class="note">In the order they were picked; under each image its class, rank and training index, '
            "then the scores the analyses gave it: H = entropy and m = margin score (uncertainty), d = distance "
            "to its k-means centroid (diversity), nov = distance to the nearest labeled images (novelty).</p>"
            if scores else
            '<p class="note">In the order they were picked; under each image its class, rank and training '
            "index.</p>")
    return [title, note, f'<div class="gallery cycle">{"".join(figures)}</div>']


def render_cycle_report(output_dir: Path) -> str:
    """The whole page, from the files in ``output_dir``."""
    manifest = read_manifest(output_dir)
    classes = [str(name) for name in manifest["dataset"].get("class_names", [])]
    body = [f'<p class="note">Rebuilt from <code>{escape(output_dir / MANIFEST_FILENAME)}</code> and the files '
            f"beside it by <code>python -m Evaluation.cycle_report {escape(output_dir)}</code>.</p>",
            "<h2>Setting</h2>", "<ul>" + "".join(f"<li>{inline_code(line)}</li>"
                                                 for line in setting_lines(manifest)) + "</ul>"]
    comparison = manifest.get("comparison")
    if comparison:
        body += accuracy_section(comparison, classes)
        chart = output_dir / "comparison" / "al_vs_random.png"
        if chart.is_file():
            body.append(figure_tag(chart, "accuracy per class of the three models"))
    if manifest.get("balance"):
        body += balance_section(manifest["balance"])
    overview = output_dir / "intersection" / "intersection_visualization.png"
    if (manifest.get("selection") or {}).get("by") == "intersection" and overview.is_file():
        body += ["<h2>How the intersection was found</h2>", figure_tag(overview, "images per criterion and class")]
    body += gallery_section(output_dir, manifest)
    timings = manifest.get("timings_seconds") or {}
    if timings:
        body += ["<h2>Time (seconds)</h2>", table(["step", "seconds"], [[escape(step), f"{seconds:.1f}"]
                                                                        for step, seconds in timings.items()])]
    return page(f"Active-learning cycle: {manifest['dataset'].get('name')}", body)


def write_cycle_report(output_dir: str | Path) -> Path:
    """Write ``report.html`` into the cycle's output folder and return its path."""
    folder = Path(output_dir)
    return write_text(folder / REPORT_FILENAME, render_cycle_report(folder))


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description="Rebuild a cycle's report.html from its output folder.")
    parser.add_argument("output_dir", metavar="DIR", help="the --output-dir of an AL_cycle.py run")
    args = parser.parse_args(argv)
    print(f"wrote {write_cycle_report(args.output_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
