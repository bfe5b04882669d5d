"""Budgeted strategies on small constructed arrays where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

import AL_functions as al
from altoolkit import strategies as st
from altoolkit.errors import ToolkitError
from altoolkit.sampling import seeded_ranking


def blob(centre, n, spread, seed):
    rng = np.random.default_rng(seed)
    return np.asarray(centre, dtype=np.float64) + spread * rng.standard_normal((n, len(centre)))


# --- core-set ------------------------------------------------------------------------------------------------------

def test_k_center_picks_the_far_cluster_first():
    near = blob([0, 0], 50, 0.5, 0)
    far = blob([20, 0], 5, 0.05, 1)
    pool = np.vstack([near, far])
    labeled = blob([0, 0], 10, 0.5, 2)
    assert st.k_center_greedy(pool, labeled, 1)[0] >= 50
    far_labeled = np.vstack([labeled, far[:1]])
    assert st.k_center_greedy(pool, far_labeled, 1)[0] < 50


def test_k_center_matches_a_brute_force_greedy():
    rng = np.random.default_rng(5)
    pool, labeled = rng.standard_normal((80, 3)), rng.standard_normal((7, 3))
    distances = np.linalg.norm(pool[:, None] - labeled[None], axis=2).min(axis=1)
    expected = []
    for _ in range(12):
        expected.append(int(np.argmax(distances)))
        distances = np.minimum(distances, np.linalg.norm(pool - pool[expected[-1]], axis=1))
        distances[expected] = -1
    assert st.k_center_greedy(pool, labeled, 12).tolist() == expected


def test_k_center_without_labeled_starts_from_a_seeded_point():
    pool = np.random.default_rng(0).standard_normal((30, 2))
    first, again = st.k_center_greedy(pool, None, 5, seed=3), st.k_center_greedy(pool, None, 5, seed=3)
    assert first.tolist() == again.tolist()
    assert {st.k_center_greedy(pool, None, 1, seed=s)[0] for s in range(10)} != {first[0]}


# --- BADGE ---------------------------------------------------------------------------------------------------------

def test_badge_factors_give_the_gradient_embedding_distances():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 6)
    h = rng.standard_normal((6, 4))
    a, hh = st.gradient_embedding_factors(p, h)
    onehot = np.eye(3)[p.argmax(axis=1)]
    gradients = np.einsum("ik,id->ikd", p - onehot, h).reshape(6, -1)
    assert np.allclose(a, p - onehot) and np.allclose(hh, h)
    explicit = ((gradients[:, None] - gradients[None]) ** 2).sum(axis=2)
    norms = (a * a).sum(1) * (h * h).sum(1)
    implicit = norms[:, None] + norms[None] - 2 * (a @ a.T) * (h @ h.T)
    assert np.allclose(explicit, implicit)


def test_badge_starts_with_the_largest_gradient_and_skips_duplicates():
    confident = np.tile([0.98, 0.01, 0.01], (20, 1))
    unsure = np.tile([0.4, 0.35, 0.25], (20, 1))
    probabilities = np.vstack([confident, unsure])
    embeddings = np.vstack([np.tile([1.0, 0.0], (20, 1)), np.tile([0.0, 1.0], (20, 1))])
    for seed in range(5):
        chosen = st.badge_select(probabilities, embeddings, 2, seed=seed)
        assert chosen[0] >= 20
        assert chosen[1] < 20


# --- BALD ----------------------------------------------------------------------------------------------------------

def test_mc_dropout_without_dropout_is_the_deterministic_head():
    rng = np.random.default_rng(0)
    kernel, bias, e = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((5, 4))
    passes = st.mc_dropout_probabilities(e, st.ClassifierHead(kernel, bias, 0.0), passes=3)
    logits = e @ kernel + bias
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert passes.shape == (3, 5, 3)
    assert np.allclose(passes, expected[None], atol=1e-5)
    assert np.allclose(st.bald_scores(passes), 0, atol=1e-5)


def test_bald_is_zero_where_dropout_changes_nothing_and_positive_where_it_does():
    kernel = np.array([[4.0, -4.0], [-4.0, 4.0]])
    head = st.ClassifierHead(kernel, np.zeros(2), 0.5)
    embeddings = np.array([[0.0, 0.0], [1.0, 1.0]])
    passes = st.mc_dropout_probabilities(embeddings, head, passes=50, seed=1)
    scores = st.bald_scores(passes)
    assert scores[0] == pytest.approx(0, abs=1e-6)
    assert scores[1] > 0.1
    assert np.array_equal(passes, st.mc_dropout_probabilities(embeddings, head, passes=50, seed=1))


def test_classifier_head_reproduces_the_model(tiny_digits_model, digits_dataset):
    from altoolkit.model import classifier_head, load_classifier, probabilities_and_embeddings

    model = load_classifier(tiny_digits_model.model_path)
    head = classifier_head(model)
    assert head.dropout_rate == pytest.approx(0.3)
    probabilities, embeddings = probabilities_and_embeddings(model, digits_dataset.x_train[200:232])
    deterministic = st.mc_dropout_probabilities(embeddings, st.ClassifierHead(head.kernel, head.bias, 0.0), 1)
    assert np.allclose(deterministic[0], probabilities, atol=1e-4)


# --- typicality ----------------------------------------------------------------------------------------------------

def test_typicality_picks_the_dense_centre_of_the_uncovered_cluster():
    dense = blob([0, 0], 60, 1.0, 0)
    covered = blob([30, 0], 30, 1.0, 1)
    pool = np.vstack([dense, covered])
    labeled = blob([30, 0], 30, 1.0, 2)
    chosen = st.typicality_select(pool, labeled, 1, seed=0)
    assert chosen[0] < 60
    distance_to_centre = np.linalg.norm(dense, axis=1)
    assert distance_to_centre[chosen[0]] <= np.quantile(distance_to_centre, 0.2)


def test_typicality_visits_each_uncovered_cluster_before_a_second_pick():
    centres = [[0, 0], [10, 0], [0, 10], [10, 10]]
    pool = np.vstack([blob(c, 25, 0.5, i) for i, c in enumerate(centres)])
    chosen = st.typicality_select(pool, np.zeros((0, 2)), 4, seed=0)
    assert sorted(chosen // 25) == [0, 1, 2, 3]


# --- uncertain and diverse ----------------------------------------------------------------------------------------

def test_weighted_clusters_take_one_per_uncertain_group_not_the_top_scores_of_one_group():
    near_duplicates = blob([0, 0], 10, 0.01, 0)
    other_confusions = blob([20, 0], 10, 0.01, 1)
    confident = blob([0, 20], 80, 0.01, 2)
    embeddings = np.vstack([near_duplicates, other_confusions, confident])
    uncertainty = np.r_[np.full(10, 0.99), np.full(10, 0.9), np.linspace(0.0, 0.1, 80)]
    chosen = st.weighted_cluster_select(uncertainty, embeddings, 2, seed=0, prefilter_factor=10)
    assert sorted(chosen // 10) == [0, 1]
    assert st.weighted_cluster_select(uncertainty, embeddings, 2, seed=0, prefilter_factor=1).tolist() == \
        seeded_ranking(uncertainty, 0)[:2].tolist()


def test_weighted_clusters_return_the_picks_most_uncertain_first():
    rng = np.random.default_rng(3)
    uncertainty, embeddings = rng.random(300), rng.standard_normal((300, 4))
    chosen = st.weighted_cluster_select(uncertainty, embeddings, 20, seed=1)
    assert len(set(chosen.tolist())) == 20
    assert np.all(np.diff(uncertainty[chosen]) <= 0)
    assert uncertainty[chosen].min() >= np.sort(uncertainty)[-200]


# --- class balance -------------------------------------------------------------------------------------------------

def test_class_balanced_fills_the_rarest_classes_first():
    predicted = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    ranking = np.arange(10)
    labeled = np.array([0] * 5 + [1] * 2)
    chosen = st.class_balanced_select(ranking, predicted, labeled, 5, num_classes=3)
    assert chosen.tolist() == [6, 7, 3, 8, 4]
    counts = np.bincount(np.concatenate([labeled, predicted[chosen]]), minlength=3)
    assert counts.tolist() == [5, 4, 3]


def test_class_balanced_still_spends_the_budget_when_a_class_runs_out():
    predicted = np.array([0, 0, 0, 0, 1])
    chosen = st.class_balanced_select(np.arange(5)[::-1], predicted, np.array([], dtype=int), 4, num_classes=2)
    assert chosen.tolist() == [4, 3, 2, 1]


def test_class_balanced_rejects_bad_input():
    with pytest.raises(ToolkitError, match="names a pool position twice"):
        st.class_balanced_select([0, 0], [0, 1], [], 1, 2)
    with pytest.raises(ToolkitError, match="below num_classes=2"):
        st.class_balanced_select([0, 1], [0, 2], [], 1, 2)
    with pytest.raises(ToolkitError, match="budget must be a non-negative integer"):
        st.class_balanced_select([0, 1], [0, 1], [], -1, 2)


# --- recommended ---------------------------------------------------------------------------------------------------

def test_recommended_switches_from_typical_pixels_to_the_model_when_classes_have_enough_labels():
    threshold = al.RECOMMENDED_SCARCE_LABELS_PER_CLASS * 10
    assert al.recommended_choice(0, 10) == al.recommended_choice(threshold - 1, 10) == al.RECOMMENDED_SCARCE
    assert al.recommended_choice(threshold, 10) == al.RECOMMENDED_LATER
    fast = al.RECOMMENDED_FAST_SCARCE_LABELS_PER_CLASS * 10
    assert al.recommended_choice(fast - 1, 10, "linear") == al.RECOMMENDED_FAST_SCARCE == ("typicality", "model")
    assert al.recommended_choice(fast, 10, "label_spreading") == al.RECOMMENDED_FAST_LATER
    assert al.RECOMMENDED_SCARCE[1] == "pixels" and al.RECOMMENDED_SCARCE[0] in al.STRATEGIES
    assert al.RECOMMENDED_LATER[0] in al.STRATEGIES
    with pytest.raises(ToolkitError, match="at least one class"):
        al.recommended_choice(10, 0)


def test_resolve_strategy_passes_other_names_through_and_rejects_unknown_ones():
    assert al.resolve_strategy("coreset", "pixels", 5, 3) == ("coreset", "pixels")
    assert al.resolve_strategy("recommended", "model", 5, 3) == al.RECOMMENDED_SCARCE
    with pytest.raises(ToolkitError, match="unknown strategy 'oracle': choose one of recommended, random"):
        al.resolve_strategy("oracle", "model", 5, 3)


def test_pixel_pca_features_are_seeded_and_narrow():
    images = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    features = st.pixel_pca_features(images, n_components=5, seed=1)
    assert features.shape == (40, 5)
    assert np.array_equal(features, st.pixel_pca_features(images, n_components=5, seed=1))
    with pytest.raises(ToolkitError, match="at least 2 images"):
        st.pixel_pca_features(images[:1])
