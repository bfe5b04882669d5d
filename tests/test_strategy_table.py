"""The strategy contract, written once for every entry of the strategy table, and registering a new strategy."""

from __future__ import annotations

import numpy as np
import pytest

import AL_functions as al
from altoolkit.errors import ToolkitError
from altoolkit.strategies import ClassifierHead

POOL, LABELED, CLASSES, WIDTH = 90, 12, 4, 6


@pytest.fixture(scope="module")
def round_inputs() -> al.SelectionRound:
    """A pool of 90 with 12 labeled images, model embeddings of width 6 and 'pixel' features of width 5."""
    rng = np.random.default_rng(11)
    pixels = rng.standard_normal((POOL + LABELED, 5))
    head = ClassifierHead(rng.standard_normal((WIDTH, CLASSES)), np.zeros(CLASSES), 0.3)
    return al.SelectionRound(
        probabilities=rng.dirichlet(np.ones(CLASSES), POOL), embeddings=rng.standard_normal((POOL, WIDTH)),
        labeled_embeddings=rng.standard_normal((LABELED, WIDTH)), labeled_classes=rng.integers(0, CLASSES, LABELED),
        features_for=lambda name: (pixels[:POOL], pixels[POOL:]), head_for=lambda: head,
        params={"n_clusters": 4})


@pytest.mark.parametrize("name", sorted(al.STRATEGIES))
@pytest.mark.parametrize("budget", [0, 1, 13, 200])
def test_every_strategy_returns_the_budget_of_distinct_pool_positions_deterministically(name, budget, round_inputs):
    entry = al.STRATEGY_TABLE[name]
    for representation in ("model", "pixels") if entry.uses_features else ("model",):
        chosen = al.select(name, round_inputs, budget, seed=2, representation=representation)
        indices = chosen.indices
        assert indices.dtype == np.int64 and len(set(indices.tolist())) == len(indices)
        assert np.all((indices >= 0) & (indices < POOL))
        if entry.fills_budget:
            assert len(indices) == min(budget, POOL)
        assert chosen.representation == representation and chosen.strategy == name
        again = al.select(name, round_inputs, budget, seed=2, representation=representation)
        assert np.array_equal(indices, again.indices)


@pytest.mark.parametrize("name", sorted(al.STRATEGIES))
def test_every_strategy_refuses_bad_input_with_one_clear_error(name, round_inputs):
    entry = al.STRATEGY_TABLE[name]
    with pytest.raises(ToolkitError, match="budget must be a non-negative integer"):
        al.select(name, round_inputs, -1)
    short = al.SelectionRound(round_inputs.probabilities, round_inputs.embeddings[:-1],
                              round_inputs.labeled_embeddings, round_inputs.labeled_classes,
                              head_for=round_inputs.head_for)
    with pytest.raises(ToolkitError, match="90 rows but embeddings have 89"):
        al.select(name, short, 5)
    complete = dict(probabilities=round_inputs.probabilities, embeddings=round_inputs.embeddings,
                    features=round_inputs.embeddings, labeled_features=round_inputs.labeled_embeddings,
                    labeled_classes=round_inputs.labeled_classes, head=round_inputs.head_for(),
                    params=round_inputs.params)
    without = {"labeled_features": np.zeros((0, WIDTH)), "labeled_classes": None, "head": None}
    for need in entry.needs:
        inputs = al.SelectionInputs(**{**complete, need: without[need]})
        with pytest.raises(ToolkitError, match=f"strategy {name!r}"):
            al.run_strategy(entry, inputs, 5)


def toy_strategy(inputs: al.SelectionInputs, n: int, seed: int) -> np.ndarray:
    """The last n pool images, newest first: a strategy any user could write."""
    return np.arange(inputs.pool_size)[::-1][:n]


def test_a_registered_strategy_is_selected_through_the_one_call_and_checked(round_inputs):
    al.register_strategy("toy_last", toy_strategy, summary="last images first", replace=True)
    assert al.select("toy_last", round_inputs, 3).indices.tolist() == [89, 88, 87]
    al.register_strategy("toy_broken", lambda inputs, n, seed: np.zeros(n, dtype=np.int64), replace=True)
    with pytest.raises(ToolkitError, match="'toy_broken' returned 3 positions where 3 distinct"):
        al.select("toy_broken", round_inputs, 3)
    with pytest.raises(ToolkitError, match="exists already"):
        al.register_strategy("margin", toy_strategy)
    with pytest.raises(ToolkitError, match="unknown input"):
        al.register_strategy("toy_needy", toy_strategy, needs=("oracle",))


def test_a_strategy_named_by_module_and_function_is_imported_and_registered(round_inputs):
    name = "tests.test_strategy_table:toy_strategy"
    assert al.select(name, round_inputs, 2).indices.tolist() == [89, 88]
    assert name in al.STRATEGY_TABLE
    with pytest.raises(ToolkitError, match="cannot load strategy 'no_such_module:thing'"):
        al.select("no_such_module:thing", round_inputs, 2)


def test_recommended_resolves_per_round_and_says_what_ran(round_inputs):
    chosen = al.select(al.RECOMMENDED, round_inputs, 5)
    assert (chosen.strategy, chosen.representation) == al.recommended_choice(LABELED, CLASSES)
    assert chosen.describe() == f"recommended ({chosen.strategy} over {chosen.representation})"
