"""Hostile label stores: every label.py command refuses a file that is not a usable store, a damaged row or a
read-only project with one ``error:`` line and changes nothing (no -wal or -shm file left behind either).

``serve`` runs in a real process with a time limit, so a server that starts instead of refusing fails the test
rather than hanging it. The read-only tests run label.py as an unprivileged user when the suite runs as root
(chmod alone does not stop root): the interpreter lives where only root may read, so the child imports what it
needs, then drops its privileges, then runs ``label.main``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

import label
from altoolkit.labeling.pool import scan_pool
from altoolkit.labeling.schema import SCHEMA_VERSION
from altoolkit.labeling.store import BatchItem, LabelStore

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("cat", "dog", "bird")
UNPRIVILEGED_ID = 65534
COMMANDS = ("status", "export", "import", "serve")


def make_project(root: Path) -> Path:
    """A healthy project under ``root``: four pool images, a round of three, the first one labeled dog, and
    ``inputs/labels.csv`` labeling the second one cat (for ``import``)."""
    pool = root / "pool"
    pool.mkdir(parents=True)
    for number in range(4):
        Image.new("RGB", (8, 8), (number * 60, 20, 90)).save(pool / f"image_{number}.png")
    images = scan_pool(pool)
    project = root / "project"
    with LabelStore(project, class_names=CLASSES) as store:
        store.add_images(images)
        store.set_meta("pool", str(pool))
        round_id = store.start_round("margin", {"budget": 3}, [
            BatchItem(image.image_id, "cat", {"cat": 0.5, "dog": 0.3, "bird": 0.2}, {"margin": 0.2})
            for image in images[:3]])
        store.set_label(images[0].image_id, "dog", labeler="ann", round_id=round_id)
    (root / "inputs").mkdir()
    (root / "inputs" / "labels.csv").write_text(f"id,label\n{images[1].image_id},cat\n")
    return project


def run_sql(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        connection.execute(statement)
    connection.close()


def unrelated_database(path: Path) -> None:
    path.unlink()
    run_sql(path, "CREATE TABLE customers (name TEXT)", "INSERT INTO customers VALUES ('ann')")


def unrelated_wal_database(path: Path) -> None:
    path.unlink()
    run_sql(path, "PRAGMA journal_mode=WAL", "CREATE TABLE orders (id INTEGER)")


def replaced_by(content: bytes):
    return lambda path: path.write_bytes(content)


def folder_instead(path: Path) -> None:
    path.unlink()
    (path / "inside").mkdir(parents=True)


def pipe_instead(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


NOT_A_STORE = {
    "newer schema": (lambda path: run_sql(path, "PRAGMA journal_mode=DELETE",
                                          f"PRAGMA user_version = {SCHEMA_VERSION + 1}"), "newer al-toolkit"),
    "unrelated database": (unrelated_database, "not an al-toolkit label store"),
    "unrelated WAL database": (unrelated_wal_database, "not an al-toolkit label store"),
    "zip file": (replaced_by(b"PK\x03\x04" + os.urandom(3000)), "not an SQLite database"),
    "empty file": (replaced_by(b""), "empty file"),
    "SQLite header only": (replaced_by(b"SQLite format 3\x00"), "not an SQLite database"),
    "a folder": (folder_instead, "is a folder"),
    "a named pipe": (pipe_instead, "is not a regular file"),
    "no class names": (lambda path: run_sql(path, "DELETE FROM meta WHERE key = 'class_names'"),
                       "meta 'class_names': is missing"),
}
"""A file at PROJECT/labels.sqlite that is not a usable store → what the error says."""

DAMAGED_ROWS = {
    "class names not JSON": ("""UPDATE meta SET value = '["cat", "dog"' WHERE key = 'class_names'""",
                             "meta 'class_names': is not valid JSON", COMMANDS),
    "one class name": ("""UPDATE meta SET value = '["cat"]' WHERE key = 'class_names'""",
                       "meta 'class_names': must name at least two", COMMANDS),
    "batch scores not JSON": ("UPDATE batch_items SET scores = '{\"margin\": ' WHERE position = 1",
                              "batch_items round 1 position 1: scores is not valid JSON", COMMANDS),
    "probabilities not numbers": ("""UPDATE batch_items SET probabilities = '{"cat": "high"}' WHERE position = 2""",
                                  "batch_items round 1 position 2: probabilities holds something other than",
                                  COMMANDS),
    "label of an unknown class": ("UPDATE labels SET class_name = 'horse' WHERE id = 1",
                                  "labels row 1: class 'horse' is not one of the project's classes",
                                  ("status", "serve")),
    "a 10,000-character class": ("UPDATE labels SET class_name = printf('%.10000c', 'x') WHERE id = 1",
                                 "labels row 1: class 'xxxxxxxx", ("status", "serve")),
    "round parameters not JSON": ("UPDATE rounds SET parameters = '{' WHERE id = 1",
                                  "rounds round 1: parameters is not valid JSON", ("status",)),
}
"""A row changed outside the toolkit → what the error line names → the commands that read it and must refuse."""


def command_line(command: str, project: Path) -> list[str]:
    """label.py's arguments for ``command`` on a project :func:`make_project` made."""
    arguments = [command, "--project", str(project)]
    if command == "import":
        arguments.append(str(project.parent / "inputs" / "labels.csv"))
    if command == "serve":
        arguments += ["--port", "0", "--no-browser"]
    return arguments


def check_refused(command: str, arguments: list[str], refused, refused_in_subprocess, *watched: Path) -> str:
    if command == "serve":
        return refused_in_subprocess(["label.py", *arguments], *watched, timeout=60)
    return refused(label.main, arguments, *watched)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", list(NOT_A_STORE))
def test_a_file_that_is_not_a_usable_store_is_refused_unchanged(case, command, refused, refused_in_subprocess,
                                                                 tmp_path):
    project = make_project(tmp_path / "work")
    change, message = NOT_A_STORE[case]
    change(project / "labels.sqlite")
    line = check_refused(command, command_line(command, project), refused, refused_in_subprocess, tmp_path / "work")
    assert message in line


@pytest.mark.parametrize("command", ("status", "serve"))
def test_an_unrelated_database_passed_as_the_project_is_refused_unchanged(command, refused, refused_in_subprocess,
                                                                          tmp_path):
    other = tmp_path / "work" / "accounts.sqlite"
    other.parent.mkdir()
    run_sql(other, "CREATE TABLE accounts (owner TEXT)", "INSERT INTO accounts VALUES ('ann')")
    line = check_refused(command, command_line(command, other), refused, refused_in_subprocess, tmp_path / "work")
    assert "not an al-toolkit label store" in line


@pytest.mark.parametrize("case", list(DAMAGED_ROWS))
def test_a_damaged_row_is_named_by_every_command_that_reads_it(case, refused, refused_in_subprocess, tmp_path):
    project = make_project(tmp_path / "work")
    statement, named, commands = DAMAGED_ROWS[case]
    run_sql(project / "labels.sqlite", statement)
    for command in commands:
        line = check_refused(command, command_line(command, project), refused, refused_in_subprocess,
                             tmp_path / "work")
        assert named in line, command
        assert "restore it from a backup" in line


AS_UNPRIVILEGED = f"""
import os, sys
import label, AL_functions, altoolkit.labeling.exports, altoolkit.labeling.server
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid({UNPRIVILEGED_ID})
    os.setuid({UNPRIVILEGED_ID})
raise SystemExit(label.main(sys.argv[1:]))
"""


def label_as_unprivileged_user(argv: list[str]) -> int:
    """Run ``label.py argv`` in a child process that cannot write to a read-only folder, even under root."""
    completed = subprocess.run([sys.executable, "-c", AS_UNPRIVILEGED, *argv], cwd=REPO, capture_output=True,
                               text=True, timeout=120)
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    return completed.returncode


@pytest.fixture
def read_only_project():
    """A healthy project in a folder every user may enter (pytest's tmp_path is private to root), then made
    read-only: folders 0555, files 0444. Yields (work folder, project)."""
    work = Path(tempfile.mkdtemp(prefix="al-read-only-"))
    try:
        work.chmod(0o755)
        project = make_project(work)
        for path in sorted(work.rglob("*"), reverse=True):
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield work, project
    finally:
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(work)


@pytest.mark.parametrize("command", ("export", "import", "serve"))
def test_a_command_that_writes_says_the_project_is_read_only(command, read_only_project, refused):
    work, project = read_only_project
    line = refused(label_as_unprivileged_user, command_line(command, project), work)
    assert "is read-only (its folder cannot be written)" in line
    assert "not a usable label store" not in line


def test_status_reads_a_read_only_project_and_leaves_no_file(read_only_project, capsys):
    work, project = read_only_project
    before = sorted((path, path.read_bytes()) for path in work.rglob("*") if path.is_file())
    assert label_as_unprivileged_user(["status", "--project", str(project)]) == 0
    output = capsys.readouterr()
    assert output.err == ""
    assert output.out.splitlines() == [f"{project / 'labels.sqlite'}: 4 pool images, 1 labeled",
                                       "labels per class: cat 0, dog 1, bird 0",
                                       "round 1: margin, 3 images, 1 labeled"]
    assert sorted((path, path.read_bytes()) for path in work.rglob("*") if path.is_file()) == before


def test_status_of_a_read_only_project_sees_labels_a_running_server_has_not_checkpointed(read_only_project,
                                                                                         capsys):
    work, project = read_only_project
    store_path = project / "labels.sqlite"
    project.chmod(0o755)
    store_path.chmod(0o644)
    with LabelStore(project) as writer:
        writer._connection.execute("PRAGMA wal_autocheckpoint = 0")
        first_unlabeled = writer.batch(1)[1].image_id
        writer.set_label(first_unlabeled, "bird", labeler="ann")
        project.chmod(0o555)
        for file in project.iterdir():
            file.chmod(0o444)
        assert label_as_unprivileged_user(["status", "--project", str(project)]) == 0
        output = capsys.readouterr()
        project.chmod(0o755)
        store_path.chmod(0o644)
    assert output.err == ""
    assert "labels per class: cat 0, dog 1, bird 1" in output.out
