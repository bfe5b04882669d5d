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
