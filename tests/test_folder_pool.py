"""A ``--dataset folder`` pool is streamed by the cycle and the Evaluation scripts: never decoded whole, its model
outputs and label-free rows written to the cache as memory-mapped arrays, and the analyses the same as on the
same images held in memory (an .npz of them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import AL_cycle
from altoolkit.data import load_dataset
from altoolkit.file_images import FileImages
from altoolkit.outputs import ModelOutputCache
from Evaluation.Diversity import diversity
from Evaluation.Image_selec import image_selection
from Evaluation.Novelty import novelty
from Evaluation.Uncertainty import uncertainty

LABELED, START, END = 40, 40, 300
"""The folder's first 40 training images are the labeled set; the pool is the next 260."""


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits_dataset) -> Path:
    """400 digits as PNGs in one sub-folder per class (the ``folder`` data source)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("digit_folder")
    for index in range(400):
        folder = root / digits_dataset.class_names[digits_dataset.y_train[index]]
        folder.mkdir(exist_ok=True)
        Image.fromarray(digits_dataset.x_train[index]).save(folder / f"{index:04d}.png")
    return root


@pytest.fixture
def decoded_rows(monkeypatch) -> list[int]:
    """How many images each decode of :class:`FileImages` asked for (none of them may be the whole pool)."""
    sizes: list[int] = []
    original = FileImages._decode

    def counted(self, rows):
        sizes.append(len(np.atleast_1d(rows)))
        return original(self, rows)

    monkeypatch.setattr(FileImages, "_decode", counted)
    return sizes


def analysis_argv(data: list, model: Path, output: Path, cache: Path) -> list[str]:
    return [*map(str, data), "--model", str(model), "--labeled-size", str(LABELED), "--start-idx", str(START),
            "--end-idx", str(END), "--output-dir", str(output), "--cache-dir", str(cache), "--quiet"]


def run_analyses(data: list, model: Path, results: Path) -> None:
    cache = results / ".cache"
    assert uncertainty.main(analysis_argv(data, model, results / "uncertainty", cache)) == 0
    assert diversity.main([*analysis_argv(data, model, results / "diversity", cache), "--n-clusters", "5"]) == 0
    assert novelty.main(analysis_argv(data, model, results / "novelty", cache)) == 0
    assert image_selection.main(["--results-dir", str(results), "--output-dir", str(results / "intersection"),
                                 "--cache-dir", str(cache), "--quiet"]) == 0


def test_the_evaluation_scripts_stream_a_folder_and_agree_with_the_same_images_in_memory(
        digit_folder, tiny_digits_model, tmp_path, decoded_rows):
    folder_data = ["--dataset", "folder", "--data-path", digit_folder, "--classes", "all"]
    run_analyses(folder_data, tiny_digits_model.model_path, tmp_path / "folder")
    assert decoded_rows and max(decoded_rows) < END - START, "a script decoded the whole pool at once"
    cache = tmp_path / "folder" / ".cache"
    streamed = sorted(path.name.split("_")[0] for path in (cache / "pool").glob("*.npy"))
    assert streamed == ["embeddings", "embeddings", "probabilities", "probabilities"]  # pool, labeled set
    assert not list(cache.glob("*.npz")), "the folder's outputs went into the in-memory cache"
    assert len(list((cache / "pool").glob("file_hashes_*.json"))) == 1

    loaded = load_dataset("folder", path=digit_folder, image_size=32)
    archive = tmp_path / "same_images.npz"
    np.savez(archive, x_train=np.asarray(loaded.x_train), y_train=loaded.y_train, x_test=np.asarray(loaded.x_test),
             y_test=loaded.y_test, class_names=np.asarray(loaded.class_names))
    run_analyses(["--dataset", "npz", "--data-path", archive], tiny_digits_model.model_path, tmp_path / "memory")
    for name in ("uncertainty", "diversity", "novelty"):
        folder_scores = np.load(tmp_path / "folder" / name / f"{name}_scores.npz")
        memory_scores = np.load(tmp_path / "memory" / name / f"{name}_scores.npz")
        for key in memory_scores.files:
            if np.issubdtype(memory_scores[key].dtype, np.floating):
                np.testing.assert_allclose(folder_scores[key], memory_scores[key], rtol=1e-4, atol=1e-5)
    for name, folder in (("uncertainty", "uncertainty"), ("novelty", "novelty"), ("intersection", "intersection")):
        assert np.array_equal(np.load(tmp_path / "folder" / folder / f"{name}_indices.npy"),
                              np.load(tmp_path / "memory" / folder / f"{name}_indices.npy")), name


def test_a_second_run_on_an_unchanged_folder_reads_hashes_and_outputs_back(digit_folder, tiny_digits_model,
                                                                          tmp_path, monkeypatch):
    import altoolkit.streaming as streaming

    folder_data = ["--dataset", "folder", "--data-path", digit_folder, "--classes", "all"]
    argv = analysis_argv(folder_data, tiny_digits_model.model_path, tmp_path / "u", tmp_path / "cache")
    assert uncertainty.main(argv) == 0
    first = np.load(tmp_path / "u" / "uncertainty_scores.npz")["entropy"]
    monkeypatch.setattr(streaming, "file_sha256", lambda path: pytest.fail(f"hashed {path} again"))
    monkeypatch.setattr(streaming, "streamed_rows", lambda *args, **kwargs: pytest.fail("ran the model again"))
    assert uncertainty.main(argv) == 0
    assert np.array_equal(np.load(tmp_path / "u" / "uncertainty_scores.npz")["entropy"], first)
    dataset = load_dataset("folder", path=digit_folder, image_size=32)
    outputs = ModelOutputCache(tiny_digits_model.model_path, dataset, tmp_path / "cache").outputs(START, END)
    assert outputs.from_cache and isinstance(outputs.probabilities, np.memmap)


def test_the_cycle_trains_selects_and_retrains_on_a_streamed_folder(digit_folder, tmp_path, capsys, decoded_rows):
    model = tmp_path / "models" / "base" / "best_model.keras"
    assert AL_cycle.main(["--dataset", "folder", "--data-path", str(digit_folder), "--classes", "all",
                          "--model", str(model), "--train-base", "--epochs", "1", "--labeled-size", str(LABELED),
                          "--start-idx", str(START), "--end-idx", str(END), "--budget", "60", "--strategy",
                          "typicality", "--representation", "pixels", "--target-per-class", "1", "--no-images",
                          "--quiet", "--output-dir", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert max(decoded_rows) < END - START, "the cycle decoded the whole pool at once"
    manifest = json.loads((tmp_path / "out" / "cycle_manifest.json").read_text())
    chosen = manifest["selection"]["absolute_indices"]
    assert len(chosen) == 60 and START <= min(chosen) and max(chosen) < END
    accuracy = manifest["comparison"]["accuracy"]
    assert set(accuracy) == {"base", "al", "random"} and all(0 <= value <= 1 for value in accuracy.values())
    streamed = {path.name.split("_")[0] for path in (tmp_path / "out" / ".cache" / "pool").glob("*.npy")}
    assert streamed == {"probabilities", "embeddings", "pixels"}
