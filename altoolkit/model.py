"""The base classifier (MobileNetV3Small), safe loading, and the two-output view used for one forward pass.

Every analysis needs the same two things per image: class probabilities and the embedding the classifier
computes just before its last Dense layer. :func:`probabilities_and_embeddings` gets both in one batched pass.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from altoolkit.errors import ToolkitError

DEFAULT_BN_MOMENTUM = 0.9
INFERENCE_BATCH_SIZE = 512
"""Images per inference batch: measured on two cores, 512 ran 12 % faster than 256 and 1,024 no faster."""
IMAGENET_BACKBONE_SIZE = 224
CLASSIFIER_NAME = "mobilenetv3small_classifier"
"""The name :func:`build_model` gives its models: how a loaded model is recognised as the toolkit's own."""
IMAGENET_WEIGHTS_FILE = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
"""The file ``keras.applications.MobileNetV3Small(include_top=False, weights="imagenet")`` downloads and looks for
first in ``$KERAS_HOME/models/`` (``~/.keras/models/`` by default): copy it there on an offline machine."""


def build_model(num_classes: int, *, input_shape: tuple[int, int, int] = (32, 32, 3), weights: str | None = None,
                backbone_size: int | None = None, dropout: float = 0.3, bn_momentum: float = DEFAULT_BN_MOMENTUM,
                flip_augmentation: bool = False, seed: int | None = None):
    """Input → [RandomFlip] → [Resizing] → MobileNetV3Small(no top) → GlobalAveragePooling → Dropout → Dense(softmax).

    ``bn_momentum`` replaces MobileNetV3's 0.999: measured here, with 0.999 a model trained from scratch on a
    few hundred images never leaves chance accuracy because the moving statistics do not converge.
    ``weights="imagenet"`` needs the network (not available offline) and a 224-pixel backbone by default.
    """
    import keras
    from keras import layers

    if num_classes < 2:
        raise ToolkitError(f"a classifier needs at least 2 classes, got {num_classes}")
    if weights not in (None, "imagenet"):
        raise ToolkitError(f"weights must be None (from scratch) or 'imagenet', got {weights!r}")
    if backbone_size is None:
        backbone_size = IMAGENET_BACKBONE_SIZE if weights == "imagenet" else input_shape[0]
    if backbone_size < 32:
        raise ToolkitError(f"MobileNetV3Small needs images of at least 32×32, got {backbone_size}: use --image-size 32")
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if flip_augmentation:
        x = layers.RandomFlip("horizontal", seed=seed, name="random_flip")(x)
    if backbone_size != input_shape[0] or backbone_size != input_shape[1]:
        x = layers.Resizing(backbone_size, backbone_size, name="resize")(x)
    try:
        backbone = keras.applications.MobileNetV3Small(input_shape=(backbone_size, backbone_size, 3),
                                                       include_top=False, weights=weights,
                                                       include_preprocessing=True)
    except Exception as error:  # the weight download raises a bare Exception when offline
        if weights == "imagenet":
            raise ToolkitError("the ImageNet weights could not be downloaded "
                               f"({type(error).__name__}): offline, copy {IMAGENET_WEIGHTS_FILE} into "
                               f"{keras_weights_folder()}/ (set $KERAS_HOME to use another folder than ~/.keras), "
                               "or train from scratch with --weights none") from None
        raise
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = bn_momentum
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="embedding")(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=CLASSIFIER_NAME)


def keras_weights_folder() -> Path:
    """Where Keras looks for (and downloads) application weights: ``$KERAS_HOME/models``, else ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def is_toolkit_classifier(model) -> bool:
    """Whether ``model`` was made by :func:`build_model` (else it is a user's own architecture)."""
    return model.name == CLASSIFIER_NAME


def fresh_copy(model):
    """A new model with ``model``'s architecture and freshly initialised weights (seeded by the global seed).

    Retraining a user's own base model architecture this way compares like with like.
    """
    import keras

    try:
        return keras.models.clone_model(model)
    except Exception as error:  # clone_model raises many types for layers it cannot rebuild
        detail = (str(error).splitlines() or [""])[0][:120]
        raise ToolkitError(f"cannot rebuild the architecture of {model.name} to retrain it ({type(error).__name__}: "
                           f"{detail}): save the base model with standard Keras layers") from None


def load_classifier(path: str | os.PathLike):
    """Load a ``.keras`` classifier with ``safe_mode=True``; check it outputs one probability vector per image."""
    import keras

    file = Path(path)
    if file.suffix != ".keras":
        raise ToolkitError(f"{file} is not a .keras model file: save models with model.save('name.keras')")
    if not os.path.isfile(file):  # False, not OSError, for a name too long for the file system
        raise ToolkitError(f"model file {file} not found: train one first with `python train.py` or pass --model")
    if not zipfile.is_zipfile(file):
        raise ToolkitError(f"{file} is not a valid .keras file (not a zip archive): retrain or re-save it")
    import altoolkit.keras_layers  # noqa: F401  (registers the toolkit's own layers for safe_mode loading)

    try:
        model = keras.models.load_model(file, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for corrupt or unsafe files
        raise ToolkitError(f"cannot load {file}: {type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
    check_classifier(model, str(file))
    return model


def check_classifier(model, name: str = "the model") -> None:
    """The model must map one image batch to one (batch, classes≥2) softmax output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ToolkitError(f"{name} must have one image input and one probability output, "
                           f"has {len(model.inputs)} inputs and {len(model.outputs)} outputs")
    output_shape = tuple(model.outputs[0].shape)
    if len(output_shape) != 2 or (output_shape[1] or 0) < 2:
        raise ToolkitError(f"{name} must output a probability vector per image (shape (batch, classes)), "
                           f"its output has shape {output_shape}")
    if _output_activation(model) != "softmax":
        raise ToolkitError(f"{name} does not end in a softmax: its outputs are not class probabilities")


def check_input_shape(model, image_shape: tuple[int, ...], name: str = "the model") -> None:
    """Fail with one line when the data's image shape does not fit the model's input."""
    expected = tuple(model.inputs[0].shape[1:])
    if len(expected) != len(image_shape) or any(e is not None and e != a for e, a in zip(expected, image_shape)):
        raise ToolkitError(f"{name} expects images of shape {expected} but the data has {tuple(image_shape)}: "
                           "load the data with the image size the model was trained on (--image-size)")


def _output_activation(model) -> str | None:
    layer = _producing_layer(model.outputs[0])
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name is None and type(layer).__name__ == "Softmax":
        return "softmax"
    return name


def _producing_layer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history is not None else None


def embedding_tensor(model):
    """The tensor feeding the classifier's final Dense layer (the penultimate representation).

    Works for functional and Sequential models, and skips a trailing Activation/Softmax layer; a nested
    backbone (MobileNet inside the classifier) is fine because only the top of the graph is walked.
    """
    return _final_dense(model).input


def classifier_head(model):
    """The final Dense layer's kernel and bias and the rate of the Dropout feeding it (0 without one), for BALD."""
    import keras

    from altoolkit.strategies import ClassifierHead

    dense = _final_dense(model)
    feeding = _producing_layer(dense.input)
    rate = float(feeding.rate) if isinstance(feeding, keras.layers.Dropout) else 0.0
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    return ClassifierHead(kernel=kernel, bias=bias, dropout_rate=rate)


def _final_dense(model):
    import keras

    layer = _producing_layer(model.outputs[0])
    while layer is not None and not isinstance(layer, keras.layers.Dense):
        inbound = layer.input
        if isinstance(inbound, (list, tuple)):
            raise ToolkitError("cannot find the classifier's final Dense layer: the output mixes several tensors")
        layer = _producing_layer(inbound)
    if layer is None:
        raise ToolkitError("cannot find a Dense layer producing the model's output: embeddings are undefined")
    return layer


def probabilities_and_embeddings_model(model):
    """One Keras model with two outputs, [probabilities, penultimate embeddings], sharing every weight."""
    import keras

    embeddings = embedding_tensor(model)
    if len(embeddings.shape) > 2:
        embeddings = keras.layers.Flatten(name="flatten_embedding")(embeddings)
    return keras.Model(model.inputs, [model.outputs[0], embeddings], name="probabilities_and_embeddings")


def probabilities_and_embeddings(model, images: np.ndarray, batch_size: int = INFERENCE_BATCH_SIZE,
                                  progress: bool | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` once over ``images`` in batches; return (probabilities N×K, embeddings N×D), float32.

    ``model`` may be the classifier or the two-output view from :func:`probabilities_and_embeddings_model`.
    ``progress``: a bar with rate and ETA on stderr, shown when True or a description (printed above it), never
    when False, and by default (None) when stderr is a terminal and the pass takes more than one batch.
    """
    from altoolkit.progress import forward_pass_bar

    two_outputs = model if len(model.outputs) == 2 else probabilities_and_embeddings_model(model)
    check_input_shape(two_outputs, images.shape[1:])
    bar = forward_pass_bar(len(images), -(-len(images) // batch_size), progress)
    probabilities, embeddings = run_inference(two_outputs, images, batch_size,
                                              on_batch=None if bar is None else bar.update)
    return probabilities, embeddings


def predict_probabilities(model, images: np.ndarray, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """Class probabilities (N×K, float32) of a one-output classifier, batched like the analyses' pass."""
    check_input_shape(model, images.shape[1:])
    return run_inference(model, images, batch_size)[0]


def run_inference(model, images: np.ndarray, batch_size: int = INFERENCE_BATCH_SIZE,
                  on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Every output of ``model`` over ``images``, as float32 arrays preallocated to N rows.

    Batches go through one function traced once per model (unlike ``model.predict``, which retraces for a
    new batch shape); the last batch is padded to full size; memory is N × (output widths), nothing more.
    ``on_batch(done)`` is called after each batch with the number of images done so far (a progress bar's hook).
    """
    widths = [output.shape[1:] for output in model.outputs]
    results = [np.empty((len(images), *width), np.float32) for width in widths]
    if len(images) == 0:
        return results
    dtype = np.uint8 if images.dtype == np.uint8 else np.float32
    infer = inference_function(model, images.shape[1:], dtype)
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype=dtype)
        count = len(batch)
        if count < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - count, *batch.shape[1:]), dtype)])
        for result, output in zip(results, infer(batch)):
            result[start:start + count] = output.numpy()[:count]
        if on_batch is not None:
            on_batch(start + count)
    return results


def inference_function(model, image_shape: tuple[int, ...], dtype):
    """An ``images → [outputs]`` function traced once per model and input dtype (any batch size).

    uint8 images are cast to float32 inside the graph: a quarter of the host-to-graph copying.
    """
    functions = getattr(model, "_altoolkit_inference", None)
    if functions is None:
        functions = {}
        model._altoolkit_inference = functions
    key = (tuple(image_shape), np.dtype(dtype).name)
    if key not in functions:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.as_dtype(dtype))])
        def infer(images):
            outputs = model(tf.cast(images, tf.float32), training=False)
            return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

        functions[key] = infer
    return functions[key]
