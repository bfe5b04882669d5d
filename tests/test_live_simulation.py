"""The live-versus-batch simulation's computations: the paired difference on a hand-made case, and one arm on
tiny separable data (what it returns, and that a seed fixes it)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.live_simulation import paired_difference, run_arm


def test_paired_difference_on_hand_made_seeds():
    # differences 0.1, 0.2, 0.0: mean 0.1, standard deviation 0.1, standard error 0.1/√3; t(0.975, 2 df) = 4.3027
    mean, half_width, p_value = paired_difference(np.array([0.5, 0.7, 0.6]), np.array([0.4, 0.5, 0.6]))
    assert mean == pytest.approx(0.1)
    assert half_width == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert p_value == pytest.approx(0.2254, abs=1e-3)  # t = √3 on 2 degrees of freedom
    assert paired_difference(np.array([0.5, 0.6]), np.array([0.4, 0.5]))[1:] == (0.0, 0.0)
    assert paired_difference(np.array([0.5, 0.6]), np.array([0.5, 0.6]))[2] == 1.0


def test_one_arm_reports_accuracy_after_every_checkpoint_and_a_seed_fixes_it():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    classes = rng.integers(0, 3, 300)
    features = (centres[classes] + rng.normal(size=(300, 2))).astype(np.float32)
    test_classes = rng.integers(0, 3, 90)
    test_features = (centres[test_classes] + rng.normal(size=(90, 2))).astype(np.float32)
    pool = rng.permutation(300)[:200]
    first = run_arm(features, classes, test_features, test_classes, pool, 30, 40, 10, 20, seed=1)
    assert len(first) == 3 and all(0.8 <= accuracy <= 1.0 for accuracy in first)
    assert run_arm(features, classes, test_features, test_classes, pool, 30, 40, 10, 20, seed=1) == first
