"""The label store: one SQLite database per labeling project, every human label committed the moment it is given.

Tables (schema version in ``PRAGMA user_version``):

- ``meta``: key/value settings (the class names, the pool folder);
- ``images``: every pool image by stable id (see :mod:`altoolkit.labeling.pool`), with its relative path and hash;
- ``rounds``: one row per selection round (strategy, parameters as JSON, model, time);
- ``batch_items``: the images a round selected, in order, with the model's prediction and scores;
- ``labels``: an append-only history; each row gives an image a class (or ``NULL``: the label was withdrawn,
  e.g. by *undo*). The latest row per image is its current label, so re-labeling never loses the old answer;
- ``reorders`` and ``reorder_items``: the live queue's new orders of a round's batch (``serve --live``), each with
  the last label row its refit used, so which labels it saw and what it selected stay auditable.

The database runs in WAL mode with ``synchronous=FULL``: a label is on disk when :meth:`LabelStore.set_label`
returns, and a killed process or a power cut loses at most the label being given.

Opening checks the file before writing to it (anything that is not a label store of this or an older schema is
refused unchanged); a new store is built beside its final name and moved into place whole. Rows changed outside
the toolkit (unreadable JSON, a label of a class the project does not have) are errors that name the row, and
:meth:`LabelStore.damaged_rows` lists them all. A read or write waits at most ``busy_timeout`` seconds (default
:data:`BUSY_TIMEOUT_SECONDS`) for another writer, then raises :class:`StoreBusyError` having changed nothing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from altoolkit.errors import ToolkitError
from altoolkit.labeling.schema import (MIGRATIONS, SCHEMA_VERSION, STORE_FILENAME, TABLES, check_header,
                                       class_names_problem, connect, count_rows, create_store, error_kind,
                                       json_object)
from altoolkit.validation import check_positive_float, short_repr

BUSY_TIMEOUT_SECONDS = 5.0
"""Longest a read or write waits while another thread or program writes to the store, before StoreBusyError."""
DAMAGE_SHOWN = 3
"""Damaged rows named in one error line (the count says how many more there are)."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A pool image as the store knows it."""

    image_id: str
    relative_path: str
    sha256: str


@dataclass(frozen=True)
class BatchItem:
    """One image a round selected: the model's prediction, class probabilities and per-criterion scores."""

    image_id: str
    predicted_class: str
    probabilities: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def top_classes(self, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` most probable classes with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: (-item[1], item[0]))[:count]


@dataclass(frozen=True)
class LabelEvent:
    """One row of an image's label history (``class_name`` None: the label was withdrawn)."""

    image_id: str
    class_name: str | None
    labeler: str
    labeled_at: float
    round_id: int | None
    source: str


class StoreBusyError(ToolkitError):
    """Another writer held the store for longer than the busy timeout: nothing was written, try again."""


@dataclass(frozen=True)
class RowDamage:
    """A row the toolkit cannot use as it is: its table, which row, and what is wrong with it."""

    table: str
    row: str
    problem: str

    def __str__(self) -> str:
        return f"{self.table} {self.row}: {self.problem}"


class LabelStore:
    """A project's label database (thread-safe: the labeling server answers requests from several threads).

    Writes go through one connection and reads through another, each used by one thread at a time: in WAL mode a
    reader never waits for a writer, so a write stuck behind another program's lock does not hold up the page's
    images and progress.
    """

    def __init__(self, path: str | Path, class_names: Sequence[str] | None = None, *, read_only: bool = False,
                 busy_timeout: float = BUSY_TIMEOUT_SECONDS):
        """Open ``path`` (a project folder or the .sqlite file), creating it when ``class_names`` are given.

        An existing store is checked first and refused unchanged when it is not a usable label store; then it is
        migrated to the current schema. ``class_names``, if given, must match its classes. ``read_only`` never
        writes (``label.py status``): it works in a folder the user cannot write to, reads older schemas as they
        are, and leaves damaged class names to :meth:`damaged_rows` instead of refusing the store.
        """
        path = Path(path)
        self.path = path / STORE_FILENAME if path.suffix != ".sqlite" else path
        self.read_only = read_only
        self.busy_timeout = check_positive_float(busy_timeout, "the label store's busy timeout")
        self._write_lock = self._read_lock = threading.RLock()
        self._class_names_damage: RowDamage | None = None
        if not self.path.exists():
            if class_names is None or read_only:
                raise ToolkitError(f"no label store at {self.path}: create the project with `label.py select` first")
            create_store(self.path, _checked_class_names(class_names))
        check_header(self.path)
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        self._connection = self._reader = connect(self.path, writable, self.busy_timeout)
        try:
            self._check_schema()
            self.class_names: tuple[str, ...] = self._stored_class_names()
            if class_names is not None and [str(name) for name in class_names] != list(self.class_names):
                raise ToolkitError(f"{self.path} labels classes {', '.join(self.class_names)}, not "
                                   f"{', '.join(map(str, class_names))}: use the same labeled folder or a new "
                                   "project folder")
            if read_only:
                if writable:
                    self._connection.execute("PRAGMA query_only = ON")
            elif not writable:
                raise ToolkitError(self._read_only_message())
            else:
                with self._database_errors():
                    self._connection.execute("PRAGMA journal_mode=WAL")
                    self._connection.execute("PRAGMA synchronous=FULL")
                    self._connection.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                self._reader = connect(self.path, writable, self.busy_timeout)
                self._reader.execute("PRAGMA query_only = ON")
                self._read_lock = threading.RLock()
        except BaseException:
            self._connection.close()
            raise

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._write_lock:
            self._connection.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def _check_schema(self) -> None:
        """Refuse, before anything is written, a database that is not a label store this al-toolkit can read."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise ToolkitError(f"{self.path} was written by a newer al-toolkit (schema {version}, this one "
                               f"reads up to {SCHEMA_VERSION}): upgrade al-toolkit")
        tables = sorted(str(row[0]) for row in self._read("SELECT name FROM sqlite_master WHERE type = 'table'"))
        if version < 1 or not set(TABLES) <= set(tables):
            found = ", ".join(short_repr(name, 30) for name in tables[:5]) + (", …" if len(tables) > 5 else "")
            raise ToolkitError(f"{self.path} is an SQLite database but not an al-toolkit label store (tables: "
                               f"{found or 'none'}): pass the project folder `label.py select` made, or restore "
                               "its labels.sqlite from a backup")

    def _stored_class_names(self) -> tuple[str, ...]:
        rows = self._read("SELECT value FROM meta WHERE key = 'class_names'")
        problem = class_names_problem(rows[0][0] if rows else None)
        if problem is None:
            return tuple(json.loads(rows[0][0]))
        damage = RowDamage("meta", "'class_names'", problem)
        if not self.read_only:
            raise ToolkitError(damage_message(self.path, [damage]))
        self._class_names_damage = damage
        return ()

    def _migrate(self) -> None:
        for target in range(self.schema_version + 1, SCHEMA_VERSION + 1):
            with self._transaction() as connection:
                MIGRATIONS[target](connection)
                connection.execute(f"PRAGMA user_version = {target}")

    @contextlib.contextmanager
    def _locked(self, connection: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
        """``connection``, for this thread alone; waits at most the busy timeout in all (``lock``, then SQLite)."""
        deadline = time.monotonic() + self.busy_timeout
        if not lock.acquire(timeout=self.busy_timeout):
            raise StoreBusyError(self._busy_message())
        try:
            with self._database_errors():
                remaining = max(0.0, deadline - time.monotonic())
                connection.execute(f"PRAGMA busy_timeout = {round(remaining * 1000)}")
                yield connection
        finally:
            lock.release()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when anything fails (all or nothing); the lock is always released."""
        if self.read_only:
            raise ToolkitError(f"{self.path} was opened read-only: open it for writing to change it")
        with self._locked(self._connection, self._write_lock) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                raise

    def _read(self, statement: str, parameters: Sequence = ()) -> list[tuple]:
        with self._locked(self._reader, self._read_lock) as connection:
            return connection.execute(statement, parameters).fetchall()

    @contextlib.contextmanager
    def _database_errors(self) -> Iterator[None]:
        """SQLite's errors as one-line ToolkitErrors: busy (try again), read-only, or a damaged file."""
        try:
            yield
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.DatabaseError as error:
            kind = error_kind(error)
            if kind == "busy":
                raise StoreBusyError(self._busy_message()) from None
            if kind == "read-only":
                raise ToolkitError(self._read_only_message()) from None
            raise ToolkitError(f"{self.path} is not a usable label store ({short_repr(str(error), 80)}): restore it "
                               "from a backup or start a new project folder") from None

    def _busy_message(self) -> str:
        return (f"{self.path} is busy: another program has been writing to it for over {self.busy_timeout:g} s "
                "(a long label.py import or select?): try again in a moment")

    def _read_only_message(self) -> str:
        where = "the file" if os.access(self.path.parent, os.W_OK) else "its folder"
        return (f"{self.path} is read-only ({where} cannot be written): this command writes to the project, so "
                "make the project folder and labels.sqlite writable for you, or copy the project somewhere "
                "writable (`label.py status` works on a read-only project)")

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as connection:
            connection.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def add_images(self, images: Iterable[StoredImage]) -> int:
        """Record pool images (ids already known keep their first path); returns how many were new."""
        now = time.time()
        with self._transaction() as connection:
            before = count_rows(connection, "images")
            connection.executemany(
                "INSERT OR IGNORE INTO images (id, relative_path, sha256, added_at) VALUES (?, ?, ?, ?)",
                ((image.image_id, image.relative_path, image.sha256, now) for image in images))
            return count_rows(connection, "images") - before

    def pool_file_hashes(self) -> dict[str, tuple[int, int, str]]:
        """Relative path → (size, mtime_ns, SHA-256) of the pool's files at the last scan (empty before schema 3)."""
        if self.schema_version < 3:
            return {}
        rows = self._read("SELECT relative_path, size, mtime_ns, sha256 FROM pool_files")
        return {str(path): (int(size), int(mtime_ns), str(sha256)) for path, size, mtime_ns, sha256 in rows}

    def record_pool_file_hashes(self, files: Iterable) -> None:
        """Replace the recorded scan with ``files`` (:class:`~altoolkit.streaming.PoolFile`): files gone from the
        pool are forgotten, so the table never outgrows the pool."""
        with self._transaction() as connection:
            connection.execute("DELETE FROM pool_files")
            connection.executemany("INSERT INTO pool_files (relative_path, size, mtime_ns, sha256) "
                                   "VALUES (?, ?, ?, ?)",
                                   ((file.relative_path, file.size, file.mtime_ns, file.sha256) for file in files))

    def image(self, image_id: str) -> StoredImage | None:
        rows = self._read("SELECT id, relative_path, sha256 FROM images WHERE id = ?", (image_id,))
        return StoredImage(*rows[0]) if rows else None

    def images(self) -> list[StoredImage]:
        return [StoredImage(*row) for row in self._read("SELECT id, relative_path, sha256 FROM images "
                                                        "ORDER BY relative_path")]

    def start_round(self, strategy: str, parameters: dict, items: Sequence[BatchItem]) -> int:
        """Record a selection round and its batch (in the order given); returns the round's id."""
        unknown_classes = {item.predicted_class for item in items} - set(self.class_names)
        if unknown_classes:
            raise ToolkitError(f"predicted classes {sorted(unknown_classes)} are not the project's classes")
        with self._transaction() as connection:
            cursor = connection.execute("INSERT INTO rounds (strategy, parameters, created_at) VALUES (?, ?, ?)",
                                        (strategy, json.dumps(parameters, sort_keys=True), time.time()))
            round_id = int(cursor.lastrowid)
            connection.executemany(
                "INSERT INTO batch_items (round_id, position, image_id, predicted_class, probabilities, scores) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(round_id, position, item.image_id, item.predicted_class, json.dumps(item.probabilities),
                  json.dumps(item.scores)) for position, item in enumerate(items)])
        return round_id

    def rounds(self, *, with_parameters: bool = True) -> list[dict]:
        """Every round: id, strategy, parameters (unless ``with_parameters`` is false), created_at, batch size."""
        rows = self._read("SELECT r.id, r.strategy, r.parameters, r.created_at, COUNT(b.image_id) FROM rounds r "
                          "LEFT JOIN batch_items b ON b.round_id = r.id GROUP BY r.id ORDER BY r.id")
        records = []
        for round_id, strategy, parameters, created_at, batch_size in rows:
            record = {"round": round_id, "strategy": strategy, "created_at": created_at, "batch_size": batch_size}
            if with_parameters:
                record["parameters"], problem = json_object(parameters)
                if problem:
                    raise ToolkitError(damage_message(self.path, [RowDamage("rounds", f"round {round_id}",
                                                                            f"parameters {problem}")]))
            records.append(record)
        return records

    def latest_round(self) -> int | None:
        latest = self._read("SELECT MAX(id) FROM rounds")[0][0]
        return None if latest is None else int(latest)

    def resolve_round(self, round_id: int | None) -> int:
        """``round_id``, or the latest round when None; a clear error when there is none."""
        latest = self.latest_round()
        if round_id is None:
            if latest is None:
                raise ToolkitError(f"{self.path} has no selection round yet: run `label.py select` first")
            return latest
        if not self._read("SELECT 1 FROM rounds WHERE id = ?", (round_id,)):
            raise ToolkitError(f"round {round_id} does not exist in {self.path} (latest: {latest})")
        return int(round_id)

    def batch(self, round_id: int) -> list[BatchItem]:
        """The round's batch in order; an error naming the rows when any of them is damaged."""
        items, damage = [], []
        for row in self._read("SELECT round_id, position, image_id, predicted_class, probabilities, scores "
                              "FROM batch_items WHERE round_id = ? ORDER BY position", (round_id,)):
            item, problem = self._batch_item(row)
            if problem:
                damage.append(problem)
            else:
                items.append(item)
        if damage:
            raise ToolkitError(damage_message(self.path, damage))
        return items

    def batch_image_ids(self, round_id: int) -> list[str]:
        """The ids of the round's batch in order (no other column is read, so damaged scores do not matter)."""
        return [row[0] for row in self._read("SELECT image_id FROM batch_items WHERE round_id = ? "
                                             "ORDER BY position", (round_id,))]

    def _batch_item(self, row: tuple, table: str = "batch_items") -> tuple[BatchItem | None, RowDamage | None]:
        round_id, position, image_id, predicted_class, probabilities_text, scores_text = row
        where = f"{'round' if table == 'batch_items' else 'reorder'} {round_id} position {position}"
        probabilities, problem = json_object(probabilities_text, numbers_only=True)
        if problem:
            return None, RowDamage(table, where, f"probabilities {problem}")
        scores, problem = json_object(scores_text, numbers_only=True)
        if problem:
            return None, RowDamage(table, where, f"scores {problem}")
        if self.class_names and not {predicted_class, *probabilities} <= set(self.class_names):
            unknown = sorted(map(str, {predicted_class, *probabilities} - set(self.class_names)))
            return None, RowDamage(table, where, f"class {short_repr(unknown[0])} is not one of the project's classes")
        return BatchItem(image_id, predicted_class, probabilities, scores), None

    def record_reorder(self, round_id: int, last_label_row: int, labels_used: int, strategy: str, details: dict,
                       items: Sequence[BatchItem]) -> int:
        """Record a live refit's order of the round's not yet labeled images (one short transaction); its id."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO reorders (round_id, created_at, last_label_row, labels_used, strategy, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (round_id, time.time(), last_label_row, labels_used, strategy, json.dumps(details, sort_keys=True)))
            reorder_id = int(cursor.lastrowid)
            connection.executemany(
                "INSERT INTO reorder_items (reorder_id, position, image_id, predicted_class, probabilities, scores) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(reorder_id, position, item.image_id, item.predicted_class, json.dumps(item.probabilities),
                  json.dumps(item.scores)) for position, item in enumerate(items)])
        return reorder_id

    def reorders(self, round_id: int) -> list[dict]:
        """The round's live reorders, oldest first: id, created_at, last_label_row, labels_used, strategy, details
        (none before schema 4)."""
        if self.schema_version < 4:
            return []
        records = []
        for row in self._read("SELECT id, created_at, last_label_row, labels_used, strategy, details FROM reorders "
                              "WHERE round_id = ? ORDER BY id", (round_id,)):
            details, problem = json_object(row[5])
            if problem:
                raise ToolkitError(damage_message(self.path, [RowDamage("reorders", f"reorder {row[0]}",
                                                                        f"details {problem}")]))
            records.append(dict(zip(("reorder", "created_at", "last_label_row", "labels_used", "strategy"), row[:5]),
                                details=details))
        return records

    def reorder_items(self, reorder_id: int) -> list[BatchItem]:
        """A reorder's images in its order, with the refitted learner's predictions."""
        items, damage = [], []
        for row in self._read("SELECT reorder_id, position, image_id, predicted_class, probabilities, scores "
                              "FROM reorder_items WHERE reorder_id = ? ORDER BY position", (reorder_id,)):
            item, problem = self._batch_item(row, table="reorder_items")
            damage += [problem] if problem else []
            items += [item] if item else []
        if damage:
            raise ToolkitError(damage_message(self.path, damage))
        return items

    def labels_up_to(self) -> tuple[int, dict[str, str]]:
        """(the last label row, every current label as of that row): one consistent snapshot, so a refit can
        record exactly which labels it used."""
        with self._locked(self._reader, self._read_lock) as connection:
            connection.execute("BEGIN")
            try:
                last = int(connection.execute("SELECT COALESCE(MAX(id), 0) FROM labels").fetchone()[0])
                rows = connection.execute(
                    "SELECT l.image_id, l.class_name FROM labels l JOIN (SELECT image_id, MAX(id) AS last FROM labels "
                    "WHERE id <= ? GROUP BY image_id) latest ON l.id = latest.last WHERE l.class_name IS NOT NULL",
                    (last,)).fetchall()
            finally:
                connection.execute("COMMIT")
        known = set(self.class_names)
        return last, {image_id: name for image_id, name in rows if name in known}

    def label_rows_after(self, round_id: int, row: int) -> int:
        """How many label rows (labels given, changed or withdrawn) of ``round_id`` came after label row ``row``."""
        return int(self._read("SELECT COUNT(*) FROM labels WHERE round_id = ? AND id > ?", (round_id, row))[0][0])

    def set_label(self, image_id: str, class_name: str, *, labeler: str, round_id: int | None = None,
                  source: str = "page") -> None:
        """Give ``image_id`` the class ``class_name`` (committed and synced before returning)."""
        self.check_class(class_name)
        self._append_labels([(image_id, class_name)], labeler, round_id, source)

    def clear_label(self, image_id: str, *, labeler: str, round_id: int | None = None,
                    source: str = "page") -> None:
        """Withdraw ``image_id``'s current label (a history row with no class: *undo*)."""
        self._append_labels([(image_id, None)], labeler, round_id, source)

    def import_labels(self, pairs: Sequence[tuple[str, str]], *, labeler: str, round_id: int | None,
                      source: str) -> int:
        """Record many (image id, class) labels in one transaction: all of them or, on any error, none."""
        for _, class_name in pairs:
            self.check_class(class_name)
        self._append_labels(list(pairs), labeler, round_id, source)
        return len(pairs)

    def _append_labels(self, pairs: list[tuple[str, str | None]], labeler: str, round_id: int | None,
                       source: str) -> None:
        now = time.time()
        with self._transaction() as connection:
            missing = [image_id for image_id, _ in pairs if not connection.execute(
                "SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()]
            if missing:
                raise ToolkitError(f"unknown image id {short_repr(missing[0])}: it is not in this project's pool")
            connection.executemany(
                "INSERT INTO labels (image_id, class_name, labeler, labeled_at, round_id, source) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(image_id, class_name, labeler, now, round_id, source) for image_id, class_name in pairs])

    def check_class(self, class_name: str) -> None:
        if class_name not in self.class_names:
            raise ToolkitError(f"unknown class {short_repr(class_name)}: the project's classes are "
                               f"{', '.join(self.class_names)}")

    def current_labels(self, *, skip_damaged: bool = False) -> dict[str, str]:
        """image id → its current class, for every image whose latest label row gives one.

        A current label of a class the project does not have is an error naming its row, or, with
        ``skip_damaged``, left out (:meth:`damaged_rows` reports it).
        """
        rows = self._read(
            "SELECT l.id, l.image_id, l.class_name FROM labels l JOIN "
            "(SELECT image_id, MAX(id) AS last FROM labels GROUP BY image_id) latest ON l.id = latest.last "
            "WHERE l.class_name IS NOT NULL")
        if self._class_names_damage is not None:
            if skip_damaged:
                return {image_id: class_name for _, image_id, class_name in rows}
            raise ToolkitError(damage_message(self.path, [self._class_names_damage]))
        known = set(self.class_names)
        damage = [_label_damage(row_id, class_name) for row_id, _, class_name in rows if class_name not in known]
        if damage and not skip_damaged:
            raise ToolkitError(damage_message(self.path, damage))
        return {image_id: class_name for _, image_id, class_name in rows if class_name in known}

    def history(self, image_id: str) -> list[LabelEvent]:
        source = "source" if self.schema_version >= 2 else "'unknown'"
        rows = self._read(f"SELECT image_id, class_name, labeler, labeled_at, round_id, {source} FROM labels "
                          "WHERE image_id = ? ORDER BY id", (image_id,))
        return [LabelEvent(*row) for row in rows]

    def damaged_rows(self) -> list[RowDamage]:
        """Every row the toolkit cannot use: unreadable class names, round parameters or batch scores, and labels
        of a class the project does not have (in table order)."""
        damage = [self._class_names_damage] if self._class_names_damage is not None else []
        for round_id, parameters in self._read("SELECT id, parameters FROM rounds ORDER BY id"):
            _, problem = json_object(parameters)
            if problem:
                damage.append(RowDamage("rounds", f"round {round_id}", f"parameters {problem}"))
        for row in self._read("SELECT round_id, position, image_id, predicted_class, probabilities, scores "
                              "FROM batch_items ORDER BY round_id, position"):
            _, problem = self._batch_item(row)
            if problem:
                damage.append(problem)
        if self._class_names_damage is None:
            known = set(self.class_names)
            damage += [_label_damage(row_id, class_name) for row_id, class_name in self._read(
                "SELECT id, class_name FROM labels WHERE class_name IS NOT NULL ORDER BY id")
                       if class_name not in known]
        return damage


def damage_message(path: Path, damage: Sequence[RowDamage], note: str = "") -> str:
    """One error line naming the first damaged rows and saying what to do."""
    shown = "; ".join(map(str, damage[:DAMAGE_SHOWN]))
    more = f"; and {len(damage) - DAMAGE_SHOWN} more" if len(damage) > DAMAGE_SHOWN else ""
    return (f"{path} has {len(damage)} damaged row(s){note} ({shown}{more}): it was changed outside al-toolkit; "
            "restore it from a backup, or repair the rows with the sqlite3 tool")


def _label_damage(row_id: int, class_name) -> RowDamage:
    return RowDamage("labels", f"row {row_id}", f"class {short_repr(class_name)} is not one of the project's classes")


def current_user() -> str:
    """Who is labeling, when nobody said: the operating system's user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _checked_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(name) for name in class_names)
    if len(names) < 2:
        raise ToolkitError(f"a labeling project needs at least two classes, got {list(names)}")
    if len(set(names)) != len(names) or any(not name.strip() for name in names):
        raise ToolkitError(f"class names must be distinct and non-empty, got {list(names)}")
    return names
