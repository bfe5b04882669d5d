"""Label-free representations by name, fitted once on a pool and applied to any images, cached on disk.

``pixels`` is a PCA of the raw pixels; ``patches`` the Coates–Ng features of
:class:`~altoolkit.representations.PatchFeatures`, each standardised with statistics of the fitting images;
``backbone`` a pretrained network's penultimate features (:class:`~altoolkit.representations.BackboneFeatures`).
Nothing here sees a label. A fitted representation also becomes Keras layers (:meth:`LabelFreeRepresentation.
feature_model`), so a classifier on it is an ordinary ``.keras`` model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.representations import BackboneFeatures, PatchFeatures
from altoolkit.sampling import fit_sample_size, fit_sampled_pca, project_rows, row_values, seeded_subsample
from altoolkit.validation import check_seed

LABEL_FREE_REPRESENTATIONS = ("pixels", "patches", "backbone")
"""Representations computed from the images alone (``model``, the classifier's own embeddings, needs a model)."""


@dataclass(frozen=True)
class RepresentationSettings:
    """Parameters of the label-free representations (part of their cache key)."""

    pixel_components: int = 50
    patch_centroids: int = 400
    patch_size: int = 6
    patch_pooling: int = 2
    backbone: str | None = None
    backbone_weights: str | None = "imagenet"
    backbone_input_size: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class LabelFreeRepresentation:
    """A representation fitted on images without labels: :meth:`fit` on a pool, then :meth:`transform` any images."""

    def __init__(self, name: str, settings: RepresentationSettings = RepresentationSettings(), seed: int = 0):
        if name not in LABEL_FREE_REPRESENTATIONS:
            raise ToolkitError(f"unknown label-free representation {str(name)[:40]!r}: choose one of "
                               f"{', '.join(LABEL_FREE_REPRESENTATIONS)}")
        if name == "backbone" and not settings.backbone:
            raise ToolkitError("the backbone representation needs a network: pass --backbone (a .keras file or a "
                               "keras.applications name such as MobileNetV3Small)")
        self.name, self.settings, self.seed = name, settings, check_seed(seed)

    def fit(self, images) -> "LabelFreeRepresentation":
        """Fit on ``images`` (PCA and k-means on a seeded sample of at most :data:`FIT_SAMPLE` of them, fewer for
        large images: :func:`~altoolkit.sampling.fit_sample_size`)."""
        if getattr(images, "ndim", None) != 4 or len(images) < 2:
            raise ToolkitError(f"a representation is fitted on at least 2 images (N×H×W×C), got shape "
                               f"{getattr(images, 'shape', None)}")
        if self.name == "pixels":
            self._pca = fit_sampled_pca(images, self.settings.pixel_components, self.seed, _pixel_scale(images))
        elif self.name == "patches":
            sample = np.asarray(images[seeded_subsample(len(images), fit_sample_size(row_values(images)),
                                                         self.seed)])
            settings = self.settings
            self._patches = PatchFeatures(n_centroids=settings.patch_centroids, patch_size=settings.patch_size,
                                          pooling=settings.patch_pooling, random_state=self.seed).fit(sample)
            raw = self._patches.transform(sample)
            self._mean = raw.mean(axis=0, dtype=np.float64)
            deviation = raw.std(axis=0, dtype=np.float64)
            self._scale = np.where(deviation > 0, deviation, 1.0)
        else:
            settings = self.settings
            self._backbone = BackboneFeatures(settings.backbone, weights=settings.backbone_weights,
                                              input_size=settings.backbone_input_size).fit()
        self.fitted_ = True
        return self

    def transform(self, images) -> np.ndarray:
        """Features of ``images`` (N × D, float32), computed in chunks."""
        if not getattr(self, "fitted_", False):
            raise ToolkitError(f"the {self.name} representation must be fitted on the pool before transform")
        if self.name == "backbone":
            return self._backbone.transform(images)
        if self.name == "patches":
            return ((self._patches.transform(images) - self._mean) / self._scale).astype(np.float32)
        return project_rows(self._pca, images, _pixel_scale(images))

    def feature_model(self, input_shape: tuple[int, int, int]):
        """A frozen Keras model mapping images (0–255) to exactly :meth:`transform`'s features."""
        import keras

        inputs = keras.Input(shape=input_shape, name="image")
        if self.name == "patches":
            features = self._patches.as_layer()(inputs)
            normalise = keras.layers.Normalization(mean=self._mean, variance=self._scale ** 2, name="standardise")
            features = normalise(features)
        elif self.name == "pixels":
            flat = keras.layers.Flatten(name="pixels")(keras.layers.Rescaling(1 / 255, name="unit_range")(inputs))
            projection = keras.layers.Dense(self._pca.n_components_, name="pixel_pca")
            features = projection(flat)
            projection.set_weights([self._pca.components_.T.astype(np.float32),
                                    (-self._pca.mean_ @ self._pca.components_.T).astype(np.float32)])
        else:
            features = self._backbone.as_model(input_shape)(inputs)
        model = keras.Model(inputs, features, name=f"{self.name}_features")
        model.trainable = False
        return model


def label_free_features(name: str, images, *, fit_images=None, seed: int = 0,
                        settings: RepresentationSettings = RepresentationSettings(), cache_dir=None) -> np.ndarray:
    """Rows of a label-free representation for ``images``, fitted on ``fit_images`` (default: the images
    themselves, e.g. a pool with its labeled set); read back from ``cache_dir`` (memory-mapped) when these
    images were seen with these settings before. Images kept in files (:class:`~altoolkit.file_images.FileImages`)
    with a cache folder take the streaming path of :class:`PoolRepresentation`."""
    from altoolkit.feature_cache import cached_rows, images_fingerprint
    from altoolkit.file_images import FileImages

    if isinstance(images, FileImages) and fit_images is None and cache_dir is not None:
        pool = images.pool(cache_dir)  # streamed: fitted on a seeded sample, rows written to the cache
        return PoolRepresentation(name, pool, settings=settings, seed=seed, cache_dir=cache_dir).pool_rows()
    representation = LabelFreeRepresentation(name, settings, seed)
    fit_images = images if fit_images is None else fit_images
    parts = {"representation": name, "images": images_fingerprint(images),
             "fitted_on": images_fingerprint(fit_images), "seed": seed, "settings": settings.as_dict(),
             "versions": _library_versions()}
    return cached_rows(cache_dir, name, parts, len(images),
                       lambda: representation.fit(fit_images).transform(images))


def _pixel_scale(images) -> float:
    """Integer pixels (0–255) are scaled to [0, 1]; float ones are taken as they are."""
    return 1 / 255 if np.issubdtype(np.asarray(images[:1]).dtype, np.integer) else 1.0


def _library_versions() -> dict[str, str]:
    import sklearn
    import tensorflow as tf

    return {"numpy": np.__version__, "scikit-learn": sklearn.__version__, "tensorflow": tf.__version__}


class PoolRepresentation:
    """A label-free representation of a streamed file pool (:class:`~altoolkit.streaming.FilePool`).

    Fitted on a seeded sample of the pool's own images (at most :data:`FIT_SAMPLE`, decoded for the fit only),
    its rows for the whole pool are streamed into the cache once and read back memory-mapped by every later
    round, however the labels change; other images (the labeled set) are transformed by the same fit.
    """

    def __init__(self, name: str, pool, *, settings: RepresentationSettings = RepresentationSettings(),
                 seed: int = 0, cache_dir, limit_bytes: int | None = None, engine=None):
        from altoolkit.feature_cache import DEFAULT_CACHE_LIMIT_BYTES

        if engine is not None and name == "backbone":
            raise ToolkitError("the Ray engine computes the model's outputs and the pixels and patches "
                               "representations: use --engine local for a backbone")
        self.engine = engine
        self.representation = LabelFreeRepresentation(name, settings, seed)
        self.pool, self.cache_dir = pool, cache_dir
        self.limit_bytes = DEFAULT_CACHE_LIMIT_BYTES if limit_bytes is None else limit_bytes
        self._rows: np.ndarray | None = None
        self._parts = {"representation": name, "fitted_on": "pool sample", "seed": seed,
                       "settings": settings.as_dict(), "versions": _library_versions()}

    def pool_rows(self) -> np.ndarray:
        """The representation of every pool image, in the pool's order (rows × D float32, memory-mapped); computed
        or read from the cache (and checked) once per object, however often it is asked for."""
        from altoolkit.feature_cache import cached_pool_arrays

        if self._rows is None:
            (self._rows,) = cached_pool_arrays(
                self.cache_dir, (self.representation.name,), self._parts, self.pool,
                lambda batch: [self._fitted().transform(batch)], limit_bytes=self.limit_bytes, engine=self.engine,
                ray_task=lambda: ("representation", self._fitted()))
        return self._rows

    def rows_for(self, images) -> np.ndarray:
        """The representation of other ``images`` (N×H×W×C), by the pool's fit; cached by their content."""
        from altoolkit.feature_cache import cached_rows, images_fingerprint
        from altoolkit.file_images import FileImages

        if len(images) == 0:
            return np.empty((0, self.pool_rows().shape[1]), np.float32)
        if isinstance(images, FileImages):  # files (a labeled folder): hashed once, their hashes kept in the cache
            images.file_list.files(self.cache_dir)
        parts = {**self._parts, "pool": self.pool.digest, "images": images_fingerprint(images)}
        return cached_rows(self.cache_dir, self.representation.name, parts, len(images),
                           lambda: self._fitted().transform(images))

    def _fitted(self) -> LabelFreeRepresentation:
        if not getattr(self.representation, "fitted_", False):
            count = fit_sample_size(3 * self.pool.size ** 2)
            sample = self.pool.images(seeded_subsample(len(self.pool), count, self.representation.seed))
            self.representation.fit(sample)
        return self.representation
