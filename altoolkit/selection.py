"""The strategy contract: what a selection strategy reads, what it returns, and the checks around every call.

A strategy is any callable ``select(inputs, n, seed) -> pool positions`` over a :class:`SelectionInputs` (arrays
of one round, computed once: the learner's probabilities and embeddings, the representation's features, the
labeled set). :class:`Strategy` says what it needs; :func:`run_strategy` validates the inputs once, at this
boundary, and checks what comes back. The table of named strategies and the one selection call live in
``AL_functions`` (``STRATEGY_TABLE``, ``register_strategy``, ``select``), beside the design's heuristics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from altoolkit.arrays import as_indices, check_embeddings, check_probabilities
from altoolkit.errors import ToolkitError
from altoolkit.strategies import MC_DROPOUT_PASSES, ClassifierHead, check_budget

DESIGN_PARAMETERS = {"threshold_percentile": 50, "n_clusters": 20, "k_neighbors": 5, "far_percentile": 75,
                     "novelty_percentile": 75, "mc_passes": MC_DROPOUT_PASSES}
"""The analyses' parameters a strategy may read from :attr:`SelectionInputs.params`, with their defaults."""

NEEDS = ("labeled_features", "labeled_classes", "head")
"""What a strategy can require beyond the pool's probabilities, embeddings and features."""

REPRESENTATIONS = ("model", "pixels", "patches", "backbone")
"""Features a strategy that measures distances can use: the model's embeddings, or a label-free representation of
the pool and labeled images (PCA of the raw pixels, the Coates–Ng patch features, or a pretrained network's
penultimate features), which needs no trained model: better while the model has seen only a few hundred images."""


@dataclass(frozen=True)
class SelectionInputs:
    """Everything a strategy may read for one selection, as arrays whose rows are the pool's images in order.

    ``probabilities`` (pool × K) and ``embeddings`` (pool × D) come from the learner (embeddings: the input of its
    last layer, which BADGE and BALD need); ``features`` are the rows of the representation distances are
    measured on (the embeddings themselves when the representation is "model"); ``labeled_features`` and
    ``labeled_classes`` describe the labeled set (empty on a cold start); ``head`` is the classifier's last layer.
    """

    probabilities: np.ndarray
    embeddings: np.ndarray
    features: np.ndarray
    labeled_features: np.ndarray
    labeled_classes: np.ndarray | None = None
    head: ClassifierHead | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pool_size(self) -> int:
        return len(self.probabilities)

    def param(self, name: str):
        """An analysis parameter: the caller's value, else :data:`DESIGN_PARAMETERS`' default."""
        return self.params.get(name, DESIGN_PARAMETERS[name])


StrategyFunction = Callable[[SelectionInputs, int, int], np.ndarray]
"""A strategy: ``select(inputs, n, seed) -> pool positions`` (int64), best first, at most ``n`` of them, distinct.
Any such callable can be registered with :func:`register_strategy`."""


@dataclass(frozen=True)
class Strategy:
    """One entry of the strategy table: its function and what it needs.

    ``uses_features``: it measures distances on ``inputs.features``, so any representation applies.
    ``fills_budget``: it returns exactly ``min(n, pool)`` positions (the design's intersection does not).
    """

    name: str
    select: StrategyFunction
    needs: frozenset[str] = frozenset()
    uses_features: bool = False
    fills_budget: bool = True
    summary: str = ""


def check_representation(representation: str) -> None:
    """A clear error for a representation name outside ``REPRESENTATIONS``."""
    if representation not in REPRESENTATIONS:
        raise ToolkitError(f"unknown representation {str(representation)[:40]!r}: choose one of "
                           f"{', '.join(REPRESENTATIONS)}")


def run_strategy(entry: Strategy, inputs: SelectionInputs, n: int, seed: int = 0) -> np.ndarray:
    """Validate ``inputs`` once against what ``entry`` needs, run it, and check what it returns."""
    n = check_budget(n)
    p = check_probabilities(inputs.probabilities)
    for name, rows in (("embeddings", inputs.embeddings), ("features", inputs.features)):
        if len(check_embeddings(rows, name, allow_empty=True)) != len(p):
            raise ToolkitError(f"probabilities have {len(p)} rows but {name} have {len(rows)}: give one row per "
                               "pool image")
    labeled = check_embeddings(inputs.labeled_features, "labeled features", allow_empty=True)
    if "labeled_features" in entry.needs and len(labeled) == 0:
        raise ToolkitError(f"strategy {entry.name!r} compares the pool with labeled images but none were given: "
                           "pass labeled features or use 'entropy', 'diversity' or 'random'")
    if len(labeled) and len(p) and labeled.shape[1] != inputs.features.shape[1]:
        raise ToolkitError(f"pool features have {inputs.features.shape[1]} columns but labeled ones "
                           f"{labeled.shape[1]}: compute both with the same representation")
    if "labeled_classes" in entry.needs and inputs.labeled_classes is None:
        raise ToolkitError(f"strategy {entry.name!r} balances classes against the labeled set: pass "
                           "labeled_classes (the labeled images' class ids)")
    if "head" in entry.needs and inputs.head is None:
        raise ToolkitError(f"strategy {entry.name!r} reruns the classifier's last layer: pass its head "
                           "(altoolkit.model.classifier_head(model))")
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = np.asarray(entry.select(inputs, n, seed))
    if chosen.ndim != 1 or (chosen.size and not np.issubdtype(chosen.dtype, np.integer)):
        raise ToolkitError(f"strategy {entry.name!r} returned {chosen.dtype} of shape {chosen.shape}: it must "
                           "return a 1-D array of pool positions")
    chosen = as_indices(chosen)
    wanted = min(n, len(p))
    if (len(np.unique(chosen)) != len(chosen) or (len(chosen) and (chosen.min() < 0 or chosen.max() >= len(p)))
            or (entry.fills_budget and len(chosen) != wanted)):
        raise ToolkitError(f"strategy {entry.name!r} returned {len(chosen)} positions where {wanted} distinct "
                           f"pool positions (0..{len(p) - 1}) were due")
    return chosen


@dataclass(frozen=True)
class SelectionRound:
    """One round as every caller can describe it, before a strategy and representation are chosen.

    ``features_for(representation)`` returns (pool rows, labeled rows) of a label-free representation, computed
    only when a strategy needs it; ``head_for()`` returns the classifier's last layer, only when BALD runs.
    """

    probabilities: np.ndarray
    embeddings: np.ndarray
    labeled_embeddings: np.ndarray
    labeled_classes: np.ndarray
    features_for: Callable[[str], tuple[np.ndarray, np.ndarray]] | None = None
    head_for: Callable[[], ClassifierHead] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    learner: str = "mobilenet"
    """The learner whose probabilities and embeddings these are: ``recommended`` follows a different rule for a
    fast learner on a label-free representation than for MobileNetV3 from scratch."""


@dataclass(frozen=True)
class Selection:
    """What :func:`select` chose and what actually ran (``recommended`` resolves to a strategy per round)."""

    indices: np.ndarray
    requested: str
    strategy: str
    representation: str

    def describe(self) -> str:
        """E.g. ``typicality over pixels`` or ``recommended (typicality over pixels)``."""
        ran = f"{self.strategy} over {self.representation}"
        return ran if self.requested == self.strategy else f"{self.requested} ({ran})"
