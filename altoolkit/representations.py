"""Label-free representations of images: features computed without any label, fitted once per pool.

:class:`PatchFeatures` is the single-layer network of Coates, Lee & Ng (AISTATS 2011): random patches of the pool
are brightness/contrast normalised and ZCA-whitened, k-means on them gives a dictionary of centroids, and an
image is described by how close each of its patches is to each centroid (the "triangle" activation), summed over
a coarse grid of image regions. Measured here, a linear classifier on these features reaches with 100–500
labels what MobileNetV3Small trained from scratch reaches with 1,500 (README, label-efficiency section).

Extracting every patch, normalising, whitening and measuring distances to the centroids is one convolution
followed by per-position arithmetic and a matrix product: :meth:`PatchFeatures.transform` runs it that way in
TensorFlow, a chunk of images at a time, so memory depends on the chunk, not on the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altoolkit.errors import ToolkitError
from altoolkit.validation import check_positive_float, check_positive_int, check_seed

CONTRAST_OFFSET = 10.0
"""Added to each patch's pixel variance before dividing by its square root (pixels on a 0–255 scale): keeps flat
patches from being amplified into noise (Coates & Ng's value)."""
PATCH_CHUNK = 256
"""Images per TensorFlow call in :meth:`PatchFeatures.transform`: about 300 MB of activations with 400 centroids."""
FIT_IMAGE_SAMPLE = 10_000
"""Patches for the dictionary are drawn from at most this many seeded images of the pool."""


@dataclass
class PatchFeatures:
    """Coates–Ng single-layer features: normalised, whitened patches → k-means → triangle activation → sum pooling.

    Args:
        n_centroids: dictionary size k; the image gets ``k × pooling²`` features.
        patch_size: side of the square patches (stride 1).
        pooling: the image's patch grid is split into ``pooling × pooling`` regions, each summed.
        n_patches: random patches used to fit the whitening and the dictionary.
        whitening_epsilon: added to the patch covariance's eigenvalues before inverting them (ZCA).
        random_state: seeds the image sample, the patch positions and k-means.

    Images are uint8 or float N×H×W×C on a 0–255 scale; colour images whose three channels are equal (grayscale
    stored as RGB) are treated as one channel, a third of the work for the same features.
    """

    n_centroids: int = 400
    patch_size: int = 6
    pooling: int = 2
    n_patches: int = 100_000
    whitening_epsilon: float = 0.1
    random_state: int = 0

    def fit(self, images) -> "PatchFeatures":
        """Learn the whitening and the centroids from random patches of ``images``; returns ``self``."""
        from sklearn.cluster import MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        self._check_parameters()
        images = self._check_images(images)
        rng = np.random.default_rng(self.random_state)
        rows = np.sort(rng.choice(len(images), size=min(len(images), FIT_IMAGE_SAMPLE), replace=False))
        sample = np.asarray(images[rows])
        self.channels_ = 1 if _is_grayscale(sample) else sample.shape[-1]
        self.image_shape_ = tuple(images.shape[1:3])
        patches = normalised_patches(random_patches(self._channels_of(sample), self.patch_size, self.n_patches, rng))
        self.patch_mean_ = patches.mean(axis=0)
        covariance = np.cov(patches - self.patch_mean_, rowvar=False)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        scale = 1.0 / np.sqrt(np.maximum(eigenvalues, 0.0) + self.whitening_epsilon)
        self.whitening_ = (eigenvectors * scale) @ eigenvectors.T
        whitened = (patches - self.patch_mean_) @ self.whitening_.T
        with threadpool_limits(limits=1, user_api="blas"):
            kmeans = MiniBatchKMeans(n_clusters=self.n_centroids, batch_size=4096, n_init=3,
                                     random_state=self.random_state).fit(whitened)
        self.centroids_ = kmeans.cluster_centers_.astype(np.float32)
        return self

    @property
    def n_features(self) -> int:
        return self.n_centroids * self.pooling * self.pooling

    def transform(self, images, chunk_size: int = PATCH_CHUNK) -> np.ndarray:
        """Features of ``images`` (N × ``n_features``, float32), computed ``chunk_size`` images at a time."""
        if not hasattr(self, "centroids_"):
            raise ToolkitError("PatchFeatures must be fitted before transform: call fit(images) on the pool first")
        images = self._check_images(images)
        if tuple(images.shape[1:3]) != self.image_shape_:
            raise ToolkitError(f"these images are {images.shape[1]}×{images.shape[2]} but the features were fitted "
                               f"on {self.image_shape_[0]}×{self.image_shape_[1]}: use one image size")
        features = np.empty((len(images), self.n_features), dtype=np.float32)
        compute = self._graph()
        for start in range(0, len(images), chunk_size):
            chunk = self._channels_of(np.asarray(images[start:start + chunk_size]))
            features[start:start + len(chunk)] = compute(chunk.astype(np.float32)).numpy()
        return features

    def fit_transform(self, images) -> np.ndarray:
        return self.fit(images).transform(images)

    def as_layer(self):
        """This fitted extractor as a frozen Keras layer (:class:`altoolkit.keras_layers.PatchFeatureLayer`)."""
        from altoolkit.keras_layers import PatchFeatureLayer

        if not hasattr(self, "centroids_"):
            raise ToolkitError("PatchFeatures must be fitted before it becomes a layer: call fit(images) first")
        layer = PatchFeatureLayer(self.patch_size, self.pooling, self.n_centroids, self.channels_, CONTRAST_OFFSET)
        layer.build((None, *self.image_shape_, self.channels_))
        layer.set_fitted(self.whitening_, self.patch_mean_, self.centroids_)
        return layer

    def __getstate__(self) -> dict:
        """Picklable (e.g. shipped to Ray workers) without its traced TensorFlow function, which is rebuilt."""
        return {key: value for key, value in self.__dict__.items() if key != "_compiled"}

    def _graph(self):
        """The layer's computation as a TensorFlow function, traced once per fitted object."""
        if getattr(self, "_compiled", None) is None:
            import tensorflow as tf

            layer = self.as_layer()
            self._compiled = tf.function(layer.call, input_signature=[
                tf.TensorSpec([None, *self.image_shape_, self.channels_], tf.float32)])
        return self._compiled

    def _channels_of(self, images: np.ndarray) -> np.ndarray:
        return images[..., :1] if self.channels_ == 1 else images

    def _check_parameters(self) -> None:
        check_positive_int(self.n_centroids, "n_centroids")
        check_positive_int(self.patch_size, "patch_size")
        check_positive_int(self.pooling, "pooling")
        check_positive_int(self.n_patches, "n_patches")
        check_positive_float(self.whitening_epsilon, "whitening_epsilon")
        check_seed(self.random_state, "random_state")
        if self.n_patches < self.n_centroids:
            raise ToolkitError(f"n_patches ({self.n_patches}) must be at least n_centroids ({self.n_centroids})")

    def _check_images(self, images):
        shape = getattr(images, "shape", None)
        if shape is None or len(shape) != 4 or len(images) == 0:
            raise ToolkitError(f"patch features need a non-empty N×H×W×C image array, got shape {shape}")
        if min(shape[1:3]) < self.patch_size:
            raise ToolkitError(f"images of {shape[1]}×{shape[2]} are smaller than the {self.patch_size}-pixel "
                               "patches: use a smaller patch_size")
        if min(shape[1:3]) - self.patch_size + 1 < self.pooling:
            raise ToolkitError(f"{shape[1]}×{shape[2]} images give fewer patch positions than the "
                               f"{self.pooling}×{self.pooling} pooling grid: lower pooling")
        return images


def random_patches(images: np.ndarray, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` patches (count × size·size·C, float64) at random images and positions, drawn from ``rng``."""
    n, height, width, channels = images.shape
    which = rng.integers(0, n, size=count)
    rows = rng.integers(0, height - size + 1, size=count)
    columns = rng.integers(0, width - size + 1, size=count)
    offsets = np.arange(size)
    patches = images[which[:, None, None], rows[:, None, None] + offsets[None, :, None],
                     columns[:, None, None] + offsets[None, None, :]]
    return patches.reshape(count, size * size * channels).astype(np.float64)


def normalised_patches(patches: np.ndarray) -> np.ndarray:
    """Each patch (row) minus its mean, divided by ``sqrt(variance + CONTRAST_OFFSET)``: brightness and contrast
    removed, as the transform does per position."""
    mean = patches.mean(axis=1, keepdims=True)
    variance = patches.var(axis=1, keepdims=True)
    return (patches - mean) / np.sqrt(variance + CONTRAST_OFFSET)


def triangle_activation(distances: np.ndarray) -> np.ndarray:
    """``max(0, mean(z) − z_k)`` per row of patch-to-centroid distances ``z``: about half the centroids fire."""
    distances = np.asarray(distances, dtype=np.float64)
    return np.maximum(0.0, distances.mean(axis=-1, keepdims=True) - distances)


def _is_grayscale(images: np.ndarray) -> bool:
    return images.shape[-1] == 1 or (images.shape[-1] == 3 and bool(
        np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])))


BACKBONE_INPUT_SIZE = 224
"""Side the images are resized to for a ``keras.applications`` network (the size its ImageNet weights expect)."""
BACKBONE_BATCH = 64


@dataclass
class BackboneFeatures:
    """Penultimate features of a pretrained network the user provides; the network is frozen (nothing trains).

    Args:
        source: a ``.keras`` file (a classifier gives the input of its last Dense layer; any other model its
            output, global-average-pooled when it is a feature map), or a ``keras.applications`` name such as
            ``"MobileNetV3Small"`` or ``"ResNet50"`` (built without its top, average-pooled).
        weights: for an application name, ``"imagenet"`` (Keras downloads them: needs the network) or the path of
            a local weights file (the air-gapped way: ``.weights.h5`` or the ``.h5`` file Keras would download).
        input_size: images are resized to this square side; default: the ``.keras`` model's input size, or
            :data:`BACKBONE_INPUT_SIZE` for an application.

    Images are uint8 or float N×H×W×3 on a 0–255 scale; an application's own ``preprocess_input`` is applied.
    """

    source: str
    weights: str | None = "imagenet"
    input_size: int | None = None

    def fit(self, images=None) -> "BackboneFeatures":
        """Load or build the network (``images`` are not used: the network is already trained)."""
        import keras

        if str(self.source).endswith(".keras"):
            self._network, self._preprocess = _keras_file_features(self.source), None
        elif callable(getattr(keras.applications, str(self.source), None)) and str(self.source)[:1].isupper():
            self._network, self._preprocess = self._application()
        else:
            raise ToolkitError(f"backbone {str(self.source)[:80]!r} is neither a .keras file nor a keras.applications "
                               "name (e.g. MobileNetV3Small, ResNet50, EfficientNetB0)")
        side = self.input_size or self._network.inputs[0].shape[1] or BACKBONE_INPUT_SIZE
        self.input_size_ = check_positive_int(side, "input_size")
        self.n_features = int(self._network.outputs[0].shape[-1])
        return self

    def transform(self, images, chunk_size: int = BACKBONE_BATCH) -> np.ndarray:
        """Features of ``images`` (N × D, float32), ``chunk_size`` images per pass."""
        import tensorflow as tf

        if not hasattr(self, "_network"):
            raise ToolkitError("BackboneFeatures must be fitted (the network loaded) before transform: call fit()")
        if getattr(images, "ndim", None) != 4 or images.shape[-1] != 3:
            raise ToolkitError(f"backbone features need N×H×W×3 images, got shape {getattr(images, 'shape', None)}")
        features = np.empty((len(images), self.n_features), dtype=np.float32)
        for start in range(0, len(images), chunk_size):
            batch = tf.image.resize(tf.cast(np.asarray(images[start:start + chunk_size]), tf.float32),
                                    (self.input_size_, self.input_size_))
            if self._preprocess is not None:
                batch = self._preprocess(batch)
            features[start:start + len(batch)] = np.asarray(self._network(batch, training=False))
        return features

    def fit_transform(self, images) -> np.ndarray:
        return self.fit(images).transform(images)

    def as_model(self, input_shape: tuple[int, int, int]):
        """A frozen Keras model computing exactly :meth:`transform` from images of ``input_shape`` (0–255): the
        resize, the application's input preprocessing as a fixed 1×1 convolution (every Keras application's
        ``preprocess_input`` is a per-pixel affine map of the channels; anything else is refused), the network."""
        import keras

        if not hasattr(self, "_network"):
            raise ToolkitError("BackboneFeatures must be fitted (the network loaded) before as_model: call fit()")
        inputs = keras.Input(shape=input_shape, name="image")
        x = keras.layers.Resizing(self.input_size_, self.input_size_, name="backbone_resize")(inputs)
        if self._preprocess is not None:
            kernel, bias = _affine_channel_map(self._preprocess)
            mix = keras.layers.Conv2D(3, 1, name="backbone_preprocess")
            x = mix(x)
            mix.set_weights([kernel.reshape(1, 1, 3, 3), bias])
        model = keras.Model(inputs, self._network(x, training=False), name="backbone_features")
        model.trainable = False
        return model

    def _application(self):
        import importlib

        import keras

        build = getattr(keras.applications, self.source)
        side = self.input_size or BACKBONE_INPUT_SIZE
        weights = self.weights
        if weights not in (None, "imagenet") and not Path(weights).is_file():
            raise ToolkitError(f"backbone weights file {weights} not found: pass the path of the weights file")
        try:
            network = build(include_top=False, weights=weights, input_shape=(side, side, 3), pooling="avg")
        except Exception as error:  # Keras raises bare Exception on a failed download, ValueError on a bad file
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            if weights == "imagenet":
                raise ToolkitError(f"the ImageNet weights of {self.source} could not be downloaded ({reason}): "
                                   "offline, download the file on another machine and pass its path as the "
                                   "backbone weights, or put it in ~/.keras/models/ under the name in this message"
                                   ) from None
            raise ToolkitError(f"cannot load the weights {weights} into {self.source}: {reason}") from None
        return network, importlib.import_module(build.__module__).preprocess_input


def _affine_channel_map(preprocess) -> tuple[np.ndarray, np.ndarray]:
    """(3×3 kernel, bias) with ``preprocess(x) == x @ kernel + bias`` per pixel, measured on probe pixels; an
    input preprocessing that is not such a map is refused."""
    probes = np.concatenate([np.zeros((1, 3)), 255 * np.eye(3), np.random.default_rng(0).uniform(0, 255, (8, 3))])
    out = np.asarray(preprocess(probes.reshape(1, len(probes), 1, 3).astype(np.float32).copy()),
                     dtype=np.float64).reshape(len(probes), 3)
    bias = out[0]
    kernel = (out[1:4] - bias) / 255
    if not np.allclose(probes @ kernel + bias, out, atol=1e-3):
        raise ToolkitError("this backbone's input preprocessing is not a per-pixel channel map, so its classifier "
                           "cannot be saved: use a .keras backbone that includes its own preprocessing")
    return kernel.astype(np.float32), bias.astype(np.float32)


def _keras_file_features(path: str):
    """The feature-producing view of a saved model: a classifier's penultimate layer, else its pooled output."""
    import keras

    from altoolkit.model import embedding_tensor

    file = Path(path)
    if not file.is_file():
        raise ToolkitError(f"backbone model {file} not found: pass the path of a .keras file")
    try:
        model = keras.models.load_model(file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for corrupt or unsafe files
        raise ToolkitError(f"cannot load the backbone {file}: {type(error).__name__}: "
                           f"{str(error).splitlines()[0][:160] if str(error) else ''}") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ToolkitError(f"backbone {file} must have one image input and one output")
    try:
        output = embedding_tensor(model)
    except ToolkitError:
        output = model.outputs[0]
    if len(output.shape) == 4:
        output = keras.layers.GlobalAveragePooling2D()(output)
    elif len(output.shape) != 2:
        raise ToolkitError(f"backbone {file} gives features of shape {tuple(output.shape)}: expected a vector or a "
                           "feature map per image")
    return keras.Model(model.inputs, output)
