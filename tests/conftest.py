"""Shared, session-scoped fixtures: the digits data and ONE tiny trained model for every test that needs one.

Training costs most of a test session's time, so it happens once per session, here. Module-local fixtures named
``digits`` in other test files are independent of these.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_MODEL_LABELED_SIZE = 100
"""The tiny model is trained on the first 100 digits, so pools start at index 100 or later."""
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium_page():
    """A 1280×900 page in Debian's headless Chromium driven by Playwright, with ``page.console_errors`` collecting
    every console error and ``page.requested`` every URL it asked for. Skips without Playwright or Chromium, unless
    AL_REQUIRE_BROWSER=1 (CI), where their absence fails."""
    if os.environ.get("AL_REQUIRE_BROWSER") == "1":
        assert CHROMIUM.exists(), f"{CHROMIUM} is missing but AL_REQUIRE_BROWSER=1: install Debian's chromium"
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser test")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(10000)
            page.console_errors, page.requested = [], []
            page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
            page.on("pageerror", lambda error: page.console_errors.append(str(error)))
            page.on("request", lambda request: page.requested.append(request.url))
            yield page
        finally:
            browser.close()


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


@pytest.fixture(scope="session")
def digit_folders(tmp_path_factory, digits_dataset):
    """A labeled folder (five images per digit class, the ``folder`` data source) and a pool folder of forty
    unlabeled digits (300.png … 339.png); the tiny model fits their classes. Read-only: shared by the session."""
    root = tmp_path_factory.mktemp("folders")
    counts = {}
    for index in range(len(digits_dataset.x_train)):
        name = digits_dataset.class_names[digits_dataset.y_train[index]]
        if counts.get(name, 0) < 5:
            counts[name] = counts.get(name, 0) + 1
            write_png(digits_dataset.x_train[index], root / "labeled" / name / f"{index}.png")
    for index in range(300, 340):
        write_png(digits_dataset.x_train[index], root / "pool" / f"{index}.png")
    return root / "labeled", root / "pool"


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A user's "pretrained" network as a .keras file: a seeded random 5×5 convolution, max pooling and flatten on
    32×32 colour images (random convolution features separate the digits well above chance). Read-only."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 5, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    path = tmp_path_factory.mktemp("backbone") / "backbone.keras"
    keras.Model(inputs, keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(x))).save(path)
    return path


@pytest.fixture(scope="session")
def png_writer():
    """``write_png(image, file)``: save a uint8 image as a PNG, creating its folders (test modules cannot import
    this conftest by name: the hostile suite has its own)."""
    return write_png


def write_png(image, file) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(file)


TRAINED_MODEL_FIXTURES = {"tiny_digits_model", "tiny_run", "short_run", "fast_run"}
"""Fixtures that train a model: every test using one (directly or through another fixture) is marked ``slow``."""


def pytest_collection_modifyitems(config, items):
    """Mark the tests that train a model ``slow``, so ``pytest -m "not slow"`` runs the pure parts quickly."""
    for item in items:
        if TRAINED_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
