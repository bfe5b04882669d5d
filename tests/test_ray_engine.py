"""The Ray engine on a real local Ray (started by the engine with two one-core actors): the pool's model outputs and
label-free rows it writes equal the local path's, the selection is the same, and its errors are one line."""

from __future__ import annotations

import numpy as np
import pytest

import label
from altoolkit.labeling.store import LabelStore
from altoolkit.ray_engine import worker_error_text

pytest.importorskip("ray.data", reason="the Ray engine is the optional [ray] extra (CI installs it)")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """An untrained 10-class classifier on 32×32 images, saved as .keras (its outputs, not its skill, matter)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(
        keras.layers.Rescaling(1 / 255)(inputs)))
    path = tmp_path_factory.mktemp("ray_model") / "model.keras"
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden)).save(path)
    return path


def _pool_arrays(project) -> dict[str, np.ndarray]:
    return {file.name.split("_")[0]: np.load(file) for file in sorted((project / ".cache" / "pool").glob("*.npy"))}


def _batch(project) -> list[str]:
    with LabelStore(project) as store:
        return [item.image_id for item in store.batch(1)]


@pytest.mark.parametrize("with_model", [True, False], ids=["model outputs", "patch features"])
def test_the_ray_engine_writes_the_arrays_the_local_path_writes(digit_folders, tiny_classifier, tmp_path,
                                                                 with_model):
    labeled, pool = digit_folders
    runs = {}
    for engine in ("local", "ray"):
        project = tmp_path / engine
        arguments = ["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
                     "--budget", "5", "--strategy", "coreset", "--engine", engine]
        if with_model:
            arguments += ["--model", str(tiny_classifier)]
        assert label.main(arguments) == 0
        runs[engine] = (_pool_arrays(project), _batch(project))
    (local, local_batch), (ray, ray_batch) = runs["local"], runs["ray"]
    assert set(local) == set(ray) == ({"probabilities", "embeddings"} if with_model else {"patches"})
    for name in local:
        assert local[name].shape == ray[name].shape and len(local[name]) == 40
        if with_model:
            assert np.array_equal(local[name], ray[name])  # the same traced function on the same pixels
        else:
            assert np.allclose(local[name], ray[name], atol=1e-5)  # one conv, thread counts may reorder sums
    assert ray_batch == local_batch


def test_a_bad_pool_file_under_the_ray_engine_is_one_line_that_names_it(digit_folders, tiny_classifier, tmp_path,
                                                                         capsys, digits_dataset, png_writer):
    labeled, _ = digit_folders
    pool = tmp_path / "pool"
    for index in range(3):
        png_writer(digits_dataset.x_train[index], pool / f"{index}.png")
    (pool / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    project = tmp_path / "project"
    assert label.main(["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
                       "--budget", "2", "--model", str(tiny_classifier), "--engine", "ray"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and "broken.png" in line
    assert not project.exists()


def test_ray_options_need_the_ray_engine(digit_folders, tmp_path, capsys):
    labeled, pool = digit_folders
    for option in (["--ray-address", "auto"], ["--ray-actors", "2"]):
        assert label.main(["select", "--project", str(tmp_path / "p"), "--pool", str(pool), "--labeled",
                           str(labeled), "--budget", "2", *option]) == 2
        assert "add it, or drop them" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_workers_error_keeps_the_toolkits_message():
    wrapped = ("ray.exceptions.RayTaskError(ToolkitError): ray::MapWorker.submit()\n  File \"x.py\", line 3\n"
               "altoolkit.errors.ToolkitError: cannot read image a.png: broken; remove or replace the file")
    assert worker_error_text(wrapped) == "cannot read image a.png: broken; remove or replace the file"
    assert worker_error_text("OSError: disk full").startswith("the Ray engine failed: OSError: disk full")
