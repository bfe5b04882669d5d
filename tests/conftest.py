"""Shared, session-scoped fixtures: the digits data and ONE tiny trained model for every test that needs one.

Training costs most of a test session's time, so it happens once per session, here. Module-local fixtures named
``digits`` in other test files are independent of these.
"""

from __future__ import annotations

import pytest

TINY_MODEL_LABELED_SIZE = 100
"""The tiny model is trained on the first 100 digits, so pools start at index 100 or later."""


@pytest.fixture(scope="session")
def digits_dataset():
    """scikit-learn digits as the toolkit loads them: 1347 train / 450 test images, 32×32×3 uint8, 10 classes."""
    from altoolkit.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_digits_model(digits_dataset, tmp_path_factory):
    """A ``train.train_model`` run (TrainResult) on the first 100 digits for 1 epoch, seed 0.

    ``.model_path`` is ``<tmp>/models/100_train/best_model.keras`` (the ``models/<labeled>_train`` layout);
    ``.output_dir`` also holds metrics.json. Treat the files as read-only: they are shared by the whole session.
    Quality is near chance (one epoch from scratch): use it for plumbing, not for accuracy claims.
    """
    import train

    output_dir = tmp_path_factory.mktemp("models") / f"{TINY_MODEL_LABELED_SIZE}_train"
    return train.train_model(output_dir=output_dir, dataset=digits_dataset,
                             labeled_size=TINY_MODEL_LABELED_SIZE, epochs=1, seed=0, verbose=0)
