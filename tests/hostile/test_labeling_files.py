"""Hostile labels files and pool folders: label.py import/export/select and train.py --label-store refuse each one.

Every bad input is generated here; each refusal is checked by the suite's contract (exit 2, one ``error:`` line, no
traceback, nothing under the test's folder created, changed or removed), so a refused import leaves the label store
exactly as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import label
import train
from altoolkit.labeling.exports import MAX_LABELS_FILE_BYTES
from altoolkit.labeling.pool import scan_pool
from altoolkit.labeling.store import BatchItem, LabelStore

CLASSES = ("bird", "cat", "dog")
"""The labeled folder's classes (sorted, as the folder loader orders them)."""
POOL_SIZE = 9
BATCH_SIZE = 6


def write_png(file: Path, seed: int, size: int = 16) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(file)


class Project:
    """A labeling project on disk: labeled folder, pool, and a store whose round 1 selected the first six images."""

    def __init__(self, root: Path):
        self.root, self.project, self.pool, self.labeled = root, root / "project", root / "pool", root / "labeled"
        for number, name in enumerate(CLASSES):
            for index in range(5):
                write_png(self.labeled / name / f"{index}.png", seed=100 + 10 * number + index)
        for index in range(POOL_SIZE):
            write_png(self.pool / f"img_{index}.png", seed=index)
        self.images = scan_pool(self.pool)
        with LabelStore(self.project, class_names=CLASSES) as store:
            store.add_images(self.images)
            store.set_meta("pool", str(self.pool))
            store.set_meta("labeled", str(self.labeled))
            store.start_round("margin", {"budget": BATCH_SIZE},
                              [BatchItem(image.image_id, CLASSES[index % 3], {CLASSES[index % 3]: 0.9})
                               for index, image in enumerate(self.images[:BATCH_SIZE])])
        self.batch_ids = [image.image_id for image in self.images[:BATCH_SIZE]]

    def file(self, name: str, content: bytes | str) -> Path:
        target = self.root / name
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        return target

    def label(self, count: int) -> None:
        with LabelStore(self.project) as store:
            for image_id, class_name in zip(self.batch_ids[:count], CLASSES * 3):
                store.set_label(image_id, class_name, labeler="ann", round_id=1)


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path)


def task(task_id: int, data: dict, annotations) -> dict:
    return {"id": task_id, "data": data, "annotations": annotations}


def choice_result(value) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": value}]


BAD_LABEL_FILES = {
    "cp1252 csv": ("labels.csv", lambda ids: f"id,label\n{ids[0]},cat\n{ids[1]},Zoë\n".encode("cp1252"),
                   "not UTF-8 text"),
    "latin-1 json": ("labels.json", lambda ids: json.dumps(
        [{"id": 1, "image_id": ids[0], "label": "café"}], ensure_ascii=False).encode("latin-1"), "not UTF-8 text"),
    "utf-16 without bom": ("labels.csv", lambda ids: f"id,label\n{ids[0]},cat\n".encode("utf-16-le"),
                           "UTF-16 without a byte-order mark"),
    "binary csv": ("labels.csv", lambda ids: bytes(range(256)) * 4, "not UTF-8 text"),
    "csv field over 128 KiB": ("labels.csv", lambda ids: f"id,label\n{ids[0]},cat\n{ids[1]},{'x' * 140_000}\n",
                               "128 KiB"),
    "duplicated label column": ("labels.csv", lambda ids: f"id,label,label\n{ids[0]},cat,dog\n",
                                "label more than once in its header"),
    "duplicated id column": ("labels.csv", lambda ids: f"id,id,label\n{ids[0]},{ids[1]},dog\n",
                             "id more than once in its header"),
    "unterminated quote": ("labels.csv", lambda ids: f'id,label\n{ids[0]},cat\n"{ids[1]},dog\n{ids[2]},bird\n',
                           "quote that is never closed"),
    "annotations not a list": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, {"result": choice_result({"choices": ["cat"]})})]),
        "task 7: 'annotations' is an object, expected a list"),
    "result a string": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, [{"result": "cat"}])]), "task 7: an annotation's 'result' is a string"),
    "result a dict": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, [{"result": {"choices": ["cat"]}}])]),
        "task 7: an annotation's 'result' is an object"),
    "value a list": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, [{"result": choice_result(["cat"])}])]), "'value' is a list"),
    "value null": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, [{"result": choice_result(None)}])]), "'value' is null"),
    "annotation not an object": ("export.json", lambda ids: json.dumps(
        [task(7, {"image_id": ids[0]}, ["cat"])]), "task 7: an annotation is a string"),
    "deeply nested json": ("export.json", lambda ids: "[" * 200_000 + "]" * 200_000, "nests JSON too deeply"),
    "a 5000-digit number": ("export.json", lambda ids: "[" + "9" * 5000 + "]", "is not JSON"),
    "two classes for one task": ("export.json", lambda ids: json.dumps(
        [{"id": 3, "image_id": ids[0], "label": {"choices": ["cat", "dog"]}}]), "task 3: expected one class"),
    "synced file task annotated": ("export.json", lambda ids: json.dumps(
        [task(1, {"image_id": ids[0]}, [{"result": choice_result({"choices": ["cat"]})}]),
         task(9, {"image": "/data/local-files/?d=round-001/manifest.csv"},
              [{"result": choice_result({"choices": ["dog"]})}])]),
        "task 9: no image_id, and its image URL names no file of the batch"),
    "one image given two classes": ("labels.csv", lambda ids: f"id,label\n{ids[0]},cat\n{ids[0]},dog\n",
                                    "labeled again (first at line 2) with another class"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABEL_FILES))
def test_import_refuses_a_bad_labels_file_and_records_nothing(case, project, refused):
    name, content, expected = BAD_LABEL_FILES[case]
    file = project.file(name, content(project.batch_ids))
    line = refused(label.main, ["import", "--project", project.project, file], project.root)
    assert expected in line


def test_import_refuses_a_labels_file_over_the_size_limit_without_reading_it(project, refused):
    file = project.root / "huge.json"
    with file.open("wb") as handle:
        handle.truncate(MAX_LABELS_FILE_BYTES + 1)
    line = refused(label.main, ["import", "--project", project.project, file], project.root)
    assert "larger than 64 MiB, the limit for a labels file" in line


def test_an_import_error_line_stays_short_with_long_values(project, refused):
    rows = "".join(f"{'f' * 5000}{index},{'c' * 5000}\n" for index in range(30))
    file = project.file("labels.csv", "id,label\n" + rows)
    line = refused(label.main, ["import", "--project", project.project, file], project.root)
    assert "30 problem(s), nothing imported" in line and "more" in line


def test_import_of_a_cp1252_csv_is_refused_in_a_real_process(project, refused_in_subprocess):
    file = project.file("labels.csv", f"id,label\n{project.batch_ids[0]},Zoë\n".encode("cp1252"))
    line = refused_in_subprocess(["label.py", "import", "--project", project.project, file], project.root)
    assert "save it as UTF-8" in line


def test_export_twice_without_overwrite_is_refused_and_keeps_the_first_batch(project, refused, capsys):
    assert label.main(["export", "--project", str(project.project)]) == 0
    line = refused(label.main, ["export", "--project", project.project], project.root)
    assert "exists already" in line and "--overwrite" in line
    assert label.main(["export", "--project", str(project.project), "--overwrite"]) == 0


def test_export_overwrites_only_a_batch_folder(project, refused):
    precious = project.root / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    line = refused(label.main, ["export", "--project", project.project, "--output-dir", precious, "--overwrite"],
                   project.root)
    assert "is not a batch folder" in line


def test_export_refuses_a_batch_image_whose_file_changed_or_went_missing(project, refused):
    shutil.copyfile(project.pool / "img_8.png", project.pool / "img_1.png")
    (project.pool / "img_2.png").unlink()
    line = refused(label.main, ["export", "--project", project.project], project.root)
    assert "2 images of round 1's batch changed or missing" in line
    assert "img_1.png (changed), img_2.png (missing)" in line


def train_arguments(project: Project) -> list:
    return ["--dataset", "folder", "--data-path", project.labeled, "--image-size", "32", "--epochs", "1",
            "--label-store", project.project, "--output-dir", project.root / "model", "--quiet"]


def test_retraining_refuses_a_label_whose_pool_file_now_holds_another_image(project, refused):
    project.label(3)
    shutil.copyfile(project.pool / "img_8.png", project.pool / "img_0.png")
    line = refused(train.main, train_arguments(project), project.root)
    assert "1 labeled pool images changed or are missing" in line
    assert "img_0.png (changed)" in line and "--skip-changed-images" in line


def test_retraining_refuses_a_label_whose_pool_file_is_gone(project, refused):
    project.label(3)
    (project.pool / "img_1.png").unlink()
    line = refused(train.main, train_arguments(project), project.root)
    assert "img_1.png (missing)" in line


def test_a_changed_file_whose_name_holds_a_newline_is_named_on_one_line(project, refused):
    (project.pool / "img_2.png").rename(project.pool / "evil\nname.png")
    with LabelStore(project.project) as store:
        store.add_images(scan_pool(project.pool))
        (evil,) = [image for image in store.images() if image.relative_path == "evil\nname.png"]
        store.set_label(evil.image_id, "cat", labeler="ann")
    shutil.copyfile(project.pool / "img_8.png", project.pool / "evil\nname.png")
    line = refused(train.main, train_arguments(project), project.root)
    assert "evil\\nname.png (changed)" in line
    file = project.file("labels\n.csv", b"id,label\n\xff,cat\n")
    assert "labels\\n.csv is not UTF-8" in refused(label.main, ["import", "--project", project.project, file],
                                                   project.root)


@pytest.mark.parametrize("budget", ["0", "-4"])
def test_select_refuses_a_budget_below_one(budget, project, refused):
    line = refused(label.main, ["select", "--project", project.project, "--pool", project.pool, "--labeled",
                                project.labeled, "--model", project.root / "model.keras", "--budget", budget],
                   project.root)
    assert "--budget" in line and "positive integer" in line


@pytest.fixture
def digit_folders(tmp_path, digits_dataset, tiny_digits_model):
    """A labeled folder (three digits per class) and a pool of twelve digits; the select arguments for them."""
    from PIL import Image

    for index in range(len(digits_dataset.x_train)):
        folder = tmp_path / "labeled" / digits_dataset.class_names[digits_dataset.y_train[index]]
        if not folder.is_dir() or len(list(folder.iterdir())) < 3:
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(digits_dataset.x_train[index]).save(folder / f"{index}.png")
    for index in range(400, 412):
        (tmp_path / "pool").mkdir(exist_ok=True)
        Image.fromarray(digits_dataset.x_train[index]).save(tmp_path / "pool" / f"{index}.png")
    return ["select", "--project", tmp_path / "project", "--pool", tmp_path / "pool", "--labeled",
            tmp_path / "labeled", "--model", tiny_digits_model.model_path]


@pytest.mark.slow
def test_select_from_a_pool_without_images_leaves_no_project_behind(digit_folders, tmp_path, refused):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no pictures here")
    arguments = [*digit_folders, "--budget", "2"]
    arguments[arguments.index("--pool") + 1] = empty
    line = refused(label.main, arguments, tmp_path)
    assert "holds no images" in line


@pytest.fixture
def digit_project(tmp_path, digit_folders):
    """A digits project made by `label.py select` (budget 4 of a 12-image pool), with two of the four labeled."""
    arguments = digit_folders
    assert label.main([*map(str, arguments), "--budget", "4", "--strategy", "margin"]) == 0
    with LabelStore(tmp_path / "project") as store:
        batch = [store.image(item.image_id) for item in store.batch(1)]
        for image in batch[:2]:
            store.set_label(image.image_id, "3", labeler="ann", round_id=1)
    return tmp_path, arguments, batch


@pytest.mark.slow
def test_select_refuses_a_label_whose_pool_file_changed(digit_project, refused):
    root, arguments, batch = digit_project
    other = next(path for path in sorted((root / "pool").iterdir())
                 if path.name not in {image.relative_path for image in batch})
    shutil.copyfile(other, root / "pool" / batch[0].relative_path)
    line = refused(label.main, [*arguments, "--budget", "2"], root)
    assert f"{batch[0].relative_path} (changed)" in line and "--skip-changed-images" in line


@pytest.mark.slow
def test_select_refuses_when_every_unlabeled_image_waits_in_an_open_round(digit_project, refused):
    root, arguments, batch = digit_project
    assert label.main([*map(str, arguments), "--budget", "8", "--strategy", "margin"]) == 0
    line = refused(label.main, [*arguments, "--budget", "2"], root)
    assert "every unlabeled image" in line and "waits in the batch of round 1, 2" in line
