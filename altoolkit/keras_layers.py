"""Keras layers of the toolkit's own, registered so that ``.keras`` files holding them load with ``safe_mode=True``.

:class:`PatchFeatureLayer` is a fitted :class:`~altoolkit.representations.PatchFeatures` as a frozen layer, so a
linear classifier on patch features is an ordinary Keras model (image in, probabilities out) that every part of
the toolkit can load, analyse and serve. Importing this module imports Keras; the rest of the toolkit imports it
only when it builds or loads such a model.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="altoolkit")
class PatchFeatureLayer(keras.layers.Layer):
    """Images (0–255, channels-last) → Coates–Ng pooled triangle activations, with fixed (non-trainable) weights.

    Normalising each patch, whitening it and measuring its distance to every centroid is a convolution with the
    whitening filters followed by per-position arithmetic and one matrix product with the centroids.
    """

    def __init__(self, patch_size: int, pooling: int, n_centroids: int, channels: int, contrast_offset: float,
                 **kwargs):
        super().__init__(trainable=False, **{key: value for key, value in kwargs.items() if key != "trainable"})
        self.patch_size, self.pooling, self.n_centroids, self.channels = patch_size, pooling, n_centroids, channels
        self.contrast_offset = float(contrast_offset)

    def build(self, input_shape) -> None:
        dimension = self.patch_size * self.patch_size * self.channels

        def constant(name: str, shape: tuple) -> keras.Variable:
            return self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False)

        self.filters = constant("filters", (self.patch_size, self.patch_size, self.channels, dimension))
        self.filter_sums = constant("filter_sums", (dimension,))
        self.whitened_mean = constant("whitened_mean", (dimension,))
        self.centroids = constant("centroids", (dimension, self.n_centroids))
        self.centroid_norms = constant("centroid_norms", (self.n_centroids,))

    def set_fitted(self, whitening: np.ndarray, patch_mean: np.ndarray, centroids: np.ndarray) -> None:
        """Load a fitted PatchFeatures' whitening matrix, patch mean and centroids into the layer's weights."""
        size, channels = self.patch_size, self.channels
        whitening = np.asarray(whitening, dtype=np.float32)
        centroids = np.asarray(centroids, dtype=np.float32)
        self.filters.assign(whitening.reshape(-1, size, size, channels).transpose(1, 2, 3, 0))
        self.filter_sums.assign(whitening.sum(axis=1))
        self.whitened_mean.assign(whitening @ np.asarray(patch_mean, dtype=np.float32))
        self.centroids.assign(centroids.T)
        self.centroid_norms.assign(np.sum(centroids ** 2, axis=1))

    def call(self, images):
        x = tf.cast(images, tf.float32)[..., :self.channels]
        dimension = float(self.patch_size * self.patch_size * self.channels)
        ones = tf.ones((self.patch_size, self.patch_size, self.channels, 1), tf.float32)

        def convolve(values, kernel):
            return tf.nn.conv2d(values, kernel, strides=1, padding="VALID")

        mean = convolve(x, ones) / dimension
        variance = tf.maximum(convolve(x * x, ones) / dimension - mean * mean, 0.0)
        deviation = tf.sqrt(variance + self.contrast_offset)
        whitened = (convolve(x, self.filters) - mean * self.filter_sums) / deviation - self.whitened_mean
        squared = (tf.reduce_sum(whitened * whitened, axis=-1, keepdims=True)
                   - 2.0 * tf.tensordot(whitened, self.centroids, axes=1) + self.centroid_norms)
        distances = tf.sqrt(tf.maximum(squared, 0.0))
        activations = tf.nn.relu(tf.reduce_mean(distances, axis=-1, keepdims=True) - distances)
        rows, columns = tf.shape(activations)[1], tf.shape(activations)[2]
        grid = self.pooling
        pooled = [tf.reduce_sum(activations[:, r * rows // grid:(r + 1) * rows // grid,
                                            c * columns // grid:(c + 1) * columns // grid], axis=[1, 2])
                  for r in range(grid) for c in range(grid)]
        return tf.concat(pooled, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_centroids * self.pooling * self.pooling)

    def get_config(self) -> dict:
        return {**super().get_config(), "patch_size": self.patch_size, "pooling": self.pooling,
                "n_centroids": self.n_centroids, "channels": self.channels, "contrast_offset": self.contrast_offset}
