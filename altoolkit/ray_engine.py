"""The pool's forward pass and label-free representation on Ray Data, across the cores of one machine or a cluster.

Only the per-image work moves: a file-list dataset (one row per pool file: its position and path) goes through
``map_batches`` with a callable class, so each actor loads the Keras model (or receives the fitted
representation) once and then decodes and scores batch after batch; rows come back in the pool's order and are
written to the same ``.npy`` files the local path writes, so selection reads them exactly as before. Each actor
asks Ray for ``cpus_per_actor`` cores and runs TensorFlow with that many threads, so actors do not fight over
cores. On a cluster the pool files and the model file must be readable at the same paths on every node (a
shared file system), and this package installed there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from altoolkit.errors import ToolkitError

RAY_BATCH = 256
"""Images per Ray Data batch."""


def check_ray_available() -> None:
    """A clear error when Ray Data is not installed (it is the optional ``[ray]`` extra)."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ToolkitError("the Ray engine needs Ray Data: pip install 'al-toolkit[ray]' (or pip install "
                           "'ray[data]'), or use --engine local") from None


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` ("auto": the one ``ray start`` runs here), or start a local one."""
    check_ray_available()
    import ray

    if ray.is_initialized():
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)  # its per-dataset notes would bury the toolkit's lines
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ToolkitError(f"cannot start or reach {where} ({str(error).splitlines()[0][:160]}): check "
                           "--ray-address (start one with `ray start --head`), or use --engine local") from None


class PoolScorer:
    """What each Ray actor runs: decode a batch of files, then the model's outputs or the representation's rows.

    ``kind`` "model": ``payload`` is the ``.keras`` file (loaded once per actor); "representation": a fitted,
    picklable :class:`~altoolkit.label_free.LabelFreeRepresentation`.
    """

    def __init__(self, kind: str, payload, size: int, threads: int = 1):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.size = size
        if kind == "model":
            from altoolkit.model import inference_function, load_classifier, probabilities_and_embeddings_model

            two_outputs = probabilities_and_embeddings_model(load_classifier(payload))
            infer = inference_function(two_outputs, (size, size, 3), np.uint8)
            self.outputs = lambda images: [output.numpy() for output in infer(images)]
        else:
            self.outputs = lambda images: [payload.transform(images)]

    def __call__(self, batch: dict) -> dict:
        from altoolkit.sources import read_image

        images = np.stack([read_image(Path(str(path)), self.size) for path in batch["path"]])
        outputs = self.outputs(images)
        return {"row": np.asarray(batch["row"]), **{f"output_{i}": np.asarray(out, np.float32)
                                                     for i, out in enumerate(outputs)}}


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide the Ray engine runs: a cluster ``address`` (None: a local Ray on this machine's cores),
    ``actors`` scoring in parallel, each with ``cpus_per_actor`` cores."""

    address: str | None = None
    actors: int = 2
    cpus_per_actor: int = 1

    def output_batches(self, pool, task: tuple[str, object], outputs: int) -> Iterator[list[np.ndarray]]:
        start_ray(self.address, num_cpus=self.actors * self.cpus_per_actor)
        kind, payload = task
        return ray_output_batches(pool, kind, payload, outputs, actors=self.actors,
                                  cpus_per_actor=self.cpus_per_actor)


def ray_output_batches(pool, kind: str, payload, outputs: int, *, actors: int = 2,
                       cpus_per_actor: int = 1) -> Iterator[list[np.ndarray]]:
    """The outputs (``outputs`` arrays per batch) of :class:`PoolScorer` over a streamed file pool
    (:class:`~altoolkit.streaming.FilePool`) on ``actors`` Ray actors, batch by batch in the pool's order."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    files = ray.data.from_items([{"row": row, "path": str(pool.root / file.relative_path)}
                                 for row, file in enumerate(pool.files)], override_num_blocks=max(actors * 4, 1))
    scored = files.map_batches(PoolScorer, fn_constructor_kwargs={"kind": kind, "payload": payload,
                                                                  "size": pool.size, "threads": cpus_per_actor},
                               batch_size=RAY_BATCH, batch_format="numpy",
                               compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor)
    expected = 0
    try:
        for batch in scored.iter_batches(batch_size=RAY_BATCH, batch_format="numpy"):
            rows = batch["row"]
            if len(rows) and not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise ToolkitError("Ray returned the pool's rows out of order: run again, or use --engine local")
            expected += len(rows)
            yield [batch[f"output_{i}"] for i in range(outputs)]
    except ToolkitError:
        raise
    except Exception as error:  # a worker's error arrives wrapped by Ray, with its traceback: keep what it said
        raise ToolkitError(worker_error_text(str(error))) from None


def worker_error_text(text: str) -> str:
    """One line from a Ray worker's error: the toolkit's own message when the worker raised one (it names the file
    and what to do), else the error's last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "ToolkitError: " in line:
            return line.split("ToolkitError: ", 1)[1][:400]
    return f"the Ray engine failed: {lines[-1][:300] if lines else 'no message'}: run again, or use --engine local"
