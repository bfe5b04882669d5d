"""Tests of the core heuristics against values computed by hand on small arrays."""

from __future__ import annotations

import subprocess
import sys
from math import log

import numpy as np
import pytest

import AL_functions as al
from altoolkit.errors import ToolkitError
from altoolkit.strategies import ClassifierHead

# Ten rows over three classes, built so that entropy and margin disagree on some rows.
# Entropy (nats)            margin score = 1 − (p1 − p2)
TEN_ROWS = np.array([
    [1.00, 0.00, 0.00],  # 0: 0                        0
    [0.90, 0.10, 0.00],  # 1: 0.325                    0.2
    [0.80, 0.10, 0.10],  # 2: 0.639                    0.3
    [0.50, 0.50, 0.00],  # 3: log 2 = 0.693            1.0
    [0.60, 0.20, 0.20],  # 4: 0.950                    0.6
    [0.45, 0.45, 0.10],  # 5: 0.949                    1.0
    [1 / 3, 1 / 3, 1 / 3],  # 6: log 3 = 1.099         1.0
    [0.65, 0.35, 0.00],  # 7: 0.647                    0.7
    [0.55, 0.45, 0.00],  # 8: 0.688                    0.9
    [0.70, 0.15, 0.15],  # 9: 0.819                    0.45
])


def h(*ps: float) -> float:
    return -sum(p * log(p) for p in ps if p > 0)


# --- uncertainty scores -------------------------------------------------------------------------------------------

def test_entropy_uniform_is_log_k_and_one_hot_is_zero():
    scores = al.entropy_scores([[0.25] * 4, [0, 1, 0, 0], [0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(scores, [log(4), 0.0, log(2)], atol=1e-12)


def test_margin_one_hot_is_zero_tie_is_one():
    np.testing.assert_allclose(al.margin_scores([[0, 1, 0], [0.5, 0.5, 0], [0.7, 0.1, 0.2]]), [0.0, 1.0, 0.5])


def test_margin_two_columns():
    np.testing.assert_allclose(al.margin_scores([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]), [1.0, 0.2, 0.4])


def test_least_confidence():
    np.testing.assert_allclose(al.least_confidence_scores([[0, 1, 0], [0.5, 0.3, 0.2], [1 / 3] * 3]),
                               [0.0, 0.5, 2 / 3])


def test_select_uncertain_top_half_and_criteria():
    result = al.select_uncertain(TEN_ROWS, threshold_percentile=50)
    # Median of the sorted entropies lies between row 8 (0.688) and row 3 (0.693);
    # median of the margins (0, .2, .3, .45, .6, .7, .9, 1, 1, 1) is (0.6 + 0.7) / 2.
    assert result.entropy_threshold == pytest.approx((h(0.55, 0.45) + log(2)) / 2)
    assert result.margin_threshold == pytest.approx(0.65)
    assert result.indices.tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert result.indices.dtype == np.int64
    assert result.criterion.tolist() == ["", "", "", "both", "entropy", "both", "both", "margin", "margin", "entropy"]
    np.testing.assert_allclose(result.entropy[[4, 9]], [h(0.6, 0.2, 0.2), h(0.7, 0.15, 0.15)])
    np.testing.assert_allclose(result.margin, [0, 0.2, 0.3, 1, 0.6, 1, 1, 0.7, 0.9, 0.45])
    np.testing.assert_allclose(result.least_confidence[[0, 6, 7]], [0, 2 / 3, 0.35])


def test_select_uncertain_100_percent_takes_everything():
    assert al.select_uncertain(TEN_ROWS, threshold_percentile=100).indices.tolist() == list(range(10))


def test_uncertainty_result_is_frozen():
    result = al.select_uncertain(TEN_ROWS)
    with pytest.raises(AttributeError):
        result.indices = np.zeros(0)


@pytest.mark.parametrize("bad, message", [
    ([0.5, 0.5], "2-D"),
    ([[1.0], [1.0]], "at least 2 class columns"),
    ([[np.nan, 1.0]], "NaN or infinity"),
    ([[1.5, -0.5]], "negative"),
    ([[0.5, 0.6]], "sum to 1"),
    ([[2.0, 3.0]], "not logits"),
])
def test_bad_probabilities_raise(bad, message):
    for score in (al.entropy_scores, al.margin_scores, al.least_confidence_scores, al.select_uncertain):
        with pytest.raises(ToolkitError, match=message):
            score(bad)


def test_probability_rows_within_tolerance_are_accepted():
    al.entropy_scores([[0.5, 0.5005]])


@pytest.mark.parametrize("percentile", [0, -5, 100.5, np.nan])
def test_bad_threshold_percentile_raises(percentile):
    with pytest.raises(ToolkitError, match=r"threshold_percentile must be in \(0, 100\]"):
        al.select_uncertain(TEN_ROWS, threshold_percentile=percentile)


# --- diversity ----------------------------------------------------------------------------------------------------

def two_blobs():
    """Two blobs centred at (0, 0) and (100, 100): centre, four points at distance 1, two (symmetric) at distance 5."""
    offsets = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [5, 0], [-5, 0]], dtype=np.float64)
    return np.vstack([offsets, offsets + 100])


def check_two_blobs(result):
    # 14 distances sorted: 0, 0, 1 ×8, 5 ×4; 75th percentile at position 9.75 → 1 + 0.75 × (5 − 1) = 4.
    labels = result.cluster_labels
    assert len(set(labels[:7])) == 1 and len(set(labels[7:])) == 1 and labels[0] != labels[7]
    np.testing.assert_allclose(np.sort(result.centroids, axis=0), [[0, 0], [100, 100]], atol=1e-9)
    np.testing.assert_allclose(result.distances, [0, 1, 1, 1, 1, 5, 5] * 2, atol=1e-9)
    assert result.threshold == pytest.approx(4.0)
    assert result.indices.tolist() == [5, 6, 12, 13]
    assert sorted(result.representatives.tolist()) == [0, 7]
    assert labels[result.representatives].tolist() == sorted(labels[result.representatives].tolist())


def test_diversity_finds_planted_centres_and_far_points():
    check_two_blobs(al.analyze_diversity_embeddings(two_blobs(), n_clusters=2))


def test_diversity_sampled_fit_gives_the_same_answer(monkeypatch):
    monkeypatch.setattr(al, "FIT_SAMPLE", 12)
    check_two_blobs(al.analyze_diversity_embeddings(two_blobs(), n_clusters=2))


def test_diversity_one_representative_per_cluster():
    embeddings = np.random.default_rng(0).standard_normal((50, 4))
    result = al.analyze_diversity_embeddings(embeddings, n_clusters=5, random_state=1)
    assert len(result.representatives) == len(np.unique(result.cluster_labels)) == 5
    for cluster, index in zip(np.unique(result.cluster_labels), result.representatives):
        members = np.flatnonzero(result.cluster_labels == cluster)
        assert index == members[np.argmin(result.distances[members])]


@pytest.mark.parametrize("n_clusters", [0, -1, 15])
def test_bad_n_clusters_raises(n_clusters):
    with pytest.raises(ToolkitError, match=r"n_clusters must be between 1 and the pool size \(14\)"):
        al.analyze_diversity_embeddings(two_blobs(), n_clusters=n_clusters)


@pytest.mark.parametrize("bad, message", [(np.zeros(5), "2-D"), (np.zeros((0, 3)), "empty"),
                                          (np.array([[np.inf, 0.0]]), "NaN or infinity")])
def test_bad_embeddings_raise(bad, message):
    with pytest.raises(ToolkitError, match=message):
        al.analyze_diversity_embeddings(bad, n_clusters=1)


# --- novelty ------------------------------------------------------------------------------------------------------

LABELED_ON_A_LINE = np.array([[0.0], [10.0]])
POOL_ON_A_LINE = np.array([[1.0], [5.0], [12.0], [-3.0]])


def test_novelty_nearest_labeled_distance():
    result = al.analyze_novelty_embeddings(POOL_ON_A_LINE, LABELED_ON_A_LINE, k_neighbors=1)
    np.testing.assert_allclose(result.scores, [1, 5, 2, 3])
    # sorted 1, 2, 3, 5: 75th percentile at position 2.25 → 3 + 0.25 × 2 = 3.5
    assert result.threshold == pytest.approx(3.5)
    assert result.indices.tolist() == [1]


def test_novelty_mean_of_two_neighbours(monkeypatch):
    monkeypatch.setattr(al, "NEAREST_NEIGHBORS_CHUNK", 3)  # two chunks: rows 0–2 and row 3
    result = al.analyze_novelty_embeddings(POOL_ON_A_LINE, LABELED_ON_A_LINE, k_neighbors=2, novelty_percentile=50)
    np.testing.assert_allclose(result.scores, [(1 + 9) / 2, (5 + 5) / 2, (2 + 12) / 2, (3 + 13) / 2])
    assert result.threshold == pytest.approx(6.0)
    assert result.indices.tolist() == [2, 3]


@pytest.mark.parametrize("k", [0, 3])
def test_bad_k_neighbors_raises(k):
    with pytest.raises(ToolkitError, match=r"k_neighbors must be between 1 and the number of labeled images \(2\)"):
        al.analyze_novelty_embeddings(POOL_ON_A_LINE, LABELED_ON_A_LINE, k_neighbors=k)


def test_novelty_width_mismatch_raises():
    with pytest.raises(ToolkitError, match="pool embeddings have 2 features but labeled embeddings have 1"):
        al.analyze_novelty_embeddings(np.zeros((3, 2)), LABELED_ON_A_LINE, k_neighbors=1)


def test_novelty_needs_labeled_embeddings():
    with pytest.raises(ToolkitError, match="labeled embeddings is empty"):
        al.analyze_novelty_embeddings(POOL_ON_A_LINE, np.zeros((0, 1)), k_neighbors=1)


# --- combining and picking ----------------------------------------------------------------------------------------

def test_intersect_indices():
    assert al.intersect_indices([5, 1, 3, 3], [3, 5, 7], np.array([9, 5, 3])).tolist() == [3, 5]
    assert al.intersect_indices([1, 2], [3, 4]).tolist() == []
    assert al.intersect_indices([], [1]).dtype == np.int64
    assert al.intersect_indices().tolist() == []
    assert al.intersect_indices([4, 2, 2]).tolist() == [2, 4]


def test_random_indices():
    chosen = al.random_indices(100, 10, seed=3)
    assert len(chosen) == len(set(chosen.tolist())) == 10
    assert chosen.tolist() == sorted(chosen.tolist()) and chosen.dtype == np.int64
    assert chosen.tolist() == al.random_indices(100, 10, seed=3).tolist()
    assert chosen.tolist() != al.random_indices(100, 10, seed=4).tolist()
    assert al.random_indices(4, 10, seed=0).tolist() == [0, 1, 2, 3]


def test_min_max_normalise():
    np.testing.assert_allclose(al.min_max_normalise([2, 4, 6]), [0, 0.5, 1])
    np.testing.assert_allclose(al.min_max_normalise([3, 3, 3]), [0, 0, 0])


def test_combined_scores_by_hand():
    # normalised: uncertainty [0, .5, 1], diversity constant → 0, novelty [1, 0, .5]
    combined = al.combined_scores([0, 1, 2], [10, 10, 10], [3, 1, 2])
    np.testing.assert_allclose(combined, [0.5 * 0 + 0.2 * 1, 0.5 * 0.5 + 0.2 * 0, 0.5 * 1 + 0.2 * 0.5])
    np.testing.assert_allclose(al.combined_scores([0, 1], [1, 0], [0, 0], weights=(1, 1, 0)), [1, 1])


@pytest.mark.parametrize("weights", [(1, 1), (1, -1, 0), (np.nan, 1, 1)])
def test_combined_scores_bad_weights(weights):
    with pytest.raises(ToolkitError, match="weights must be three non-negative numbers"):
        al.combined_scores([0, 1], [0, 1], [0, 1], weights=weights)


def test_combined_scores_length_mismatch():
    with pytest.raises(ToolkitError, match=r"got lengths \[2, 3, 2\]"):
        al.combined_scores([0, 1], [0, 1, 2], [0, 1])


def test_top_n_highest_first():
    assert al.top_n([0.1, 0.9, 0.5, 0.7], 2).tolist() == [1, 3]
    assert al.top_n([0.1, 0.9], 5).tolist() == [1, 0]
    assert al.top_n([0.1, 0.9], 0).tolist() == []


def test_top_n_seeded_tie_break():
    scores = [1, 1, 1, 1, 1, 1, 0]
    picks = {tuple(al.top_n(scores, 3, seed=seed).tolist()) for seed in range(20)}
    assert len(picks) > 1
    assert all(6 not in pick for pick in picks)
    assert al.top_n(scores, 3, seed=7).tolist() == al.top_n(scores, 3, seed=7).tolist()


def test_top_n_bad_input():
    with pytest.raises(ToolkitError, match="NaN or infinity"):
        al.top_n([0.1, np.nan], 1)
    with pytest.raises(ToolkitError, match="n must be non-negative"):
        al.top_n([0.1], -1)


# --- select_samples -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(42)
    probabilities = rng.dirichlet(np.ones(3), 60)
    embeddings = rng.standard_normal((60, 8))
    labeled = rng.standard_normal((10, 8))
    return probabilities, embeddings, labeled


POOL_HEAD = ClassifierHead(kernel=np.random.default_rng(3).standard_normal((8, 3)), bias=np.zeros(3),
                           dropout_rate=0.3)


def select(pool, strategy, n=7, seed=0):
    probabilities, embeddings, labeled = pool
    return al.select_samples(probabilities, embeddings, labeled, n, strategy=strategy, seed=seed, n_clusters=3,
                             labeled_classes=np.arange(10) % 3, head=POOL_HEAD)


def test_select_samples_ranked_strategies_match_their_scores(pool):
    probabilities, embeddings, labeled = pool
    assert select(pool, "entropy").tolist() == al.top_n(al.entropy_scores(probabilities), 7).tolist()
    assert select(pool, "uncertainty").tolist() == select(pool, "entropy").tolist()
    assert select(pool, "margin").tolist() == al.top_n(al.margin_scores(probabilities), 7).tolist()
    novelty = al.analyze_novelty_embeddings(embeddings, labeled)
    assert select(pool, "novelty").tolist() == al.top_n(novelty.scores, 7).tolist()


def test_select_samples_intersection_and_filled(pool):
    probabilities, embeddings, labeled = pool
    uncertain = al.select_uncertain(probabilities)
    diversity = al.analyze_diversity_embeddings(embeddings, n_clusters=3)
    novelty = al.analyze_novelty_embeddings(embeddings, labeled)
    expected = al.intersect_indices(uncertain.indices, diversity.indices, novelty.indices)
    assert 0 < len(expected) < 20
    assert select(pool, "intersection").tolist() == expected.tolist()
    combined = al.combined_scores(uncertain.entropy, diversity.distances, novelty.scores)
    filled = select(pool, "intersection_filled", n=20)
    head, tail = filled[:len(expected)], filled[len(expected):]
    assert sorted(head.tolist()) == expected.tolist()
    assert np.all(np.diff(combined[head]) <= 0) and np.all(np.diff(combined[tail]) <= 0)
    assert not set(tail.tolist()) & set(expected.tolist())
    short = select(pool, "intersection_filled", n=2)
    assert set(short.tolist()) <= set(expected.tolist()) and len(short) == 2


def test_select_samples_random_depends_on_seed(pool):
    assert select(pool, "random", seed=1).tolist() != select(pool, "random", seed=2).tolist()


def test_select_samples_empty_intersection_is_empty_not_an_error():
    probabilities = np.array([[1.0, 0.0]] * 4 + [[0.5, 0.5]] * 4)  # the uncertain rows are 4..7
    embeddings = np.array([[0.0], [0.0], [0.0], [9.0], [1.0], [1.0], [1.0], [1.0]])  # far: row 3 only
    labeled = np.array([[0.0]])
    chosen = al.select_samples(probabilities, embeddings, labeled, 3, strategy="intersection", n_clusters=1,
                               k_neighbors=1)
    assert chosen.tolist() == [] and chosen.dtype == np.int64
    assert len(al.select_samples(probabilities, embeddings, labeled, 3, strategy="intersection_filled",
                                 n_clusters=1, k_neighbors=1)) == 3


def test_select_samples_unknown_strategy_lists_names(pool):
    with pytest.raises(ToolkitError, match="unknown strategy 'oracle': choose one of random, entropy, .*badge"):
        select(pool, "oracle")


def test_select_samples_needs_head_for_bald_and_classes_for_balancing(pool):
    probabilities, embeddings, labeled = pool
    with pytest.raises(ToolkitError, match="'bald' reruns the classifier's last layer"):
        al.select_samples(probabilities, embeddings, labeled, 5, strategy="bald")
    with pytest.raises(ToolkitError, match="pass labeled_classes"):
        al.select_samples(probabilities, embeddings, labeled, 5, strategy="class_balanced_margin")


@pytest.mark.parametrize("strategy", ["novelty", "combined", "intersection", "intersection_filled"])
def test_select_samples_needs_labeled_for_novelty(pool, strategy):
    probabilities, embeddings, _ = pool
    with pytest.raises(ToolkitError, match=f"strategy '{strategy}' compares the pool with labeled images"):
        al.select_samples(probabilities, embeddings, None, 5, strategy=strategy)


def test_select_samples_without_labeled_for_plain_strategies(pool):
    probabilities, embeddings, _ = pool
    assert len(al.select_samples(probabilities, embeddings, None, 5, strategy="entropy")) == 5


def test_select_samples_row_mismatch_and_negative_n(pool):
    probabilities, embeddings, labeled = pool
    with pytest.raises(ToolkitError, match="probabilities have 60 rows but embeddings have 59"):
        al.select_samples(probabilities, embeddings[:59], labeled, 5, strategy="entropy")
    with pytest.raises(ToolkitError, match="n must be non-negative"):
        al.select_samples(probabilities, embeddings, labeled, -1, strategy="entropy")


def test_select_samples_passes_n_clusters_errors_through(pool):
    with pytest.raises(ToolkitError, match="n_clusters must be between 1 and the pool size"):
        al.select_samples(*pool, 5, strategy="diversity", n_clusters=61)


# --- Keras: feature extractor and modAL adapter -------------------------------------------------------------------

def tiny_sequential(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3, activation="softmax")])


def test_feature_extractor_sequential_matches_hand_computation():
    model = tiny_sequential()
    images = np.random.default_rng(0).random((5, 8, 8, 3)).astype(np.float32)
    extractor = al.get_feature_extractor(model)
    assert len(extractor.outputs) == 1 and tuple(extractor.outputs[0].shape) == (None, 4)
    weights, bias = model.layers[1].get_weights()
    expected = np.maximum(images.reshape(5, -1) @ weights + bias, 0)
    np.testing.assert_allclose(extractor.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_feature_extractor_functional():
    import keras

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    extractor = al.get_feature_extractor(model)
    assert tuple(extractor.outputs[0].shape) == (None, 5)
    assert extractor.predict(np.zeros((3, 6), np.float32), verbose=0).shape == (3, 5)


def test_feature_extractor_mobilenet_classifier():
    from altoolkit.model import build_model

    extractor = al.get_feature_extractor(build_model(3))
    assert tuple(extractor.outputs[0].shape) == (None, 576)
    assert extractor.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0).shape == (2, 576)


def test_modal_active_learner_queries_top_entropy():
    from modAL.models import ActiveLearner

    from altoolkit.model import probabilities_and_embeddings

    model = tiny_sequential(seed=1)
    X_pool = np.random.default_rng(1).random((40, 8, 8, 3)).astype(np.float32)
    calls = []
    strategy = al.modal_query_strategy("entropy")

    def counting_strategy(*args, **kwargs):
        calls.append(1)
        return strategy(*args, **kwargs)

    learner = ActiveLearner(estimator=model, query_strategy=counting_strategy)
    indices, instances = learner.query(X_pool, n_instances=5)
    probabilities, _ = probabilities_and_embeddings(model, X_pool)
    expected = np.argsort(-al.entropy_scores(probabilities), kind="stable")[:5]
    assert sorted(indices.tolist()) == sorted(expected.tolist())
    assert indices.tolist() == al.top_n(al.entropy_scores(probabilities), 5).tolist()
    np.testing.assert_array_equal(instances, X_pool[indices])
    assert len(calls) == 1


def test_modal_combined_uses_labeled_images():
    from modAL.models import ActiveLearner

    model = tiny_sequential(seed=2)
    rng = np.random.default_rng(2)
    X_pool, labeled = rng.random((30, 8, 8, 3)).astype(np.float32), rng.random((6, 8, 8, 3)).astype(np.float32)
    learner = ActiveLearner(estimator=model, query_strategy=al.modal_query_strategy(
        "intersection_filled", labeled_images=labeled, seed=3, n_clusters=3, k_neighbors=2))
    indices, _ = learner.query(X_pool, n_instances=4)
    assert len(set(indices.tolist())) == 4


def test_modal_query_strategy_rejects_bad_configuration():
    with pytest.raises(ToolkitError, match="unknown strategy 'oracle'"):
        al.modal_query_strategy("oracle")
    with pytest.raises(ToolkitError, match="needs labeled_classes"):
        al.modal_query_strategy("class_balanced_margin")
    with pytest.raises(ToolkitError, match="unknown parameter"):
        al.modal_query_strategy("entropy", n_cluster=3)
    with pytest.raises(ToolkitError, match="needs labeled_images"):
        al.modal_query_strategy("novelty")


def test_import_is_cheap():
    code = "import sys, AL_functions; print(sorted({'tensorflow', 'keras', 'sklearn'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_modal_bald_takes_the_head_from_the_model():
    from modAL.models import ActiveLearner

    model = tiny_sequential(seed=4)
    X_pool = np.random.default_rng(4).random((30, 8, 8, 3)).astype(np.float32)
    learner = ActiveLearner(estimator=model, query_strategy=al.modal_query_strategy("bald", seed=1))
    indices, _ = learner.query(X_pool, n_instances=4)
    assert len(set(indices.tolist())) == 4
