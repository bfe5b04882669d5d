"""ProbCover on toy graphs whose greedy cover is known."""

from __future__ import annotations

import numpy as np
import pytest

from altoolkit.coverage import ball_graph, probcover_select, purity_radius
from altoolkit.errors import ToolkitError

GROUPS = np.array([[0.0], [0.1], [0.2], [0.3], [0.4],   # A: 5 points
                   [10.0], [10.1], [10.2],                # B: 3 points
                   [20.0], [20.1]])                       # C: 2 points


def group_of(position: int) -> str:
    return "A" if position < 5 else "B" if position < 8 else "C"


def test_ball_graph_joins_exactly_the_points_closer_than_the_radius():
    graph = ball_graph(GROUPS, radius=1.0).toarray()
    same_group = np.array([[group_of(i) == group_of(j) for j in range(10)] for i in range(10)])
    assert np.array_equal(graph.astype(bool), same_group)


def test_greedy_cover_takes_the_largest_uncovered_ball_first():
    chosen = probcover_select(GROUPS, np.zeros((0, 1)), 3, radius=1.0)
    assert [group_of(i) for i in chosen] == ["A", "B", "C"]


def test_labeled_points_cover_their_ball_and_the_rest_is_random_once_all_is_covered():
    chosen = probcover_select(GROUPS, np.array([[0.2]]), 5, radius=1.0, seed=3)
    assert [group_of(i) for i in chosen[:2]] == ["B", "C"]
    assert len(set(chosen.tolist())) == 5
    again = probcover_select(GROUPS, np.array([[0.2]]), 5, radius=1.0, seed=3)
    assert np.array_equal(chosen, again)


def test_purity_radius_stays_inside_well_separated_clusters():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.3, (40, 2)), rng.normal(0, 0.3, (40, 2)) + [8.0, 0.0]])
    radius = purity_radius(points, num_clusters=2, purity=0.95, seed=0)
    assert 5.0 < radius < 8.5
    chosen = probcover_select(points, np.zeros((0, 2)), 2, num_clusters=2, seed=0)
    assert sorted(int(i >= 40) for i in chosen) == [0, 1]


def test_budget_larger_than_the_pool_and_bad_input():
    assert sorted(probcover_select(GROUPS, np.zeros((0, 1)), 50, radius=1.0).tolist()) == list(range(10))
    with pytest.raises(ToolkitError, match="pool features have 1 columns but labeled ones 2"):
        probcover_select(GROUPS, np.zeros((1, 2)), 2, radius=1.0)
    with pytest.raises(ToolkitError, match="purity must lie in"):
        purity_radius(GROUPS, 2, purity=1.5)
