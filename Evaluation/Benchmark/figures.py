"""The benchmark's figures, drawn from a summary (Evaluation.Benchmark.stats) without computing anything: the
learning curves as small multiples with the differences from random at equal labels, and the accuracy-per-label
picture of a pipeline against the design's baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from AL_functions import RECOMMENDED
from Evaluation.Benchmark.config import BASELINE, strategy_family

SINGLE_PANEL_LIMIT = 6
"""Up to this many strategies share one panel; more are split into one panel per strategy family."""
PANEL_COLUMNS = 3
BLOCK_GAP = 0.75
"""Height of the gap below each row of panels (tick labels, then the next row's titles), relative to a panel's 3."""
REFERENCE_STYLES = {BASELINE: {"color": "#7f7f7f", "linestyle": "-", "linewidth": 2.2},
                    RECOMMENDED: {"color": "black", "linestyle": "--", "linewidth": 2.0}}
"""random and recommended are drawn the same way in every panel, so each panel reads against both."""
FAMILY_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def panel_groups(ranked: list[str]) -> dict[str, list[str]]:
    """Panel title → its strategies in ranking order: one panel for few strategies, else one per family, with
    random and recommended (when they ran) in every panel."""
    references = [name for name in ranked if name in REFERENCE_STYLES]
    others = [name for name in ranked if name not in REFERENCE_STYLES]
    if len(ranked) <= SINGLE_PANEL_LIMIT or not others:
        return {"all strategies": ranked}
    groups: dict[str, list[str]] = {}
    for name in others:
        groups.setdefault(strategy_family(name), []).append(name)
    return {family: [name for name in ranked if name in members or name in references]
            for family, members in groups.items()}


def legend_label(name: str, entry: dict) -> str:
    """The strategy's name and its last difference from random at equal labels, in points."""
    measured = [difference for difference, _ in entry.get("paired", []) if difference is not None]
    return f"{name} ({100 * measured[-1]:+.1f})" if measured else name


def plot_learning_curves(summary: dict, ranked: list[str], target: Path, title: str) -> Path:
    """Per panel, accuracy vs labels (mean, shaded 95 % CI over seeds) above each strategy's paired difference from
    random at the same number of labels (mean ± 95 % CI); legends follow ``ranked`` (best first)."""
    from matplotlib.gridspec import GridSpec

    from altoolkit.plots import new_figure, save_figure

    groups = panel_groups(ranked)
    compared = any("paired" in summary["strategies"][name] for name in ranked)
    columns = 2 if len(groups) == 4 else min(len(groups), PANEL_COLUMNS)
    blocks = -(-len(groups) // columns)
    block_rows = [3.0, 2.0] if compared else [3.0]
    rows_per_block = len(block_rows) + 1  # the last row of a block is a gap for the next block's titles
    heights = (block_rows + [BLOCK_GAP]) * blocks
    figure = new_figure(max(10.0, 5.2 * columns + 0.6), 1.3 * sum(heights) + 1.2)
    grid = GridSpec(len(heights), columns, figure=figure, height_ratios=heights, hspace=0.08)
    accuracy_axes, difference_axes = [], []
    for position, (panel, names) in enumerate(groups.items()):
        block, column = divmod(position, columns)
        curve_axis = figure.add_subplot(grid[rows_per_block * block, column],
                                        sharey=accuracy_axes[0] if accuracy_axes else None)
        accuracy_axes.append(curve_axis)
        difference_axis = None
        if compared:
            difference_axis = figure.add_subplot(grid[rows_per_block * block + 1, column], sharex=curve_axis,
                                                 sharey=difference_axes[0] if difference_axes else None)
            difference_axes.append(difference_axis)
            difference_axis.axhline(0.0, **REFERENCE_STYLES[BASELINE])
        members = iter(FAMILY_COLOURS)
        for name in names:
            entry = summary["strategies"][name]
            style = REFERENCE_STYLES.get(name) or {"color": next(members), "linestyle": "-", "linewidth": 1.5}
            x, y, ci = (np.asarray(entry[key], np.float64) for key in ("labels_mean", "accuracy_mean", "accuracy_ci"))
            curve_axis.plot(x, y, marker="o", markersize=3, label=legend_label(name, entry), **style)
            curve_axis.fill_between(x, y - ci, y + ci, alpha=0.12, color=style["color"], linewidth=0)
            if difference_axis is not None and "paired" in entry:
                shown = [r for r, (difference, _) in enumerate(entry["paired"]) if difference is not None]
                difference = 100 * np.asarray([entry["paired"][r][0] for r in shown])
                half = 100 * np.asarray([entry["paired_ci"][r] for r in shown])
                difference_axis.plot(x[shown], difference, marker="o", markersize=3, **style)
                difference_axis.fill_between(x[shown], difference - half, difference + half, alpha=0.12,
                                             color=style["color"], linewidth=0)
        curve_axis.set_title(panel, fontsize=11)
        curve_axis.legend(fontsize=8, loc="lower right", title="last difference, points" if compared else None,
                          title_fontsize=7)
        curve_axis.grid(alpha=0.3)
        if column == 0:
            curve_axis.set_ylabel("test accuracy")
        if difference_axis is not None:
            curve_axis.tick_params(labelbottom=False)
            difference_axis.grid(alpha=0.3)
            difference_axis.set_xlabel("labeled images")
            if column == 0:
                difference_axis.set_ylabel(f"− {BASELINE}, points")
        else:
            curve_axis.set_xlabel("labeled images")
    subtitle = (f"\nlower panels: paired difference from {BASELINE} at the same number of labels ({BASELINE}'s "
                "curve interpolated per seed), mean ± 95 % CI" if compared else "")
    figure.suptitle(title + subtitle, fontsize=11)
    figure.subplots_adjust(left=0.07, right=0.98, top=1 - 1.15 / figure.get_figheight(), bottom=0.02,
                           wspace=0.18)
    return save_figure(target, figure)


def plot_accuracy_per_label(curves: dict[str, dict], reference: str, reference_short: str, target: Path,
                            title: str) -> Path:
    """Accuracy vs labels of a few named curves (``{"labels", "accuracy", "ci"}`` each, mean and 95 % CI
    half-width per round), with a dotted line, called ``reference_short``, at the ``reference`` curve's last
    accuracy."""
    from altoolkit.plots import new_figure, save_figure

    figure = new_figure(9, 4.8)
    axis = figure.subplots()
    colours = iter(("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c"))
    for name, curve in curves.items():
        x, y, ci = (np.asarray(curve[key], np.float64) for key in ("labels", "accuracy", "ci"))
        colour = next(colours)
        axis.plot(x, 100 * y, marker="o", markersize=3.5, color=colour, linewidth=2, label=name)
        axis.fill_between(x, 100 * (y - ci), 100 * (y + ci), color=colour, alpha=0.15, linewidth=0)
    last_labels, last_accuracy = curves[reference]["labels"][-1], curves[reference]["accuracy"][-1]
    axis.axhline(100 * last_accuracy, color="#7f7f7f", linestyle=":", linewidth=1.2,
                 label=f"{reference_short} at {last_labels:,.0f} labels")
    axis.set_xlabel("labeled images")
    axis.set_ylabel("test accuracy, %")
    axis.set_title(title, fontsize=11)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=9)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.12)
    return save_figure(target, figure)
