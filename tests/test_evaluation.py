"""The four Evaluation modules on a real (tiny) trained model: files, one forward pass, bad input, empty results.

One model is trained per session (``tiny_digits_model`` in conftest.py). The ``pipeline`` fixture runs the
modules standalone one after another, the way a user would: uncertainty as a script in a subprocess, diversity
in-process through its ``main``, novelty with ``python -m`` in a subprocess, then the image selection's ``main``
reading the three saved analyses.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import AL_functions as alf
from Evaluation.pool_context import load_analysis, open_pool
from altoolkit.errors import ToolkitError
from altoolkit.files import file_sha256, save_npy
from altoolkit.model import load_classifier
from altoolkit.outputs import ModelOutputCache
from Evaluation.Diversity import diversity
from Evaluation.Image_selec import image_selection
from Evaluation.Novelty import novelty
from Evaluation.Uncertainty import uncertainty

REPO = Path(__file__).resolve().parents[1]
LABELED, START, END = 100, 100, 400
POOL = END - START
N_CLUSTERS = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANALYSIS_PLOTS = {"uncertainty": ["uncertainty_histogram.png", "uncertainty_samples.png"],
                  "diversity": ["diversity_clusters.png", "diversity_histogram.png", "diversity_samples.png"],
                  "novelty": ["novelty_histogram.png", "novelty_samples.png"]}
SCORE_KEYS = {"uncertainty": {"entropy", "margin", "least_confidence"},
              "diversity": {"distance", "cluster", "representatives"}, "novelty": {"novelty"}}


def assert_png(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 100
    with Image.open(path) as image:
        image.verify()


def cache_files(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.iterdir()) if cache_dir.is_dir() else []


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary files/directories of atomic writes (``.<name>.*.tmp``/``.old``) anywhere under ``folder``."""
    return [str(path) for path in folder.rglob(".*") if path.name.endswith((".tmp", ".old"))]


def pool_argv(model, output_dir, cache_dir, *extra, start=START, end=END, labeled=LABELED):
    return ["--dataset", "digits", "--model", str(model), "--labeled-size", str(labeled), "--start-idx", str(start),
            "--end-idx", str(end), "--output-dir", str(output_dir), "--cache-dir", str(cache_dir), *extra]


def run_quietly(function, *args, **kwargs):
    """Call ``function`` with stdout captured (module-scoped fixtures cannot use capsys)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = function(*args, **kwargs)
    return result, out.getvalue()


@pytest.fixture(scope="module")
def pipeline(tiny_digits_model, digits_dataset, tmp_path_factory):
    """Uncertainty → diversity → novelty → image selection on the tiny model; records the cache after each step."""
    work = tmp_path_factory.mktemp("pipeline")
    results, cache = work / "results", work / "results" / ".cache"
    model = tiny_digits_model.model_path
    steps = {}

    steps["uncertainty"] = subprocess.run(
        [sys.executable, str(REPO / "Evaluation" / "Uncertainty" / "uncertainty.py"),
         *pool_argv(model, "results/uncertainty", "results/.cache")],
        cwd=work, capture_output=True, text=True, timeout=300)
    cache_after = {"uncertainty": cache_files(cache)}

    def no_forward_pass(self, images):
        raise AssertionError(f"diversity ran the model again on {len(images)} images instead of using the cache")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModelOutputCache, "_predict", no_forward_pass)
        steps["diversity"], diversity_stdout = run_quietly(
            diversity.main, pool_argv(model, results / "diversity", cache, "--n-clusters", str(N_CLUSTERS)))
    cache_after["diversity"] = cache_files(cache)

    # Default --output-dir/--cache-dir: results/novelty and results/.cache under the working directory.
    steps["novelty"] = subprocess.run(
        [sys.executable, "-m", "Evaluation.Novelty.novelty", "--dataset", "digits", "--model", str(model),
         "--labeled-size", str(LABELED), "--start-idx", str(START), "--end-idx", str(END)],
        cwd=work, capture_output=True, text=True, timeout=300)
    cache_after["novelty"] = cache_files(cache)

    steps["intersection"], selection_stdout = run_quietly(
        image_selection.main, ["--results-dir", str(results), "--output-dir", str(results / "intersection"),
                               "--cache-dir", str(cache)])
    cache_after["intersection"] = cache_files(cache)
    return SimpleNamespace(work=work, results=results, cache=cache, model=model, steps=steps,
                           cache_after=cache_after, diversity_stdout=diversity_stdout,
                           selection_stdout=selection_stdout)


def saved_indices(pipeline, name: str) -> np.ndarray:
    folder = "intersection" if name == "intersection" else name
    return np.load(pipeline.results / folder / f"{name}_indices.npy", allow_pickle=False)


# ---------------------------------------------------------------------------------------------------------------
# 1. The modules run standalone one after another and write every file


@pytest.mark.slow
def test_every_module_runs_standalone_and_succeeds(pipeline):
    for name in ("uncertainty", "novelty"):
        completed = pipeline.steps[name]
        assert completed.returncode == 0, completed.stderr
        assert "Traceback" not in completed.stderr
        assert f"{name}: " in completed.stdout and f"of {POOL} pool images selected" in completed.stdout
    assert pipeline.steps["diversity"] == 0
    assert "diversity: " in pipeline.diversity_stdout
    assert pipeline.steps["intersection"] == 0
    assert "intersection: " in pipeline.selection_stdout


@pytest.mark.slow
def test_every_analysis_writes_indices_scores_run_summary_and_plots(pipeline):
    for name, plots in ANALYSIS_PLOTS.items():
        folder = pipeline.results / name
        expected = {f"{name}_indices.npy", f"{name}_scores.npz", f"{name}_run.json", "summary.txt", *plots}
        assert {path.name for path in folder.iterdir()} == expected
        summary = (folder / "summary.txt").read_text()
        assert summary.startswith(f"{name} analysis")
        assert f"pool = training images {START}..{END - 1} ({POOL}); labeled = first {LABELED}" in summary
        for plot in plots:
            assert_png(folder / plot)
    assert hidden_leftovers(pipeline.work) == []


@pytest.mark.slow
def test_intersection_writes_indices_summary_one_png_per_image_and_a_figure(pipeline, digits_dataset):
    from PIL import Image

    folder = pipeline.results / "intersection"
    intersection = saved_indices(pipeline, "intersection")
    assert {"intersection_indices.npy", "intersection_run.json", "summary.txt", "images",
            "intersection_visualization.png"} <= {path.name for path in folder.iterdir()}
    assert_png(folder / "intersection_visualization.png")
    if len(intersection):
        assert_png(folder / "intersection_samples.png")
    images = sorted((folder / "images").iterdir())
    assert len(images) == len(intersection)
    expected_names = [f"{START + i:06d}_{digits_dataset.class_names[digits_dataset.y_train[START + i]]}.png"
                      for i in intersection]
    assert [path.name for path in images] == expected_names
    for path, index in zip(images, intersection):
        assert_png(path)
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image), digits_dataset.x_train[START + index])
    summary = (folder / "summary.txt").read_text()
    assert f"in all three: {len(intersection)} images" in summary
    for index in intersection:
        assert f"{START + index:8d}  {index:8d}" in summary
    run = json.loads((folder / "intersection_run.json").read_text())
    assert run["stats"]["count"] == len(intersection)
    assert run["absolute_indices"] == (intersection + START).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uncertainty", "diversity", "novelty", "intersection"])
def test_saved_indices_are_sorted_integer_positions_in_the_pool(pipeline, name):
    indices = saved_indices(pipeline, name)
    assert indices.ndim == 1 and np.issubdtype(indices.dtype, np.integer)
    assert indices.size == 0 or (indices.min() >= 0 and indices.max() < POOL)
    assert np.all(np.diff(indices) > 0)
    folder = pipeline.results / name
    run = json.loads((folder / f"{name}_run.json").read_text())
    assert (run["start_idx"], run["end_idx"], run["labeled_size"]) == (START, END, LABELED)
    assert run["absolute_indices"] == (indices + START).tolist()
    assert run["model_sha256"] == file_sha256(pipeline.model)[:16]
    if name != "intersection":
        assert run["stats"]["count"] == len(indices) and run["stats"]["pool_size"] == POOL
        with np.load(folder / f"{name}_scores.npz", allow_pickle=False) as scores:
            assert set(scores.files) == SCORE_KEYS[name]
            assert all(len(scores[key]) == POOL for key in scores.files if key != "representatives")


@pytest.mark.slow
def test_indices_are_relative_to_start_idx_and_match_the_heuristics(pipeline, digits_dataset):
    """Recompute each selection from the cached outputs of images START..END-1: row i is image START + i."""
    context = open_pool(pipeline.model, LABELED, START, END, dataset=digits_dataset, cache_dir=pipeline.cache)
    assert context.pool.from_cache and context.labeled.from_cache
    expected = {
        "uncertainty": alf.select_uncertain(context.pool.probabilities, 50).indices,
        "diversity": alf.analyze_diversity_embeddings(context.pool.embeddings, N_CLUSTERS, 75, 0).indices,
        "novelty": alf.analyze_novelty_embeddings(context.pool.embeddings, context.labeled.embeddings, 5, 75).indices,
    }
    for name, indices in expected.items():
        assert np.array_equal(saved_indices(pipeline, name), indices), name
    scores = np.load(pipeline.results / "uncertainty" / "uncertainty_scores.npz", allow_pickle=False)
    assert np.allclose(scores["entropy"], alf.entropy_scores(context.pool.probabilities))


@pytest.mark.slow
def test_intersection_equals_intersect1d_of_the_three_saved_sets(pipeline):
    u, d, n = (saved_indices(pipeline, name) for name in ("uncertainty", "diversity", "novelty"))
    assert np.array_equal(saved_indices(pipeline, "intersection"), np.intersect1d(np.intersect1d(u, d), n))


# ---------------------------------------------------------------------------------------------------------------
# 2. One forward pass


@pytest.mark.slow
def test_one_forward_pass_over_the_pool_and_one_over_the_labeled_set(pipeline, digits_dataset):
    prefix = f"{file_sha256(pipeline.model)[:16]}_{digits_dataset.fingerprint}_"
    pool_file, labeled_file = f"{prefix}{START}-{END}.npz", f"{prefix}0-{LABELED}.npz"
    assert pipeline.cache_after["uncertainty"] == [pool_file]
    # diversity ran with ModelOutputCache._predict replaced by an AssertionError, and added no cache file
    assert pipeline.cache_after["diversity"] == [pool_file]
    assert sorted(set(pipeline.cache_after["novelty"]) - set(pipeline.cache_after["diversity"])) == [labeled_file]
    assert pipeline.cache_after["intersection"] == pipeline.cache_after["novelty"]


@pytest.mark.slow
def test_a_second_cache_returns_the_same_outputs_without_predicting(pipeline, digits_dataset, monkeypatch):
    context = open_pool(pipeline.model, LABELED, START, END, dataset=digits_dataset, cache_dir=pipeline.cache)
    first = context.pool
    assert first.from_cache is True

    def no_forward_pass(self, images):
        raise AssertionError("the model was run again")

    monkeypatch.setattr(ModelOutputCache, "_predict", no_forward_pass)
    again = ModelOutputCache(pipeline.model, digits_dataset, cache_dir=pipeline.cache).outputs(START, END)
    assert again.from_cache is True
    assert np.array_equal(again.probabilities, first.probabilities)
    assert np.array_equal(again.embeddings, first.embeddings)
    assert again.probabilities.shape == (POOL, 10) and again.embeddings.shape[0] == POOL
    assert np.allclose(again.probabilities.sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow
def test_cached_outputs_equal_a_fresh_forward_pass(pipeline, digits_dataset, tmp_path):
    from altoolkit.model import probabilities_and_embeddings

    model = load_classifier(pipeline.model)
    probabilities, embeddings = probabilities_and_embeddings(model, digits_dataset.x_train[START:END])
    cached = ModelOutputCache(pipeline.model, digits_dataset, cache_dir=pipeline.cache).outputs(START, END)
    assert cached.from_cache
    assert np.allclose(cached.probabilities, probabilities, atol=1e-5)
    assert np.allclose(cached.embeddings, embeddings, atol=1e-4)


def test_an_unreadable_cache_file_is_recomputed(small_models, digits_dataset, tmp_path):
    cache = ModelOutputCache(small_models["flat"], digits_dataset, cache_dir=tmp_path)
    computed = cache.outputs(START, START + 20)
    (cache_file,) = tmp_path.iterdir()
    for damage in (b"", cache_file.read_bytes()[:100]):  # empty (EOFError) and truncated zip (BadZipFile)
        cache_file.write_bytes(damage)
        again = cache.outputs(START, START + 20)
        assert again.from_cache is False
        assert np.allclose(again.probabilities, computed.probabilities)
        assert cache.outputs(START, START + 20).from_cache is True


CACHE_DAMAGE = {
    "one probability column too few": lambda p, e: (p[:, :-1] + p[:, -1:] / (p.shape[1] - 1), e),
    "one embedding column too many": lambda p, e: (p, np.hstack([e, e[:, :1]])),
    "float64 arrays": lambda p, e: (p.astype(np.float64), e.astype(np.float64)),
    "a NaN embedding": lambda p, e: (p, np.where(np.arange(e.size).reshape(e.shape) == 7, np.nan, e)),
    "rows not summing to 1": lambda p, e: (p * 2, e),
    "negative probabilities": lambda p, e: (p - 0.05, e),
    "one row too few": lambda p, e: (p[1:], e[1:]),
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_a_cache_file_that_does_not_fit_the_model_is_recomputed_not_used(small_models, digits_dataset, tmp_path,
                                                                          damage):
    from altoolkit.files import save_npz

    cache = ModelOutputCache(small_models["flat"], digits_dataset, cache_dir=tmp_path)
    computed = cache.outputs(START, START + 20)
    (cache_file,) = tmp_path.iterdir()
    save_npz(cache_file, **dict(zip(("probabilities", "embeddings"),
                                    CACHE_DAMAGE[damage](computed.probabilities, computed.embeddings))))
    again = cache.outputs(START, START + 20)
    assert again.from_cache is False
    assert np.array_equal(again.probabilities, computed.probabilities)
    assert np.array_equal(again.embeddings, computed.embeddings)
    reread = cache.outputs(START, START + 20)
    assert reread.from_cache is True and np.array_equal(reread.probabilities, computed.probabilities)
    assert [path.name for path in tmp_path.iterdir()] == [cache_file.name]


def test_the_modules_cache_beside_their_output_folder_by_default(small_models, tmp_path, monkeypatch, capsys):
    """--output-dir out/uncertainty caches in out/.cache, not in ./results/.cache; the next module reuses it."""
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "digits", "--model", str(small_models["flat"]), "--labeled-size", str(LABELED),
            "--start-idx", str(START), "--end-idx", str(END), "--no-plots", "--quiet"]
    assert uncertainty.main([*argv, "--output-dir", "out/uncertainty"]) == 0, capsys.readouterr().err
    assert len(cache_files(tmp_path / "out" / ".cache")) == 1
    assert not (tmp_path / "results").exists()
    monkeypatch.setattr(ModelOutputCache, "_predict", lambda self, images: pytest.fail("the pool was run again"))
    assert diversity.main([*argv, "--output-dir", "out/diversity", "--n-clusters", "4"]) == 0, \
        capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [".cache", "diversity", "uncertainty"]


def test_the_model_is_checked_before_the_data_is_read(small_models, tmp_path, monkeypatch, capsys):
    """A model that cannot take the requested image size is refused without loading (or downloading) any data."""
    import altoolkit.data

    monkeypatch.setattr(altoolkit.data, "load_dataset",
                        lambda *args, **kwargs: pytest.fail("the data was read before the model was checked"))
    status = uncertainty.main(pool_argv(small_models["flat"], tmp_path / "out", tmp_path / "cache", "--image-size",
                                        "64"))
    assert status == 2
    assert "expects images of shape (32, 32, 3) but the data has (64, 64, 3)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def linear_model(path: Path, kernel: np.ndarray, bias: np.ndarray) -> Path:
    """Rescaling(1/255) → Flatten → Dense(softmax) with the given weights, saved as .keras (nothing is trained)."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Rescaling(1 / 255), layers.Flatten(),
                              layers.Dense(len(bias), activation="softmax")])
    model.layers[-1].set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def chance_models(digits_dataset, tmp_path_factory):
    """Linear models on the digits pixels: a good one (logistic regression on the first 100 labels, right on
    nearly all of them), one fit to shifted labels (never right), one constant and one always saying "3"."""
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("chance_models")
    pixels = digits_dataset.x_train[:LABELED].reshape(LABELED, -1) / 255
    labels = digits_dataset.y_train[:LABELED]

    def fitted(name, targets):
        regression = LogisticRegression(max_iter=2000).fit(pixels, targets)
        return linear_model(folder / f"{name}.keras", regression.coef_.T, regression.intercept_)

    bias_for_three = np.zeros(10)
    bias_for_three[3] = 8.0
    return {"good": fitted("good", labels), "shifted": fitted("shifted", (labels + 1) % 10),
            "constant": linear_model(folder / "constant.keras", np.zeros((pixels.shape[1], 10)), np.zeros(10)),
            "always_three": linear_model(folder / "always_three.keras",
                                         np.random.default_rng(0).normal(0, 1e-3, (pixels.shape[1], 10)),
                                         bias_for_three)}


@pytest.mark.parametrize("model, sign", [
    ("constant", "gives every pool image the same uncertainty"),
    ("always_three", "predicts 3 for every image"),
    ("shifted", "is right on 0% of its own 100 labeled images, no better than always guessing"),
    ("good", None),
])
def test_a_model_at_chance_gets_one_warning_line_that_the_run_files_keep(chance_models, tmp_path, capsys, model,
                                                                         sign):
    status = novelty.main(pool_argv(chance_models[model], tmp_path / "novelty", tmp_path / "cache", "--no-plots",
                                    "--quiet"))
    err = capsys.readouterr().err
    assert status == 0, err
    run = json.loads((tmp_path / "novelty" / "novelty_run.json").read_text())
    summary = (tmp_path / "novelty" / "summary.txt").read_text()
    if sign is None:
        assert err == "" and run["stats"]["model_warning"] is None and "warning" not in summary
        return
    (line,) = err.splitlines()
    assert line.startswith(f"warning: {chance_models[model]} looks untrained: it {sign}")
    assert run["stats"]["model_warning"] == line.removeprefix("warning: ")
    assert line in summary


# ---------------------------------------------------------------------------------------------------------------
# 3. Bad input: ToolkitError from the functions, exit 2 and one `error:` line from the command line


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """Small .keras files, each wrong in one way (plus one good 10-class model for range errors)."""
    import keras
    from keras import layers

    folder = tmp_path_factory.mktemp("small_models")

    def save(name, *stack):
        path = folder / f"{name}.keras"
        keras.Sequential(list(stack)).save(path)
        return path

    def flat():  # fresh layers for every model
        return [layers.Flatten(), layers.Dense(10, activation="softmax")]

    models = {
        "flat": save("flat", keras.Input((32, 32, 3)), *flat()),
        "linear": save("linear", keras.Input((32, 32, 3)), layers.Flatten(), layers.Dense(3)),
        "four_d": save("four_d", keras.Input((32, 32, 3)), layers.Conv2D(10, 1, activation="softmax")),
        "size_28": save("size_28", keras.Input((28, 28, 3)), *flat()),
        "three_classes": save("three_classes", keras.Input((32, 32, 3)), layers.Flatten(),
                              layers.Dense(3, activation="softmax")),
        "lambda": save("lambda", keras.Input((32, 32, 3)), layers.Lambda(lambda x: x / 255.0), *flat()),
        "missing": folder / "missing.keras",
        "h5_suffix": folder / "model.h5",
        "corrupt": folder / "corrupt.keras",
    }
    shutil.copy(models["flat"], models["h5_suffix"])  # a real model, but not named .keras
    models["corrupt"].write_bytes(np.random.default_rng(0).bytes(4096))
    return models


def call_analysis(module: str, model, output_dir, cache_dir, dataset, start=START, end=END, labeled=LABELED,
                  **options):
    common = {"dataset": dataset, "cache_dir": cache_dir, "plots": False, "verbose": False}
    if module == "uncertainty":
        return uncertainty.analyze_uncertainty(model, start, end, output_dir, labeled_size=labeled, **common,
                                               **options)
    if module == "diversity":
        return diversity.analyze_diversity(model, start, end, output_dir, labeled_size=labeled, **common,
                                           **options)
    return novelty.analyze_novelty(model, labeled, start, end, output_dir=output_dir, **common, **options)


MAINS = {"uncertainty": uncertainty.main, "diversity": diversity.main, "novelty": novelty.main}
OPTION_FLAGS = {"n_clusters": "--n-clusters", "k_neighbors": "--k-neighbors"}

BAD_INPUT = [
    # id, module, model, range/options, expected message (a regular expression)
    ("missing-model", "uncertainty", "missing", {}, r"model file \S*missing\.keras not found"),
    ("not-keras-suffix", "diversity", "h5_suffix", {}, r"model\.h5 is not a \.keras model file"),
    ("corrupt-keras", "novelty", "corrupt", {}, r"corrupt\.keras is not a valid \.keras file"),
    ("linear-output", "uncertainty", "linear", {}, r"linear\.keras does not end in a softmax"),
    ("4d-output", "diversity", "four_d", {},
     r"must output a probability vector per image .*has shape \(None, 32, 32, 10\)"),
    ("input-shape", "novelty", "size_28", {},
     r"expects images of shape \(28, 28, 3\) but the data has \(32, 32, 3\)"),
    ("wrong-classes", "uncertainty", "three_classes", {}, r"predicts 3 classes but the data has 10"),
    ("lambda-layer", "diversity", "lambda", {}, r"cannot load \S*lambda\.keras: .*Lambda"),
    ("start-not-below-end", "uncertainty", "flat", {"start": 400, "end": 400},
     r"start index 400 must be smaller than end index 400"),
    ("end-beyond-data", "diversity", "flat", {"end": 1348},
     r"end index 1348 is outside the data: digits has 1347 training images"),
    ("pool-overlaps-labeled", "novelty", "flat", {"start": 50},
     r"the pool 50\.\.399 overlaps the labeled set \(the first 100 images\)"),
    ("too-many-clusters", "diversity", "flat", {"n_clusters": POOL + 1},
     rf"n_clusters must be between 1 and the pool size \({POOL}\), got {POOL + 1}"),
    ("too-many-neighbours", "novelty", "flat", {"k_neighbors": LABELED + 1},
     rf"k_neighbors must be between 1 and the number of labeled images \({LABELED}\), got {LABELED + 1}"),
]


@pytest.mark.parametrize("module, model, options, message", [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_a_toolkit_error(small_models, digits_dataset, tmp_path, module, model, options, message):
    with pytest.raises(ToolkitError, match=message):
        call_analysis(module, small_models[model], tmp_path / "out", tmp_path / "cache", digits_dataset, **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module, model, options, message", [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_on_the_command_line_is_one_error_line(small_models, tmp_path, capsys, module, model, options,
                                                         message):
    options = dict(options)
    start, end = options.pop("start", START), options.pop("end", END)
    extra = [str(item) for key, value in options.items() for item in (OPTION_FLAGS[key], value)]
    status = MAINS[module](pool_argv(small_models[model], tmp_path / "out", tmp_path / "cache", *extra,
                                     start=start, end=end) + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_real_process_prints_one_error_line_and_no_traceback(small_models, tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO / "Evaluation" / "Diversity" / "diversity.py"),
         *pool_argv(small_models["corrupt"], "out", "cache")], cwd=tmp_path, capture_output=True, text=True,
        timeout=300)
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [completed.stderr.strip()]
    assert completed.stderr.startswith("error: ") and "is not a valid .keras file" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()


def copy_results(pipeline, destination: Path) -> Path:
    for name in ("uncertainty", "diversity", "novelty"):
        shutil.copytree(pipeline.results / name, destination / name)
    return destination


@pytest.mark.slow
def test_image_selection_names_a_missing_indices_file(pipeline, tmp_path, capsys):
    results = copy_results(pipeline, tmp_path / "results")
    (results / "diversity" / "diversity_indices.npy").unlink()
    with pytest.raises(ToolkitError, match=r"missing \S*diversity[/\\]diversity_indices\.npy: run the diversity"):
        image_selection.intersection_from_results(results, tmp_path / "out", cache_dir=pipeline.cache)
    status = image_selection.main(["--results-dir", str(results), "--output-dir", str(tmp_path / "out"),
                                   "--cache-dir", str(pipeline.cache)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: missing ") and "diversity_indices.npy" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_image_selection_refuses_analyses_of_different_ranges(pipeline, digits_dataset, tmp_path, capsys):
    results = copy_results(pipeline, tmp_path / "results")
    shutil.rmtree(results / "novelty")
    cache = shutil.copytree(pipeline.cache, tmp_path / "cache")
    novelty.analyze_novelty(pipeline.model, LABELED, 150, END, output_dir=results / "novelty",
                            dataset=digits_dataset, cache_dir=cache, plots=False, verbose=False)
    with pytest.raises(ToolkitError, match=r"disagree on start_idx .*'uncertainty': 100.*'novelty': 150"):
        image_selection.intersection_from_results(results, tmp_path / "out", cache_dir=cache)
    capsys.readouterr()  # the tiny model's "looks untrained" warning from the analysis above
    status = image_selection.main(["--results-dir", str(results), "--output-dir", str(tmp_path / "out"),
                                   "--cache-dir", str(cache)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "disagree on start_idx" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_image_selection_refuses_a_model_changed_since_the_analyses(pipeline, small_models, tmp_path):
    results = copy_results(pipeline, tmp_path / "results")
    for name in ("uncertainty", "diversity", "novelty"):  # as if another model had been saved at model_path
        run_file = results / name / f"{name}_run.json"
        run = json.loads(run_file.read_text())
        run["model_path"] = str(small_models["flat"])
        run_file.write_text(json.dumps(run))
    with pytest.raises(ToolkitError, match=r"flat\.keras changed since the analyses"):
        image_selection.intersection_from_results(results, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unreadable_or_non_integer_saved_indices_are_one_error(pipeline, tmp_path):
    results = copy_results(pipeline, tmp_path / "results")
    target = results / "novelty" / "novelty_indices.npy"
    target.write_bytes(b"")
    with pytest.raises(ToolkitError, match="cannot read the novelty results"):
        load_analysis(results / "novelty", "novelty")
    save_npy(target, np.array([0.5, 2.0]))
    with pytest.raises(ToolkitError, match="must hold a 1-D array of integer pool indices"):
        load_analysis(results / "novelty", "novelty")


def test_classes_all_is_honoured_by_the_modules_and_the_image_selection(small_models, tmp_path, monkeypatch,
                                                                        capsys):
    """``--classes all`` must keep every class even where the dataset has a default subset (as CIFAR-10 does)."""
    import altoolkit.data

    monkeypatch.setitem(altoolkit.data.DEFAULT_CLASSES, "digits", "0,1,2")
    results, cache = tmp_path / "results", tmp_path / "cache"
    for name, main in MAINS.items():
        argv = pool_argv(small_models["flat"], results / name, cache, "--classes", "all", "--no-plots", "--quiet")
        assert main(argv + (["--n-clusters", "4"] if name == "diversity" else [])) == 0, capsys.readouterr().err
    run = json.loads((results / "novelty" / "novelty_run.json").read_text())
    assert run["data_options"]["classes"] is None and len(run["class_names"]) == 10
    assert image_selection.main(["--results-dir", str(results), "--output-dir", str(results / "intersection"),
                                 "--cache-dir", str(cache), "--no-plots", "--no-images", "--quiet"]) == 0, \
        capsys.readouterr().err
    assert len(json.loads((results / "intersection" / "intersection_run.json").read_text())["class_names"]) == 10


# ---------------------------------------------------------------------------------------------------------------
# 4. An empty intersection is a valid result, not a crash


@pytest.mark.slow
def test_empty_intersection_writes_valid_empty_results(tiny_digits_model, digits_dataset, tmp_path, capsys):
    output = tmp_path / "intersection"
    intersection, stats = image_selection.analyze_intersection(
        np.array([0, 1, 2]), np.array([3, 4]), np.array([5, 6, 299]), START, END, output,
        model_path=tiny_digits_model.model_path, labeled_size=LABELED, dataset=digits_dataset,
        cache_dir=tmp_path / "cache")
    assert len(intersection) == 0 and stats["count"] == 0
    saved = np.load(output / "intersection_indices.npy", allow_pickle=False)
    assert saved.shape == (0,) and np.issubdtype(saved.dtype, np.integer)
    summary = (output / "summary.txt").read_text()
    assert "in all three: 0 images" in summary and "No image met all three criteria" in summary
    assert_png(output / "intersection_visualization.png")
    assert (output / "images").is_dir() and list((output / "images").iterdir()) == []
    assert json.loads((output / "intersection_run.json").read_text())["absolute_indices"] == []
    assert stats["regions"]["100"] == 3 and stats["regions"]["010"] == 2 and stats["regions"]["001"] == 3
    printed = capsys.readouterr().out
    assert "no image meets all three criteria" in printed
    assert hidden_leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# 5. Models are loaded with safe_mode=True


def test_a_lambda_layer_is_refused_because_of_safe_mode(small_models, monkeypatch):
    import keras

    calls = []
    real_load_model = keras.models.load_model

    def spy(*args, **kwargs):
        calls.append(kwargs.get("safe_mode"))
        return real_load_model(*args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", spy)
    with pytest.raises(ToolkitError, match=r"cannot load \S*lambda\.keras: ValueError: .*`Lambda` layer"):
        load_classifier(small_models["lambda"])
    assert calls == [True]
    monkeypatch.undo()
    # The same file loads when safe mode is off: the refusal above is safe mode's, not a broken file.
    assert len(keras.models.load_model(small_models["lambda"], safe_mode=False).layers) == 3
    assert load_classifier(small_models["flat"]).output_shape == (None, 10)


# ---------------------------------------------------------------------------------------------------------------
# 6. Outputs are atomic: a failed write leaves neither a half-written target nor a temporary file


def failing_numpy_save(handle, array, *args, **kwargs):
    handle.write(b"\x93NUMPY half-written")
    raise OSError("No space left on device")


def test_a_failed_npy_save_leaves_no_partial_or_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "save", failing_numpy_save)
    with pytest.raises(OSError, match="No space left"):
        save_npy(tmp_path / "new_indices.npy", np.arange(5))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_npy(tmp_path / "old_indices.npy", np.arange(3))
    monkeypatch.setattr(np, "save", failing_numpy_save)
    with pytest.raises(OSError):
        save_npy(tmp_path / "old_indices.npy", np.arange(5))
    assert [path.name for path in tmp_path.iterdir()] == ["old_indices.npy"]
    assert np.array_equal(np.load(tmp_path / "old_indices.npy", allow_pickle=False), np.arange(3))


def test_an_analysis_failing_midway_leaves_no_partial_files(small_models, digits_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "save", failing_numpy_save)
    with pytest.raises(OSError, match="No space left"):
        call_analysis("uncertainty", small_models["flat"], tmp_path / "out", tmp_path / "cache", digits_dataset)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert hidden_leftovers(tmp_path) == []
    assert len(cache_files(tmp_path / "cache")) == 1  # the cache (written before) is whole and reusable
    monkeypatch.undo()
    indices, _, _ = call_analysis("uncertainty", small_models["flat"], tmp_path / "out", tmp_path / "cache",
                                  digits_dataset)
    assert np.array_equal(np.load(tmp_path / "out" / "uncertainty_indices.npy"), indices)


def test_a_failed_cache_write_warns_returns_the_outputs_and_leaves_no_cache_file(small_models, digits_dataset,
                                                                                 tmp_path, monkeypatch, capsys):
    """The outputs are computed by then: a cache that cannot be written costs the next run a forward pass, so it
    is one warning line, not an error that throws the work away."""
    def failing_savez(handle, **arrays):
        handle.write(b"PK half-written")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    cache = ModelOutputCache(small_models["flat"], digits_dataset, cache_dir=tmp_path / "cache")
    outputs = cache.outputs(START, START + 10)
    assert outputs.probabilities.shape == (10, 10) and not outputs.from_cache
    warning = capsys.readouterr().err.strip()
    assert warning.startswith("warning: could not write the cache file ") and "No space left" in warning
    assert len(warning.splitlines()) == 1
    assert cache_files(tmp_path / "cache") == []
