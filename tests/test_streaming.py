"""The streamed file pool: listing and hash reuse, parallel decoding in order, arrays written to disk atomically,
the model's and the representations' streamed passes equal to the in-memory ones, and the cache's size limit."""

from __future__ import annotations

import os

import numpy as np
import pytest

from altoolkit.errors import ToolkitError
from altoolkit.feature_cache import cached_pool_arrays, enforce_cache_limit
from altoolkit.sources import read_image
from altoolkit.streaming import (FilePool, decoded_batches, hash_pool_files, list_image_files, pool_digest,
                                 scan_file_pool, streamed_rows)


@pytest.fixture(scope="module")
def pool_folder(tmp_path_factory, digits_dataset, png_writer):
    """70 digit PNGs (some in a sub-folder, one hidden file and one text file that are not part of the pool)."""
    root = tmp_path_factory.mktemp("stream_pool")
    for index in range(70):
        png_writer(digits_dataset.x_train[index], root / ("sub" if index % 3 == 0 else ".") / f"{index:03d}.png")
    png_writer(digits_dataset.x_train[0], root / ".hidden.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_listing_finds_every_image_file_sorted_and_skips_hidden_and_other_files(pool_folder):
    listing = list_image_files(pool_folder)
    paths = [path for path, _, _ in listing]
    assert len(paths) == 70 and paths == sorted(paths)
    assert "sub/000.png" in paths and ".hidden.png" not in paths and "notes.txt" not in paths
    size, mtime_ns = listing[0][1:]
    status = os.stat(pool_folder / paths[0])
    assert (size, mtime_ns) == (status.st_size, status.st_mtime_ns)


def test_hashes_are_reused_only_for_files_whose_size_and_time_are_unchanged(pool_folder, monkeypatch):
    import altoolkit.streaming as streaming

    listing = list_image_files(pool_folder)
    first = hash_pool_files(pool_folder, listing)
    known = {file.relative_path: (file.size, file.mtime_ns, file.sha256) for file in first}
    stale = dict(known)
    path, (size, mtime_ns, _) = listing[5][0], known[listing[5][0]]
    stale[path] = (size, mtime_ns + 1, "0" * 64)  # recorded at another modification time: must be read again
    read = []
    real_hash = streaming.file_sha256
    monkeypatch.setattr(streaming, "file_sha256", lambda file: read.append(file) or real_hash(file))
    again = hash_pool_files(pool_folder, listing, stale)
    assert [file.name for file in read] == [os.path.basename(path)]
    assert again == first
    assert pool_digest(again) == pool_digest(first) != pool_digest(first[1:])


def test_decoded_batches_are_the_files_in_order_whatever_the_threads(pool_folder):
    paths = [path for path, _, _ in list_image_files(pool_folder)]
    expected = np.stack([read_image(pool_folder / path, 16) for path in paths])
    for batch_size, workers in ((7, 3), (64, 1), (500, 2)):
        batches = list(decoded_batches(pool_folder, paths, 16, batch_size, workers))
        assert all(len(batch) <= batch_size for batch in batches)
        assert np.array_equal(np.concatenate(batches), expected)


def test_a_file_that_cannot_be_decoded_is_named(pool_folder, tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(ToolkitError, match="cannot read image .*a.png"):
        list(decoded_batches(tmp_path, ["a.png"], 16))


def test_streamed_rows_are_written_whole_or_not_at_all(tmp_path):
    batches = [np.full((4, 2, 2, 3), value, np.uint8) for value in range(3)]
    target = tmp_path / "cache" / "rows.npy"
    (rows,) = streamed_rows(iter(batches), 12, lambda batch: [batch.reshape(len(batch), -1)[:, :2] * 2.0],
                            [target])
    assert isinstance(rows, np.memmap) and rows.shape == (12, 2) and rows.dtype == np.float32
    assert np.array_equal(rows[:, 0], np.repeat([0.0, 2.0, 4.0], 4))

    def failing():
        yield batches[0]
        raise ToolkitError("disk on fire")

    with pytest.raises(ToolkitError, match="disk on fire"):
        streamed_rows(failing(), 8, lambda batch: [batch.reshape(len(batch), -1)], [tmp_path / "half.npy"])
    assert not list(tmp_path.glob("*half*"))
    with pytest.raises(ToolkitError, match="yielded 4 images where 8 were listed"):
        streamed_rows(iter(batches[:1]), 8, lambda batch: [batch.reshape(len(batch), -1)], [tmp_path / "short.npy"])
    assert not list(tmp_path.glob("*short*"))


def test_the_streamed_model_pass_equals_the_in_memory_one_and_is_cached(pool_folder, tmp_path):
    """Probabilities and embeddings from the streamed pass match the in-memory batched pass over the same decoded
    images; a second call reads the cache instead of decoding (proved by removing the pool folder's files)."""
    import keras

    from altoolkit.model import probabilities_and_embeddings
    from altoolkit.outputs import streamed_model_outputs

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(
        keras.layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    pool = scan_file_pool(pool_folder, 16)
    probabilities, embeddings = streamed_model_outputs(model, "model-a", pool, tmp_path)
    expected = probabilities_and_embeddings(model, pool.images(range(len(pool))))
    assert np.allclose(probabilities, expected[0], atol=1e-6) and np.allclose(embeddings, expected[1], atol=1e-6)

    gone = FilePool(tmp_path / "nowhere", pool.files, pool.size)
    again, _ = streamed_model_outputs(model, "model-a", gone, tmp_path)
    assert np.array_equal(again, probabilities)
    with pytest.raises(ToolkitError, match="cannot read image"):
        streamed_model_outputs(model, "model-b", gone, tmp_path)


def test_a_pool_representation_is_fitted_on_the_pool_alone_and_applies_to_other_images(pool_folder, tmp_path,
                                                                                     digits_dataset):
    from altoolkit.label_free import LabelFreeRepresentation, PoolRepresentation, RepresentationSettings

    pool = scan_file_pool(pool_folder, 16)
    settings = RepresentationSettings(pixel_components=8)
    streamed = PoolRepresentation("pixels", pool, settings=settings, seed=3, cache_dir=tmp_path)
    images = pool.images(range(len(pool)))
    direct = LabelFreeRepresentation("pixels", settings, seed=3).fit(images)
    assert np.allclose(streamed.pool_rows(), direct.transform(images), atol=1e-4)
    labeled = np.stack([read_image(pool_folder / "001.png", 16)] * 2)
    assert np.allclose(streamed.rows_for(labeled), direct.transform(labeled), atol=1e-4)
    assert len(list((tmp_path / "pool").glob("pixels_*.npy"))) == 1


def test_the_cache_keeps_within_its_limit_by_deleting_the_least_recently_used(tmp_path, pool_folder):
    files = []
    for age, name in enumerate(("old", "middle", "new")):
        file = tmp_path / "pool" / f"{name}.npy"
        file.parent.mkdir(exist_ok=True)
        np.save(file, np.zeros(1000, np.float32))
        os.utime(file, ns=(10**18 + age * 10**9,) * 2)
        files.append(file)
    size = files[0].stat().st_size
    assert enforce_cache_limit(tmp_path, 10 * size) == []
    assert enforce_cache_limit(tmp_path, 2 * size, keep=[files[0]]) == [files[1]]
    assert files[0].exists() and files[2].exists()

    pool = scan_file_pool(pool_folder, 8)
    cached_pool_arrays(tmp_path, ("first",), {"n": 1}, pool, lambda batch: [batch.reshape(len(batch), -1)[:, :3]],
                       limit_bytes=1)
    assert [file.name.split("_")[0] for file in (tmp_path / "pool").iterdir()] == ["first"]


def test_a_killed_runs_half_written_pool_array_is_removed_by_the_next_write(tmp_path, pool_folder):
    """A process killed while streaming leaves a temporary beside the cache file; the next run that writes that
    file deletes it (its owner is gone) and never reads it."""
    import subprocess
    import sys

    pool = scan_file_pool(pool_folder, 8)
    script = ("import sys, numpy as np\n"
              "from altoolkit.feature_cache import cached_pool_arrays\n"
              "from altoolkit.streaming import scan_file_pool\n"
              f"pool = scan_file_pool({str(pool_folder)!r}, 8)\n"
              "def compute(batch):\n"
              "    sys.stdout.write('started\\n'); sys.stdout.flush(); import time; time.sleep(60)\n"
              f"cached_pool_arrays({str(tmp_path)!r}, ('rows',), {{'n': 1}}, pool, compute)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "started"
    finally:
        process.kill()
        process.wait()
    leftovers = list((tmp_path / "pool").glob(".rows_*"))
    assert len(leftovers) == 1
    (rows,) = cached_pool_arrays(tmp_path, ("rows",), {"n": 1}, pool,
                                 lambda batch: [batch.reshape(len(batch), -1)[:, :2]])
    assert len(rows) == 70 and not any(path.exists() for path in leftovers)


def test_a_pool_file_name_that_is_not_utf8_is_one_clear_error(tmp_path, pool_folder):
    import shutil

    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(pool_folder / "001.png", os.fsdecode(bytes(pool) + b"/bad\xff.png"))
    with pytest.raises(ToolkitError, match=r"pool file name bad\\xff.png is not valid UTF-8: rename it"):
        list_image_files(pool)


def test_fits_on_wide_rows_sample_fewer_of_them_so_their_memory_stays_bounded(monkeypatch):
    """10,000 flattened 32-pixel images (120 MB of float32) are within the fit's budget, as before; 128-pixel
    images would be 2 GB, so fewer are sampled; projecting goes in chunks of bounded bytes with the same result."""
    from altoolkit.sampling import FIT_SAMPLE, FIT_SAMPLE_BYTES, fit_sample_size, fit_sampled_pca, project_rows

    assert fit_sample_size(32 * 32 * 3) == FIT_SAMPLE
    wide = fit_sample_size(128 * 128 * 3)
    assert wide * 128 * 128 * 3 * 4 <= FIT_SAMPLE_BYTES < (wide + 1) * 128 * 128 * 3 * 4
    rows = np.random.default_rng(0).random((300, 40, 40, 3)).astype(np.float32)
    pca = fit_sampled_pca(rows, 5, seed=0)
    import altoolkit.sampling as sampling

    whole = pca.transform(rows.reshape(300, -1)).astype(np.float32)
    monkeypatch.setattr(sampling, "TRANSFORM_BYTES", 7 * 40 * 40 * 3 * 4)  # seven rows a step
    assert np.allclose(project_rows(pca, rows), whole, atol=1e-5)
