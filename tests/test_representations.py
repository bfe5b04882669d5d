"""Label-free representations: the patch network's pieces on hand-made values, and its convolution against loops."""

from __future__ import annotations

import numpy as np
import pytest

from altoolkit.errors import ToolkitError
from altoolkit.representations import PatchFeatures, normalised_patches, random_patches, triangle_activation


def test_triangle_activation_keeps_centroids_closer_than_the_mean_distance():
    distances = np.array([[1.0, 2.0, 3.0, 6.0]])  # mean 3
    assert triangle_activation(distances).tolist() == [[2.0, 1.0, 0.0, 0.0]]


def test_normalised_patches_remove_brightness_and_contrast():
    flat = np.full((1, 4), 200.0)
    ramp = np.array([[0.0, 10.0, 20.0, 30.0]])
    assert np.allclose(normalised_patches(flat), 0.0)
    brighter = normalised_patches(ramp + 100.0)
    assert np.allclose(brighter, normalised_patches(ramp))
    variance = ramp.var()
    assert np.allclose(normalised_patches(ramp), (ramp - 15.0) / np.sqrt(variance + 10.0))


def test_random_patches_are_seeded_windows_of_the_images():
    images = np.arange(2 * 5 * 5 * 1, dtype=np.float64).reshape(2, 5, 5, 1)
    first = random_patches(images, 3, 7, np.random.default_rng(4))
    again = random_patches(images, 3, 7, np.random.default_rng(4))
    assert np.array_equal(first, again)
    windows = {tuple(images[n, r:r + 3, c:c + 3, 0].ravel()) for n in range(2) for r in range(3) for c in range(3)}
    assert all(tuple(row) in windows for row in first)


def brute_force_features(extractor: PatchFeatures, images: np.ndarray) -> np.ndarray:
    """Every patch extracted in Python loops, normalised, whitened, compared to every centroid, then pooled."""
    size, grid = extractor.patch_size, extractor.pooling
    features = []
    for image in images.astype(np.float64)[..., :extractor.channels_]:
        positions = image.shape[0] - size + 1
        activations = np.empty((positions, positions, extractor.n_centroids))
        for row in range(positions):
            for column in range(positions):
                patch = normalised_patches(image[row:row + size, column:column + size].reshape(1, -1))
                whitened = (patch - extractor.patch_mean_) @ extractor.whitening_.T
                distances = np.sqrt(((whitened - extractor.centroids_) ** 2).sum(axis=1))
                activations[row, column] = triangle_activation(distances[None])[0]
        pooled = [activations[r * positions // grid:(r + 1) * positions // grid,
                              c * positions // grid:(c + 1) * positions // grid].sum(axis=(0, 1))
                  for r in range(grid) for c in range(grid)]
        features.append(np.concatenate(pooled))
    return np.asarray(features)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_convolution_computes_what_the_loops_compute(channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 9, 9, channels)).astype(np.uint8)
    extractor = PatchFeatures(n_centroids=5, patch_size=3, pooling=2, n_patches=400, random_state=1).fit(images)
    features = extractor.transform(images, chunk_size=4)
    assert features.shape == (6, 5 * 4)
    assert np.allclose(features, brute_force_features(extractor, images), rtol=1e-3, atol=1e-3)


def test_grayscale_stored_as_rgb_is_one_channel_and_gives_the_same_features():
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, size=(8, 10, 10, 1)).astype(np.uint8)
    as_rgb = np.repeat(gray, 3, axis=-1)
    from_gray = PatchFeatures(n_centroids=4, patch_size=3, n_patches=500, random_state=3).fit(gray)
    from_rgb = PatchFeatures(n_centroids=4, patch_size=3, n_patches=500, random_state=3).fit(as_rgb)
    assert from_rgb.channels_ == 1
    assert np.allclose(from_gray.transform(gray), from_rgb.transform(as_rgb))


def test_features_are_seeded():
    images = np.random.default_rng(5).integers(0, 256, size=(10, 8, 8, 3)).astype(np.uint8)
    first = PatchFeatures(n_centroids=4, patch_size=3, n_patches=300, random_state=7).fit_transform(images)
    second = PatchFeatures(n_centroids=4, patch_size=3, n_patches=300, random_state=7).fit_transform(images)
    assert np.array_equal(first, second)


def test_bad_settings_and_images_are_one_clear_error():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(ToolkitError, match="n_centroids must be a positive integer"):
        PatchFeatures(n_centroids=0).fit(images)
    with pytest.raises(ToolkitError, match="smaller than the 9-pixel patches"):
        PatchFeatures(patch_size=9, n_centroids=2, n_patches=10).fit(images)
    with pytest.raises(ToolkitError, match="must be fitted"):
        PatchFeatures().transform(images)
    fitted = PatchFeatures(n_centroids=2, patch_size=3, n_patches=50).fit(
        np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8))
    with pytest.raises(ToolkitError, match="fitted on 8×8"):
        fitted.transform(np.zeros((2, 10, 10, 3), np.uint8))


def test_backbone_from_a_local_weights_file_gives_that_network_s_pooled_features(tmp_path):
    import keras

    from altoolkit.representations import BackboneFeatures

    network = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                  pooling="avg")
    weights_file = tmp_path / "small.weights.h5"
    network.save_weights(weights_file)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3)).astype(np.uint8)
    features = BackboneFeatures("MobileNetV3Small", weights=str(weights_file), input_size=32).fit().transform(
        images, chunk_size=2)
    expected = np.asarray(network(images.astype(np.float32), training=False))
    assert features.shape == (5, network.outputs[0].shape[-1])
    assert np.allclose(features, expected, atol=1e-4)


def test_backbone_from_a_keras_classifier_is_its_penultimate_embedding(tmp_path):
    from altoolkit.model import build_model, probabilities_and_embeddings
    from altoolkit.representations import BackboneFeatures

    model = build_model(3, input_shape=(32, 32, 3), seed=0)
    path = tmp_path / "classifier.keras"
    model.save(path)
    images = np.random.default_rng(1).integers(0, 256, size=(4, 32, 32, 3)).astype(np.uint8)
    features = BackboneFeatures(str(path)).fit().transform(images)
    _, embeddings = probabilities_and_embeddings(model, images)
    assert np.allclose(features, embeddings, atol=1e-4)


def test_an_applications_input_preprocessing_becomes_a_fixed_channel_map():
    """ResNet's caffe-style preprocessing: RGB → BGR, then the ImageNet means subtracted: a permutation and a bias."""
    from keras.applications import resnet

    from altoolkit.representations import _affine_channel_map

    kernel, bias = _affine_channel_map(resnet.preprocess_input)
    assert np.allclose(kernel, [[0, 0, 1], [0, 1, 0], [1, 0, 0]], atol=1e-5)
    assert np.allclose(bias, [-103.939, -116.779, -123.68], atol=1e-3)
    with pytest.raises(ToolkitError, match="not a per-pixel channel map"):
        _affine_channel_map(lambda x: np.sqrt(x))


def test_a_backbone_with_preprocessing_exports_a_model_that_computes_its_features(tmp_path):
    import keras

    from altoolkit.representations import BackboneFeatures

    network = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3),
                                             pooling="avg")
    weights_file = tmp_path / "v2.weights.h5"
    network.save_weights(weights_file)
    backbone = BackboneFeatures("MobileNetV2", weights=str(weights_file), input_size=32)
    images = np.random.default_rng(2).integers(0, 256, size=(4, 16, 16, 3)).astype(np.uint8)
    features = backbone.fit().transform(images)
    exported = backbone.as_model((16, 16, 3))
    assert np.allclose(np.asarray(exported(images.astype(np.float32))), features, atol=1e-4)
    exported.save(tmp_path / "features.keras")
    reloaded = keras.models.load_model(tmp_path / "features.keras", safe_mode=True)
    assert np.allclose(np.asarray(reloaded(images.astype(np.float32))), features, atol=1e-4)


def test_backbone_errors_say_what_to_pass(tmp_path):
    from altoolkit.representations import BackboneFeatures

    with pytest.raises(ToolkitError, match="neither a .keras file nor a keras.applications name"):
        BackboneFeatures("resnet9000").fit()
    with pytest.raises(ToolkitError, match="weights file .* not found"):
        BackboneFeatures("MobileNetV3Small", weights=str(tmp_path / "missing.h5")).fit()
    with pytest.raises(ToolkitError, match="backbone model .* not found"):
        BackboneFeatures(str(tmp_path / "gone.keras")).fit()


def test_label_free_features_are_computed_once_and_read_back_from_the_cache(tmp_path, monkeypatch):
    from altoolkit import label_free
    from altoolkit.label_free import RepresentationSettings, label_free_features

    images = np.random.default_rng(3).integers(0, 256, size=(30, 12, 12, 3)).astype(np.uint8)
    settings = RepresentationSettings(patch_centroids=4, patch_size=3)
    first = np.array(label_free_features("patches", images, seed=1, settings=settings, cache_dir=tmp_path))
    assert first.shape == (30, 16) and np.allclose(first.mean(axis=0), 0, atol=1e-5)
    calls = []
    monkeypatch.setattr(label_free.LabelFreeRepresentation, "fit", lambda *args: calls.append(args))
    again = label_free_features("patches", images, seed=1, settings=settings, cache_dir=tmp_path)
    assert calls == [] and np.array_equal(first, again)
    cache_file = next((tmp_path / "features").glob("patches_*.npy"))
    np.save(cache_file, np.full((30, 16), np.nan, dtype=np.float32))
    monkeypatch.undo()
    recomputed = label_free_features("patches", images, seed=1, settings=settings, cache_dir=tmp_path)
    assert np.allclose(recomputed, first)
    other_seed = label_free_features("patches", images, seed=2, settings=settings, cache_dir=tmp_path)
    assert len(list((tmp_path / "features").glob("patches_*.npy"))) == 2 and not np.allclose(other_seed, first)


def test_label_free_features_refuse_unknown_names_and_a_missing_backbone():
    from altoolkit.label_free import label_free_features

    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ToolkitError, match="unknown label-free representation 'model'"):
        label_free_features("model", images)
    with pytest.raises(ToolkitError, match="pass --backbone"):
        label_free_features("backbone", images)


def test_patch_features_as_a_keras_layer_survive_a_safe_mode_save_and_load(tmp_path):
    import keras

    from altoolkit.keras_layers import PatchFeatureLayer

    images = np.random.default_rng(4).integers(0, 256, size=(6, 10, 10, 3)).astype(np.uint8)
    extractor = PatchFeatures(n_centroids=3, patch_size=3, n_patches=200, random_state=0).fit(images)
    inputs = keras.Input((10, 10, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(extractor.as_layer()(inputs))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "patches.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    assert isinstance(loaded.layers[1], PatchFeatureLayer) and not loaded.layers[1].trainable_weights
    assert np.allclose(loaded(images.astype(np.float32)), model(images.astype(np.float32)), atol=1e-5)
    features = keras.Model(loaded.inputs, loaded.layers[1].output)(images.astype(np.float32))
    assert np.allclose(features, extractor.transform(images), atol=1e-3)


@pytest.mark.parametrize("name", ["pixels", "patches"])
def test_a_fitted_representation_as_keras_layers_computes_its_features(name, tmp_path):
    import keras

    from altoolkit.label_free import LabelFreeRepresentation, RepresentationSettings

    images = np.random.default_rng(6).integers(0, 256, size=(20, 12, 12, 3)).astype(np.uint8)
    settings = RepresentationSettings(pixel_components=6, patch_centroids=4, patch_size=3)
    representation = LabelFreeRepresentation(name, settings, seed=2).fit(images[:15])
    model = representation.feature_model((12, 12, 3))
    path = tmp_path / "features.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    expected = representation.transform(images)
    assert np.allclose(loaded.predict(images.astype(np.float32), verbose=0), expected, atol=1e-3)
