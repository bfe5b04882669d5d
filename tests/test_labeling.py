"""The human oracle without a browser: pool ids, the label store, export/import, label.py select and retraining."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import label
from altoolkit.errors import ToolkitError
from altoolkit.labeling.exports import (CONFIG_FILENAME, MANIFEST_FILENAME, TASKS_FILENAME, ImportCounts, export_batch,
                                        from_spreadsheet_cell, import_labels, read_labels_file)
from altoolkit.labeling.pool import image_id, is_image_id, pool_file, scan_pool, store_labeled_images
from altoolkit.labeling.schema import SCHEMA_VERSION, VERSION_1_TABLES
from altoolkit.labeling.store import BatchItem, LabelStore, RowDamage, StoreBusyError

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("cat", "dog", "bird")
POOL_SIZE = 12


def save_png(array: np.ndarray, file: Path) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(file)


@pytest.fixture
def small_pool(tmp_path, digits_dataset):
    """Twelve digit images as PNGs, a few in a sub-folder, and the ids scan_pool gives them."""
    pool = tmp_path / "pool"
    for index in range(POOL_SIZE):
        folder = pool / "more" if index % 4 == 0 else pool
        save_png(digits_dataset.x_train[200 + index], folder / f"img_{index:02d}.png")
    return pool, scan_pool(pool)


@pytest.fixture
def project(tmp_path, small_pool):
    """A store with the pool and one round whose batch is the first eight images."""
    pool, images = small_pool
    store = LabelStore(tmp_path / "project", class_names=CLASSES)
    store.add_images(images)
    store.set_meta("pool", str(pool))
    items = [BatchItem(image.image_id, CLASSES[i % 3], {CLASSES[i % 3]: 0.6, CLASSES[(i + 1) % 3]: 0.3,
                                                         CLASSES[(i + 2) % 3]: 0.1}, {"margin": 0.3, "entropy": 0.9})
             for i, image in enumerate(images[:8])]
    round_id = store.start_round("margin", {"budget": 8}, items)
    yield store, round_id, items
    store.close()


def test_pool_ids_are_stable_across_moves_and_distinguish_paths(small_pool, tmp_path):
    pool, images = small_pool
    moved = shutil.copytree(pool, tmp_path / "elsewhere" / "pool_moved")
    assert [image.image_id for image in scan_pool(moved)] == [image.image_id for image in images]
    assert len({image.image_id for image in images}) == POOL_SIZE
    assert all(is_image_id(image.image_id) for image in images)
    first = images[0]
    assert image_id(first.sha256, "renamed.png") != first.image_id
    assert {image.relative_path for image in images} >= {"more/img_00.png", "img_01.png"}
    assert not is_image_id("../labels.sqlite") and not is_image_id(first.image_id.upper())


def test_store_keeps_history_and_the_latest_label_counts(project, tmp_path):
    store, round_id, items = project
    first, second = items[0].image_id, items[1].image_id
    store.set_label(first, "cat", labeler="ann", round_id=round_id)
    store.set_label(first, "dog", labeler="bob", round_id=round_id)
    store.set_label(second, "bird", labeler="ann", round_id=round_id)
    store.clear_label(second, labeler="ann", round_id=round_id)
    with LabelStore(tmp_path / "project") as reopened:
        assert reopened.current_labels() == {first: "dog"}
        assert [(event.class_name, event.labeler) for event in reopened.history(first)] == [("cat", "ann"),
                                                                                          ("dog", "bob")]
        assert [event.class_name for event in reopened.history(second)] == ["bird", None]
        assert reopened.class_names == CLASSES
    connection = sqlite3.connect(store.path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_store_rejects_unknown_classes_and_ids(project):
    store, round_id, items = project
    with pytest.raises(ToolkitError, match="unknown class 'horse'"):
        store.set_label(items[0].image_id, "horse", labeler="ann")
    with pytest.raises(ToolkitError, match="unknown image id"):
        store.set_label("0" * 20, "cat", labeler="ann")
    assert store.current_labels() == {}


def test_store_refuses_other_classes_and_missing_projects(project, tmp_path):
    store, _, _ = project
    with pytest.raises(ToolkitError, match="labels classes cat, dog, bird, not cat, dog"):
        LabelStore(tmp_path / "project", class_names=["cat", "dog"])
    with pytest.raises(ToolkitError, match="no label store"):
        LabelStore(tmp_path / "nowhere")


def test_a_version_1_store_is_migrated_and_keeps_its_labels(tmp_path):
    path = tmp_path / "old" / "labels.sqlite"
    path.parent.mkdir()
    connection = sqlite3.connect(path)
    for statement in VERSION_1_TABLES.split(";"):
        if statement.strip():
            connection.execute(statement)
    connection.execute("INSERT INTO meta VALUES ('class_names', ?)", (json.dumps(list(CLASSES)),))
    connection.execute("INSERT INTO images VALUES ('a' || printf('%019d', 1), 'x.png', 'ff', 0)")
    connection.execute("INSERT INTO labels (image_id, class_name, labeler, labeled_at) "
                       "VALUES ('a' || printf('%019d', 1), 'dog', 'ann', 0)")
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    with LabelStore(path.parent) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.current_labels() == {"a" + "0" * 18 + "1": "dog"}
        assert store.history("a" + "0" * 18 + "1")[0].source == "unknown"
        store.set_label("a" + "0" * 18 + "1", "cat", labeler="bob", source="csv")
        assert store.history("a" + "0" * 18 + "1")[-1].source == "csv"


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "labels.sqlite"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(ToolkitError, match="newer al-toolkit"):
        LabelStore(path)


def folder_bytes(folder: Path) -> dict[str, bytes | None]:
    """Every file under ``folder`` by relative path (folders as None), to compare byte for byte."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
            for path in sorted(folder.rglob("*"))}


def sqlite_file(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        connection.execute(statement)
    connection.close()


def healthy_store(path: Path) -> None:
    with LabelStore(path.parent, class_names=CLASSES) as store:
        store.set_meta("pool", "pool")


NOT_A_USABLE_STORE = {
    "newer schema": (lambda path: (healthy_store(path),
                                   sqlite_file(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")),
                     "newer al-toolkit"),
    "unrelated database": (lambda path: sqlite_file(path, "CREATE TABLE customers (name TEXT)",
                                                    "INSERT INTO customers VALUES ('ann')"),
                           r"not an al-toolkit label store \(tables: 'customers'\)"),
    "unrelated WAL database": (lambda path: sqlite_file(path, "PRAGMA journal_mode=WAL", "PRAGMA user_version = 2",
                                                        "CREATE TABLE labels (x)"),
                               "not an al-toolkit label store"),
    "not SQLite": (lambda path: path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8), "not an SQLite database"),
    "empty file": (lambda path: path.write_bytes(b""), "is an empty file"),
    "SQLite header only": (lambda path: path.write_bytes(b"SQLite format 3\x00"), "not an SQLite database"),
    "no class names": (lambda path: (healthy_store(path),
                                     sqlite_file(path, "DELETE FROM meta WHERE key = 'class_names'")),
                       r"meta 'class_names': is missing"),
    "class names not JSON": (lambda path: (healthy_store(path), sqlite_file(
        path, """UPDATE meta SET value = '["cat", "dog"' WHERE key = 'class_names'""")),
                             r"meta 'class_names': is not valid JSON"),
}


@pytest.mark.parametrize("class_names", [None, CLASSES], ids=["open", "create"])
@pytest.mark.parametrize("case", sorted(NOT_A_USABLE_STORE))
def test_a_file_that_is_not_a_usable_store_is_refused_unchanged(case, class_names, tmp_path):
    make, message = NOT_A_USABLE_STORE[case]
    project = tmp_path / "project"
    project.mkdir()
    make(project / "labels.sqlite")
    before = folder_bytes(project)
    with pytest.raises(ToolkitError, match=message) as refused:
        LabelStore(project, class_names=class_names)
    assert "\n" not in str(refused.value)
    assert folder_bytes(project) == before


def test_a_new_store_appears_whole_or_not_at_all(tmp_path):
    with pytest.raises(ToolkitError, match="at least two classes"):
        LabelStore(tmp_path / "one", class_names=["cat"])
    assert not (tmp_path / "one").exists()
    with LabelStore(tmp_path / "project", class_names=CLASSES) as store:
        assert store.schema_version == SCHEMA_VERSION and store.class_names == CLASSES
    assert sorted(path.name for path in (tmp_path / "project").iterdir()) == ["labels.sqlite"]


def test_a_write_that_cannot_get_the_database_in_time_changes_nothing_and_frees_the_store(project, tmp_path):
    _, _, items = project
    store = LabelStore(tmp_path / "project", busy_timeout=0.3)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreBusyError, match="is busy: another program has been writing to it for over 0.3 s"):
        store.set_label(items[0].image_id, "cat", labeler="ann")
    assert time.monotonic() - started < 3
    holder.execute("ROLLBACK")
    holder.close()
    writers = [threading.Thread(target=store.set_label, args=(item.image_id, "dog"), kwargs={"labeler": "bob"},
                                daemon=True) for item in items[:4]]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=10)
    assert not any(writer.is_alive() for writer in writers), "a write is stuck on the store's lock"
    assert store.current_labels() == {item.image_id: "dog" for item in items[:4]}
    store.close()


def damage(store_path: Path, items: list[BatchItem]) -> None:
    """Change the store as a hostile user or a broken tool would: an unknown class, unreadable JSON."""
    sqlite_file(store_path,
                f"INSERT INTO labels (image_id, class_name, labeler, labeled_at, round_id, source) "
                f"VALUES ('{items[2].image_id}', 'horse', 'mallory', 0, 1, 'page')",
                """UPDATE batch_items SET probabilities = '{"cat": 0.6' WHERE position = 1""",
                "UPDATE rounds SET parameters = '[1, 2]' WHERE id = 1")


def test_reading_a_damaged_row_is_an_error_that_names_it(project):
    store, round_id, items = project
    store.set_label(items[0].image_id, "cat", labeler="ann")
    damage(store.path, items)
    with pytest.raises(ToolkitError, match=r"labels row 2: class 'horse' is not one of the project's classes"):
        store.current_labels()
    with pytest.raises(ToolkitError, match=r"batch_items round 1 position 1: probabilities is not valid JSON"):
        store.batch(round_id)
    with pytest.raises(ToolkitError, match=r"rounds round 1: parameters is not a JSON object"):
        store.rounds()
    assert store.current_labels(skip_damaged=True) == {items[0].image_id: "cat"}
    assert store.batch_image_ids(round_id) == [item.image_id for item in items]
    assert store.damaged_rows() == [
        RowDamage("rounds", "round 1", "parameters is not a JSON object"),
        RowDamage("batch_items", "round 1 position 1", "probabilities is not valid JSON"),
        RowDamage("labels", "row 2", "class 'horse' is not one of the project's classes")]


def test_status_shows_everything_readable_and_names_the_damaged_rows(project, tmp_path, capsys):
    store, _, items = project
    store.set_label(items[0].image_id, "cat", labeler="ann")
    store.close()
    damage(store.path, items)
    before = folder_bytes(tmp_path / "project")
    assert label.main(["status", "--project", str(tmp_path / "project")]) == 2
    output = capsys.readouterr()
    assert output.out.splitlines() == [f"{store.path}: {POOL_SIZE} pool images, 1 labeled",
                                       "labels per class: cat 1, dog 0, bird 0",
                                       "round 1: margin, 8 images, 1 labeled"]
    (line,) = output.err.splitlines()
    assert line.startswith(f"error: {store.path} has 3 damaged row(s), left out of the status above (rounds round 1")
    assert "labels row 2: class 'horse'" in line and "restore it from a backup" in line
    assert folder_bytes(tmp_path / "project") == before


def test_status_without_readable_class_names_still_counts_images_labels_and_rounds(project, tmp_path, capsys):
    store, _, items = project
    store.set_label(items[0].image_id, "cat", labeler="ann")
    sqlite_file(store.path, "UPDATE meta SET value = '{' WHERE key = 'class_names'")
    assert label.main(["status", "--project", str(tmp_path / "project")]) == 2
    output = capsys.readouterr()
    assert output.out.splitlines() == [f"{store.path}: {POOL_SIZE} pool images, 1 labeled",
                                       "round 1: margin, 8 images, 1 labeled"]
    assert "meta 'class_names': is not valid JSON" in output.err


def test_export_writes_the_manifest_label_studio_files_and_images(project, tmp_path):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "batch")
    rows = list(csv.DictReader((batch / MANIFEST_FILENAME).open()))
    assert [row["id"] for row in rows] == [item.image_id for item in items]
    assert rows[0]["predicted_class"] == "cat" and rows[0]["top1_class"] == "cat"
    assert float(rows[0]["top2_probability"]) == pytest.approx(0.3)
    assert rows[0]["score_margin"] == "0.3" and rows[0]["label"] == ""
    for row in rows:
        assert (batch / row["file"]).read_bytes() == (Path(store.get_meta("pool")) / row["source_path"]).read_bytes()
    tasks = json.loads((batch / TASKS_FILENAME).read_text())
    assert tasks[0]["data"]["image_id"] == items[0].image_id
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=batch/{rows[0]['file']}"
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == ["cat"]
    config = (batch / CONFIG_FILENAME).read_text()
    assert all(f'<Choice value="{name}"/>' in config for name in CLASSES)


def label_studio_export(tasks: list[dict], answers: dict[str, str]) -> list[dict]:
    """What Label Studio's JSON export holds after a person answered some of the imported tasks."""
    exported = []
    for number, task in enumerate(tasks, start=1):
        answer = answers.get(task["data"]["image_id"])
        annotations = [] if answer is None else [
            {"id": 100 + number, "was_cancelled": True,
             "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                         "value": {"choices": ["bird"]}}]},
            {"id": 200 + number, "was_cancelled": False,
             "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                         "value": {"choices": [answer]}}]}]
        exported.append({"id": number, "data": task["data"], "annotations": annotations,
                         "predictions": task["predictions"]})
    return exported


def test_label_studio_export_round_trips_through_import(project, tmp_path):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "batch")
    tasks = json.loads((batch / TASKS_FILENAME).read_text())
    answers = {items[0].image_id: "dog", items[3].image_id: "cat", items[5].image_id: "dog"}
    export_file = tmp_path / "project-1-at-2026.json"
    export_file.write_text(json.dumps(label_studio_export(tasks, answers)))
    labels, source = read_labels_file(export_file)
    counts = import_labels(store, round_id, labels, labeler="ann", source=source, file_name=export_file.name)
    assert counts == ImportCounts(new=3, changed=0, unchanged=0)
    assert store.current_labels() == answers
    assert {event.source for image in answers for event in store.history(image)} == {"label-studio"}


def test_label_studio_json_min_export_is_read_too(tmp_path):
    file = tmp_path / "min.json"
    file.write_text(json.dumps([{"image": "x", "image_id": "a" * 20, "label": "dog", "id": 7},
                                {"image": "y", "image_id": "b" * 20, "id": 8}]))
    labels, _ = read_labels_file(file)
    assert [(item.image_id, item.class_name, item.where) for item in labels] == [("a" * 20, "dog", "task 7")]


def filled_manifest(batch: Path, answers: dict[int, str]) -> Path:
    """The exported manifest with the label column filled in for the given row numbers (0-based)."""
    rows = list(csv.reader((batch / MANIFEST_FILENAME).open()))
    label_column = rows[0].index("label")
    for number, answer in answers.items():
        rows[number + 1][label_column] = answer
    target = batch / "filled.csv"
    with target.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return target


def test_csv_import_with_an_unknown_class_changes_nothing_and_names_the_line(project, tmp_path):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "batch")
    store.set_label(items[0].image_id, "cat", labeler="ann")
    filled = filled_manifest(batch, {0: "dog", 1: "bird", 4: "horse"})
    with pytest.raises(ToolkitError, match=r"filled.csv: 1 problem\(s\), nothing imported .*line 6: unknown class "
                                           r"'horse'"):
        main_import(store, filled)
    assert store.current_labels() == {items[0].image_id: "cat"}
    assert len(store.history(items[1].image_id)) == 0


def test_csv_import_reports_ids_outside_the_batch_and_duplicates(project, tmp_path, small_pool):
    store, round_id, items = project
    _, images = small_pool
    file = tmp_path / "labels.csv"
    file.write_text("id,label\n"
                    f"{items[0].image_id},dog\n"
                    f"{images[10].image_id},cat\n"
                    f"{items[0].image_id},cat\n"
                    "../../etc/passwd,cat\n"
                    f"{items[2].image_id},\n")
    with pytest.raises(ToolkitError) as caught:
        main_import(store, file)
    message = str(caught.value)
    assert "3 problem(s), nothing imported" in message
    assert f"line 3: id '{images[10].image_id}' is not in round {round_id}'s batch" in message
    assert f"line 4: id {items[0].image_id} labeled again (first at line 2)" in message
    assert "line 5: id '../../etc/passwd'" in message
    assert store.current_labels() == {}


def test_a_filled_csv_imports_every_label_at_once(project, tmp_path):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "batch")
    main_import(store, filled_manifest(batch, {0: "dog", 2: "bird", 7: "cat"}))
    assert store.current_labels() == {items[0].image_id: "dog", items[2].image_id: "bird",
                                      items[7].image_id: "cat"}


def test_import_reports_at_most_twenty_problems(project, tmp_path):
    store, _, _ = project
    file = tmp_path / "labels.csv"
    file.write_text("id,label\n" + "".join(f"{index:020x},cat\n" for index in range(25)))
    with pytest.raises(ToolkitError, match=r"25 problem\(s\).*line 21: .*; and 5 more$"):
        main_import(store, file)


def main_import(store: LabelStore, file: Path) -> None:
    labels, source = read_labels_file(file)
    import_labels(store, store.latest_round(), labels, labeler="ann", source=source, file_name=file.name)


def test_import_command_prints_one_error_line(project, tmp_path, capsys):
    store, _, items = project
    file = tmp_path / "labels.csv"
    file.write_text(f"id,label\n{items[0].image_id},horse\n")
    assert label.main(["import", "--project", str(tmp_path / "project"), str(file)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 2: unknown class 'horse'" in err


def test_a_pool_file_that_changed_or_went_missing_is_never_read_for_its_label(project, small_pool, capsys):
    store, round_id, items = project
    pool, images = small_pool
    for item, class_name in zip(items[:3], CLASSES):
        store.set_label(item.image_id, class_name, labeler="ann", round_id=round_id)
    by_id = {image.image_id: image for image in images}
    changed, missing = by_id[items[0].image_id], by_id[items[1].image_id]
    shutil.copyfile(pool / images[11].relative_path, pool / changed.relative_path)
    (pool / missing.relative_path).unlink()
    with pytest.raises(ToolkitError, match=f"{changed.relative_path} changed since it was selected"):
        pool_file(pool, changed)
    with pytest.raises(ToolkitError, match=rf"2 labeled pool images changed or are missing .*"
                                           rf"{changed.relative_path} \(changed\), {missing.relative_path} "
                                           rf"\(missing\).*--skip-changed-images"):
        store_labeled_images(store, pool, 8)
    pixels, classes = store_labeled_images(store, pool, 8, skip_changed=True)
    assert pixels.shape == (1, 8, 8, 3) and classes.tolist() == [CLASSES.index("bird")]
    warning = capsys.readouterr().err
    assert warning.startswith("warning: left out the labels of 2 changed or missing pool images: ")
    assert warning.count("\n") == 1 and changed.relative_path in warning and missing.relative_path in warning


def test_retraining_can_leave_out_the_labels_of_changed_files(tmp_path, small_pool, digits_dataset, capsys):
    import train
    from altoolkit.data import load_dataset

    pool, images = small_pool
    classes = ("bird", "cat", "dog")
    for number, class_name in enumerate(classes):
        for index in range(4):
            save_png(digits_dataset.x_train[10 * number + index], tmp_path / "labeled" / class_name / f"{index}.png")
    dataset = load_dataset("folder", path=tmp_path / "labeled", image_size=8)
    with LabelStore(tmp_path / "p", class_names=classes) as store:
        store.add_images(images)
        store.set_meta("pool", str(pool))
        for image, class_name in zip(images[:3], classes):
            store.set_label(image.image_id, class_name, labeler="ann")
    shutil.copyfile(pool / images[5].relative_path, pool / images[0].relative_path)
    with pytest.raises(ToolkitError, match=rf"{images[0].relative_path} \(changed\)"):
        train.dataset_with_store_labels(dataset, tmp_path / "p", None)
    combined = train.dataset_with_store_labels(dataset, tmp_path / "p", None, skip_changed_images=True)
    assert len(combined.x_train) == len(dataset.x_train) + 2
    assert "+ 2 labels from" in combined.source
    assert images[0].relative_path in capsys.readouterr().err


def test_export_refuses_a_batch_image_that_changed(project, small_pool, tmp_path):
    store, round_id, items = project
    pool, images = small_pool
    shutil.copyfile(pool / images[11].relative_path, pool / store.image(items[2].image_id).relative_path)
    with pytest.raises(ToolkitError, match=r"1 images of round 1's batch changed or missing .*\(changed\)"):
        export_batch(store, round_id, pool, tmp_path / "batch")
    assert not (tmp_path / "batch").exists()


FORMULA_CLASSES = ('=HYPERLINK("http://evil.example","open")', "'quoted", "+plus", "-minus", "@at", "\tTab", "plain")
FORMULA_FILES = ("=cmd|' -C calc'!A0.png", "-2+3.png", "@SUM(A1).png", "'apostrophe.png", "\rreturn.png", "ok.png")


def test_export_neutralises_spreadsheet_formulas_and_import_restores_the_names(tmp_path, digits_dataset):
    pool = tmp_path / "pool"
    for index, name in enumerate(FORMULA_FILES):
        save_png(digits_dataset.x_train[index], pool / name)
    images = scan_pool(pool)
    store = LabelStore(tmp_path / "project", class_names=FORMULA_CLASSES)
    store.add_images(images)
    items = [BatchItem(image.image_id, FORMULA_CLASSES[index],
                       {FORMULA_CLASSES[index]: 0.5, FORMULA_CLASSES[index - 1]: 0.3, FORMULA_CLASSES[index - 2]: 0.2},
                       {"margin": 0.2})
             for index, image in enumerate(images)]
    round_id = store.start_round("margin", {"budget": len(items)}, items)
    batch = export_batch(store, round_id, pool, tmp_path / "batch")
    rows = list(csv.reader((batch / MANIFEST_FILENAME).open(newline="")))
    assert not [cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    header = rows[0]
    sources = sorted(from_spreadsheet_cell(row[header.index("source_path")]) for row in rows[1:])
    assert sources == sorted(FORMULA_FILES)
    for row in rows[1:]:
        row[header.index("label")] = row[header.index("predicted_class")]
    filled = tmp_path / "filled.csv"
    with filled.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    labels, source = read_labels_file(filled)
    assert import_labels(store, round_id, labels, labeler="ann", source=source, file_name="filled.csv").new == 6
    assert store.current_labels() == {item.image_id: item.predicted_class for item in items}
    store.close()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_utf8_with_or_without_bom_and_utf16_with_bom_are_read(encoding, tmp_path):
    file = tmp_path / "labels.csv"
    file.write_bytes(f"id,label\n{'a' * 20},Zoë\n".encode(encoding))
    labels, _ = read_labels_file(file)
    assert [(label.image_id, label.class_name) for label in labels] == [("a" * 20, "Zoë")]


def test_class_names_match_despite_stray_spaces_unless_that_is_ambiguous(tmp_path, small_pool):
    pool, images = small_pool
    store = LabelStore(tmp_path / "spaces", class_names=("cat", " cat", "dog"))
    store.add_images(images)
    store.start_round("margin", {}, [BatchItem(image.image_id, "dog") for image in images[:3]])
    file = tmp_path / "labels.csv"
    file.write_text(f"id,label\n{images[0].image_id},dog  \n{images[1].image_id}, cat\n")
    main_import(store, file)
    assert store.current_labels() == {images[0].image_id: "dog", images[1].image_id: " cat"}
    file.write_text(f"id,label\n{images[2].image_id},  cat \n")
    with pytest.raises(ToolkitError, match=r"\(classes: cat, ' cat', dog\): line 2: class '  cat ' equals 'cat' and "
                                           r"' cat' but for leading or trailing spaces"):
        main_import(store, file)
    store.close()


def test_importing_the_same_labels_again_adds_no_history_rows(project, tmp_path, capsys):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "batch")
    filled = filled_manifest(batch, {0: "dog", 2: "bird", 7: "cat"})
    command = ["import", "--project", str(tmp_path / "project")]
    assert label.main([*command, str(filled)]) == 0
    assert "imported 3 labels into round 1 (3 new, 0 changed, 0 unchanged)" in capsys.readouterr().out
    assert label.main([*command, str(filled)]) == 0
    assert "imported 0 labels into round 1 (0 new, 0 changed, 3 unchanged)" in capsys.readouterr().out
    answers = {items[0].image_id: "dog", items[2].image_id: "bird", items[7].image_id: "cat"}
    tasks = json.loads((batch / TASKS_FILENAME).read_text())
    full_export = tmp_path / "export.json"
    full_export.write_text(json.dumps(label_studio_export(tasks, answers)))
    min_export = tmp_path / "export-min.json"
    min_export.write_text(json.dumps([{"id": number, "image": task["data"]["image"],
                                       "image_id": task["data"]["image_id"], "label": answers[task["data"]["image_id"]]}
                                      for number, task in enumerate(tasks, start=1)
                                      if task["data"]["image_id"] in answers]))
    for export in (full_export, min_export):
        assert label.main([*command, str(export)]) == 0
        assert "(0 new, 0 changed, 3 unchanged)" in capsys.readouterr().out
    assert all(len(store.history(image_id)) == 1 for image_id in answers)
    assert label.main([*command, str(filled_manifest(batch, {0: "cat", 1: "dog"}))]) == 0
    assert "imported 2 labels into round 1 (1 new, 1 changed, 0 unchanged)" in capsys.readouterr().out
    assert [event.class_name for event in store.history(items[0].image_id)] == ["dog", "cat"]


def test_label_studio_sync_tasks_are_skipped_or_matched_by_their_image_url(project, tmp_path):
    store, round_id, items = project
    batch = export_batch(store, round_id, store.get_meta("pool"), tmp_path / "round-001")
    tasks = json.loads((batch / TASKS_FILENAME).read_text())
    exported = label_studio_export(tasks, {items[0].image_id: "dog", items[3].image_id: "cat"})
    url = "/data/local-files/?d=round-001/"
    synced = [{"id": 100 + number, "data": {"image": url + file}, "annotations": [], "predictions": []}
              for number, file in enumerate(sorted(str(path.relative_to(batch)) for path in batch.rglob("*")
                                                   if path.is_file()))]
    by_file = {task["data"]["image"]: task for task in synced}
    by_file[f"{url}images/{items[4].image_id}.png"]["annotations"] = [
        {"id": 300, "was_cancelled": False, "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                        "value": {"choices": ["bird"]}}]}]
    by_file[f"{url}images/{items[0].image_id}.png"]["annotations"] = exported[0]["annotations"]
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(exported + synced))
    main_import(store, export_file)
    assert store.current_labels() == {items[0].image_id: "dog", items[3].image_id: "cat",
                                      items[4].image_id: "bird"}


def test_select_refuses_a_budget_below_one_before_touching_anything(tmp_path):
    with pytest.raises(ToolkitError, match=r"budget must be a positive integer \(at most 2\*\*63 - 1\), got 0"):
        label.select_batch(tmp_path / "p", tmp_path / "pool", tmp_path / "labeled", tmp_path / "m.keras", 0)
    assert not (tmp_path / "p").exists()


def test_select_then_retrain_then_select_from_what_is_still_unlabeled(digit_folders, tiny_digits_model, tmp_path,
                                                                      capsys):
    labeled, pool = digit_folders
    project = tmp_path / "project"
    common = ["--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
              "--model", str(tiny_digits_model.model_path)]
    assert label.main(["select", *common, "--budget", "8"]) == 0
    assert "round 1: 8 images selected with recommended" in capsys.readouterr().out
    with LabelStore(project) as store:
        batch = store.batch(1)
        assert len(batch) == len({item.image_id for item in batch}) == 8
        assert all(sum(item.probabilities.values()) == pytest.approx(1, abs=1e-2) for item in batch)
        assert set(batch[0].scores) == {"entropy", "margin", "novelty"}
        for item in batch[:5]:
            store.set_label(item.image_id, store.class_names[3], labeler="ann", round_id=1)
    assert label.main(["select", *common, "--budget", "40", "--strategy", "margin"]) == 0
    assert "left out 3 unlabeled images that round 1 selected already" in capsys.readouterr().out
    with LabelStore(project) as store:
        second = {item.image_id for item in store.batch(2)}
        assert len(second) == 32 and not second & {item.image_id for item in batch}
        command = label.retrain_command(store, project, 2)
    assert f"--label-store {project}" in command
    import train

    result = train.train_model(output_dir=tmp_path / "retrained", dataset_name="folder", data_path=labeled,
                               label_store=project, epochs=1, verbose=0)
    folder_train_size = 40
    assert result.metrics["train_size"] + round(0.1 * (folder_train_size + 5)) == folder_train_size + 5
    assert "+ 5 labels from" in result.metrics["dataset"]["source"]


def test_recommended_select_says_what_it_ran_and_records_it(digit_folders, tiny_digits_model, tmp_path, capsys):
    labeled, pool = digit_folders
    project = tmp_path / "project"
    assert label.main(["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
                       "--model", str(tiny_digits_model.model_path), "--budget", "6", "--strategy", "recommended"]) == 0
    assert "recommended: typicality over pixels features for 40 labels" in capsys.readouterr().out
    with LabelStore(project) as store:
        (record,) = store.rounds()
    assert record["strategy"] == "recommended" and record["batch_size"] == 6
    assert (record["parameters"]["ran"], record["parameters"]["representation"]) == ("typicality", "pixels")


def test_select_refuses_a_model_for_other_classes(digit_folders, tiny_digits_model, tmp_path):
    labeled, pool = digit_folders
    three_classes = tmp_path / "three"
    for name in ("0", "1", "2"):
        shutil.copytree(labeled / name, three_classes / name)
    with pytest.raises(ToolkitError, match="predicts 10 classes but .* has 3"):
        label.select_batch(tmp_path / "p", pool, three_classes, tiny_digits_model.model_path, 4)
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_select_can_leave_out_the_labels_of_changed_files_with_one_warning(digit_folders, tiny_digits_model,
                                                                           tmp_path, capsys):
    labeled, shared_pool = digit_folders
    pool = shutil.copytree(shared_pool, tmp_path / "pool")
    project = tmp_path / "project"
    common = ["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
              "--model", str(tiny_digits_model.model_path), "--strategy", "margin"]
    assert label.main([*common, "--budget", "4"]) == 0
    with LabelStore(project) as store:
        first = [store.image(item.image_id) for item in store.batch(1)]
        for image in first[:2]:
            store.set_label(image.image_id, "7", labeler="ann", round_id=1)
    other = next(file for file in sorted(pool.iterdir()) if file.name not in {image.relative_path for image in first})
    shutil.copyfile(other, pool / first[0].relative_path)
    capsys.readouterr()
    assert label.main([*common, "--budget", "3", "--skip-changed-images"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"warning: left out the labels of 1 changed or missing pool images: "
                            f"{first[0].relative_path} (changed)\n")
    assert "+ 1 in the store" in captured.out
    with LabelStore(project) as store:
        assert len(store.batch(2)) == 3


def start_server(project: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(REPO / "label.py"), "serve", "--project", str(project),
                                "--port", "0", "--no-browser", "--labeler", "ann"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://[^\s/]+/", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL in {line!r}: {process.stderr.read()}")
    return process, match.group(0)


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_labels_given_before_the_server_is_killed_are_all_kept(project, tmp_path):
    store, round_id, items = project
    store.close()
    process, url = start_server(tmp_path / "project")
    try:
        given = {}
        for item, class_name in zip(items[:5], ("dog", "bird", "cat", "dog", "bird")):
            progress = post(url + "api/label", {"id": item.image_id, "class": class_name})
            given[item.image_id] = class_name
            assert progress["labeled"] == len(given)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    with LabelStore(tmp_path / "project") as reopened:
        assert reopened.current_labels() == given


def test_serve_refuses_a_reachable_address_unless_asked(project, tmp_path, capsys):
    started = time.perf_counter()
    assert label.main(["serve", "--project", str(tmp_path / "project"), "--host", "0.0.0.0", "--no-browser"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert time.perf_counter() - started < 10


def test_select_measures_distances_on_label_free_patch_features_when_asked(digit_folders, tiny_digits_model,
                                                                          tmp_path):
    labeled, pool = digit_folders
    project = tmp_path / "project"
    assert label.main(["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
                       "--model", str(tiny_digits_model.model_path), "--budget", "4", "--strategy", "typicality",
                       "--representation", "patches"]) == 0
    with LabelStore(project) as store:
        parameters = store.rounds()[0]["parameters"]
        assert (parameters["ran"], parameters["representation"]) == ("typicality", "patches")
        assert len(store.batch(1)) == 4
    assert list((project / ".cache" / "features").glob("patches_*.npy"))


def test_select_without_a_model_fits_a_linear_learner_on_patch_features_and_retrains_with_it(
        digit_folders, digits_dataset, tmp_path, capsys):
    """The cold start: no trained model, the first batch from the label-free features, predictions from a
    logistic regression on the labeled folder; the round's retraining command keeps that learner."""
    labeled, pool = digit_folders
    project = tmp_path / "project"
    common = ["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled)]
    assert label.main([*common, "--budget", "20"]) == 0
    out = capsys.readouterr().out
    assert "recommended: typicality over patches features for 40 labels" in out
    with LabelStore(project) as store:
        (record,) = store.rounds()
        batch = store.batch(1)
        command = label.retrain_command(store, project, 1)
    assert record["parameters"]["model"] is None
    assert (record["parameters"]["learner"], record["parameters"]["ran"],
            record["parameters"]["representation"]) == ("linear", "typicality", "patches")
    assert len({item.image_id for item in batch}) == 20
    assert all(sum(item.probabilities.values()) == pytest.approx(1, abs=1e-2) for item in batch)
    truth = {f"{index}.png": digits_dataset.class_names[digits_dataset.y_train[index]] for index in range(300, 340)}
    with LabelStore(project) as store:
        correct = sum(item.predicted_class == truth[store.image(item.image_id).relative_path] for item in batch)
    assert correct >= 12, f"{correct} of 20 predictions right: the linear learner on 5 digits per class is near chance"
    assert "--learner linear" in command
    assert list((project / ".cache" / "features").glob("patches_*.npy"))

    assert label.main([*common, "--budget", "5", "--strategy", "margin", "--representation", "pixels"]) == 0
    with LabelStore(project) as store:
        second = store.batch(2)
        assert store.rounds()[1]["parameters"]["representation"] == "pixels"
    assert len(second) == 5 and not {item.image_id for item in second} & {item.image_id for item in batch}

    with LabelStore(project) as store:
        for item in batch[:5]:
            store.set_label(item.image_id, truth[store.image(item.image_id).relative_path], labeler="ann",
                            round_id=1)
    import train

    result = train.train_model(output_dir=tmp_path / "retrained", dataset_name="folder", data_path=labeled,
                               label_store=project, learner="linear", verbose=0)
    assert result.metrics["recipe"]["learner"] == "linear"
    assert label.main([*common, "--model", str(result.model_path), "--budget", "3"]) == 0
    assert "for 45 labels" in capsys.readouterr().out
    with LabelStore(project) as store:
        assert store.rounds()[2]["parameters"]["learner"] == "linear"


def test_select_without_a_model_measures_on_a_pretrained_backbone_the_user_names(digit_folders, tiny_backbone,
                                                                                 tmp_path, capsys):
    """--representation backbone --backbone F: the cold start's learner and distances use that network's features
    (cached), the round records which network; a backbone without the representation, or the reverse, is a one-line
    error that leaves no project behind."""
    labeled, pool = digit_folders
    project = tmp_path / "project"
    common = ["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled), "--budget", "6",
              "--strategy", "coreset"]
    assert label.main([*common, "--representation", "backbone", "--backbone", str(tiny_backbone)]) == 0
    with LabelStore(project) as store:
        (record,) = store.rounds()
        assert len(store.batch(1)) == 6
    parameters = record["parameters"]
    assert (parameters["representation"], parameters["backbone"], parameters["learner"]) == (
        "backbone", str(tiny_backbone), "linear")
    assert list((project / ".cache" / "features").glob("backbone_*.npy"))
    capsys.readouterr()
    for extra, message in ((["--backbone", str(tiny_backbone)], "add it, or drop --backbone"),
                           (["--representation", "backbone"], "pass --backbone")):
        other = tmp_path / "other"
        assert label.main([*common[:2], str(other), *common[3:], *extra]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line
        assert not other.exists()


def test_select_without_a_model_refuses_strategies_that_need_one(digit_folders, tmp_path, capsys):
    labeled, pool = digit_folders
    assert label.main(["select", "--project", str(tmp_path / "p"), "--pool", str(pool), "--labeled", str(labeled),
                       "--budget", "3", "--strategy", "bald"]) == 2
    assert "bald" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_second_select_reuses_the_recorded_hashes_and_the_streamed_pool_arrays(digit_folders, tmp_path,
                                                                                 monkeypatch):
    """The pool is hashed and decoded once: the next round hashes no unchanged file and decodes no pool image (its
    label-free rows are read back from PROJECT/.cache/pool); a touched file is hashed again, and only it."""
    import altoolkit.streaming as streaming

    labeled, pool = digit_folders
    project = tmp_path / "project"
    common = ["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled), "--budget", "4",
              "--strategy", "margin"]
    assert label.main(common) == 0
    with LabelStore(project) as store:
        assert len(store.pool_file_hashes()) == 40
    hashed, decoded = [], []
    real_hash, real_read = streaming.file_sha256, streaming.read_image
    monkeypatch.setattr(streaming, "file_sha256", lambda file: hashed.append(file.name) or real_hash(file))
    monkeypatch.setattr(streaming, "read_image", lambda file, size: (decoded.append(file.name) if file.parent == pool
                                                                     else None) or real_read(file, size))
    assert label.main(common) == 0
    assert (hashed, decoded) == ([], [])  # the labeled folder's images are decoded: it is no pool
    assert len(list((project / ".cache" / "pool").glob("patches_*.npy"))) == 1
    status = os.stat(pool / "310.png")
    try:
        os.utime(pool / "310.png", ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
        assert label.main(common) == 0
    finally:
        os.utime(pool / "310.png", ns=(status.st_atime_ns, status.st_mtime_ns))  # the folder is shared: restore
    assert hashed == ["310.png"] and decoded == []  # same content, so the same pool and the same cached rows


def test_max_candidates_selects_among_a_seeded_sample_of_the_unlabeled_images(digit_folders, tmp_path, capsys):
    """--max-candidates 10: the whole pool is scored and cached, but the batch comes from a seeded sample of 10
    unlabeled images (the same sample for the same seed), and the round records it."""
    from altoolkit.sampling import seeded_subsample

    labeled, pool = digit_folders
    project = tmp_path / "project"
    assert label.main(["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled),
                       "--budget", "4", "--strategy", "margin", "--max-candidates", "10", "--seed", "7"]) == 0
    assert "selecting among a seeded sample of 10" in capsys.readouterr().out
    with LabelStore(project) as store:
        (record,) = store.rounds()
        batch = store.batch(1)
        paths = sorted(image.relative_path for image in store.images())
    sample = {paths[row] for row in seeded_subsample(40, 10, 7)}
    with LabelStore(project) as store:
        assert {store.image(item.image_id).relative_path for item in batch} <= sample
    assert (record["parameters"]["pool_size"], record["parameters"]["unlabeled"],
            record["parameters"]["max_candidates"]) == (10, 40, 10)
