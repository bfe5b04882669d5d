"""Figures. Plots only draw what they are given: they never compute scores or load data.

Uses matplotlib's object API (``Figure``) so no GUI backend or global pyplot state is involved.
"""

from __future__ import annotations

from pathlib import Path

from altoolkit.files import save_figure


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_training_history(history: dict[str, list[float]], target: str | Path, title: str = "") -> Path:
    """Accuracy and loss per epoch, training vs validation."""
    figure = new_figure(11, 4)
    for axis, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        epochs = range(1, len(history.get(metric, [])) + 1)
        axis.plot(epochs, history.get(metric, []), label="train", marker="o", markersize=3)
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], label="validation", marker="o", markersize=3)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(metric.capitalize())
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    return save_figure(target, figure)


SELECTED_COLOUR = "#d62728"
UNSELECTED_COLOUR = "#bbbbbb"


def plot_image_grid(images, titles: list[str], selected, target: str | Path, title: str,
                    columns: int = 8) -> Path:
    """Images in a grid, each titled, framed thick red when ``selected`` is True and thin grey otherwise."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = new_figure(columns * 1.6, rows * 1.9 + 0.6)
    axes = figure.subplots(rows, columns, squeeze=False)
    for position, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if position >= count:
            axis.set_axis_off()
            continue
        axis.imshow(images[position], interpolation="nearest")
        axis.set_title(titles[position], fontsize=6.5)
        colour = SELECTED_COLOUR if selected[position] else UNSELECTED_COLOUR
        for spine in axis.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3.5 if selected[position] else 1.0)
    figure.suptitle(f"{title}\n(red frame = selected, grey = not selected)", fontsize=10)
    return save_figure(target, figure)


def plot_score_histograms(scores: dict[str, "object"], thresholds: dict[str, float], target: str | Path,
                          title: str) -> Path:
    """One histogram per score with its selection threshold drawn as a dashed line."""
    figure = new_figure(5 * len(scores), 3.6)
    axes = figure.subplots(1, len(scores), squeeze=False)[0]
    for axis, (name, values) in zip(axes, scores.items()):
        axis.hist(values, bins=40, color="#4c72b0", alpha=0.85)
        if name in thresholds:
            axis.axvline(thresholds[name], color=SELECTED_COLOUR, linestyle="--",
                         label=f"threshold {thresholds[name]:.3g}")
            axis.legend(fontsize=8)
        axis.set_xlabel(name)
        axis.set_ylabel("images")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    return save_figure(target, figure)


def plot_cluster_projection(points, cluster_labels, representatives, far_indices, target: str | Path,
                            title: str, explained: tuple[float, float] | None = None) -> Path:
    """2-D projection of embeddings coloured by cluster; representatives as stars, far points circled."""
    figure = new_figure(7.5, 6)
    axis = figure.subplots()
    axis.scatter(points[:, 0], points[:, 1], c=cluster_labels, cmap="tab20", s=10, alpha=0.7)
    axis.scatter(points[far_indices, 0], points[far_indices, 1], facecolors="none", edgecolors="black",
                 s=34, linewidths=0.8, label=f"far from centroid ({len(far_indices)})")
    axis.scatter(points[representatives, 0], points[representatives, 1], marker="*", s=220, c="gold",
                 edgecolors="black", linewidths=0.8, label=f"cluster representative ({len(representatives)})")
    if explained is not None:
        axis.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
        axis.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    axis.set_title(title)
    return save_figure(target, figure)


def plot_intersection_overview(region_counts: dict[str, int], set_names: tuple[str, str, str],
                               class_counts: dict[str, int], target: str | Path, title: str) -> Path:
    """Venn-style counts of three index sets (left) and the selected images per class (right).

    ``region_counts`` maps membership patterns such as ``"110"`` (in the first two sets, not the third) to counts.
    """
    from matplotlib.patches import Circle
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(12, 5.2)
    venn, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    centres = ((-0.55, 0.35), (0.55, 0.35), (0.0, -0.55))
    colours = ("#4c72b0", "#55a868", "#c44e52")
    for (x, y), colour, name in zip(centres, colours, set_names):
        venn.add_patch(Circle((x, y), 1.0, alpha=0.25, color=colour))
        venn.add_patch(Circle((x, y), 1.0, fill=False, edgecolor=colour, linewidth=1.5))
    label_positions = ((-1.25, 1.45), (1.25, 1.45), (0.0, -1.75))
    for (x, y), name, colour in zip(label_positions, set_names, colours):
        total = sum(count for pattern, count in region_counts.items() if pattern[set_names.index(name)] == "1")
        venn.text(x, y, f"{name}\n({total})", ha="center", va="center", fontsize=10, color=colour,
                  fontweight="bold")
    region_positions = {"100": (-1.0, 0.6), "010": (1.0, 0.6), "001": (0.0, -1.05), "110": (0.0, 0.85),
                        "101": (-0.65, -0.35), "011": (0.65, -0.35), "111": (0.0, 0.05)}
    for pattern, (x, y) in region_positions.items():
        count = region_counts.get(pattern, 0)
        weight = "bold" if pattern == "111" else "normal"
        venn.text(x, y, str(count), ha="center", va="center", fontsize=13 if pattern == "111" else 11,
                  fontweight=weight)
    venn.text(1.6, -1.75, f"in none: {region_counts.get('000', 0)}", ha="right", fontsize=8)
    venn.set_xlim(-1.9, 1.9)
    venn.set_ylim(-2.0, 1.8)
    venn.set_aspect("equal")
    venn.set_axis_off()
    venn.set_title("Images per criterion (centre: all three)")
    names = list(class_counts)
    bars.bar(range(len(names)), [class_counts[n] for n in names], color=SELECTED_COLOUR, alpha=0.8)
    bars.set_xticks(range(len(names)))
    tilted = max((len(name) for name in names), default=0) * len(names) > 40
    bars.set_xticklabels(names, rotation=45 if tilted else 0, ha="right" if tilted else "center")
    bars.yaxis.set_major_locator(MaxNLocator(integer=True))
    bars.set_ylabel("selected images")
    bars.set_title("Selected images per class")
    bars.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    return save_figure(target, figure)


def plot_accuracy_comparison(class_names: list[str], accuracies: dict[str, dict], target: str | Path,
                             title: str, baseline: str, challenger: str) -> Path:
    """Per-class and overall test accuracy of each model (left), and challenger − baseline per class (right).

    ``accuracies`` maps a model label to ``{"accuracy": float, "per_class_accuracy": {class: float}}``.
    """
    import numpy as np

    labels = list(class_names) + ["overall"]
    figure = new_figure(max(10, 1.1 * len(labels) + 6), 4.8)
    bars, difference = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(accuracies)
    positions = np.arange(len(labels))
    colours = {"base": "#999999", baseline: "#4c72b0", challenger: SELECTED_COLOUR}
    for offset, (name, result) in enumerate(accuracies.items()):
        values = [result["per_class_accuracy"].get(c) or 0.0 for c in class_names] + [result["accuracy"]]
        bars.bar(positions + (offset - (len(accuracies) - 1) / 2) * width, values, width,
                 label=f"{name} ({result['accuracy']:.1%})", color=colours.get(name))
    tilted = max(len(label) for label in labels) * len(labels) > 90
    bars.set_xticks(positions)
    bars.set_xticklabels(labels, rotation=45 if tilted else 0, ha="right" if tilted else "center")
    bars.set_ylim(0, 1.18)
    bars.set_ylabel("test accuracy")
    bars.set_title("Accuracy per class and overall")
    bars.legend(fontsize=8, loc="upper center", ncols=len(accuracies), frameon=False)
    bars.grid(axis="y", alpha=0.3)
    gains = [((accuracies[challenger]["per_class_accuracy"].get(c) or 0.0)
              - (accuracies[baseline]["per_class_accuracy"].get(c) or 0.0)) * 100 for c in class_names]
    gains.append((accuracies[challenger]["accuracy"] - accuracies[baseline]["accuracy"]) * 100)
    difference.bar(positions, gains, color=["#55a868" if g >= 0 else "#c44e52" for g in gains])
    difference.axhline(0, color="black", linewidth=0.8)
    difference.set_xticks(positions)
    difference.set_xticklabels(labels, rotation=45 if tilted or len(labels) > 8 else 0,
                               ha="right" if tilted or len(labels) > 8 else "center")
    difference.set_ylabel("percentage points")
    difference.set_title(f"Improvement of {challenger} over {baseline}")
    difference.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    return save_figure(target, figure)
