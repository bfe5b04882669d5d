"""Hand a selected batch to an external labeling tool and bring its labels back.

Export writes, into one batch folder (atomically): ``images/`` (the batch's images, copied or linked, named by
image id), ``manifest.csv`` (one row per image: id, file, predicted class, top probabilities, scores per
criterion and an empty ``label`` column to fill in), ``label_studio_tasks.json`` (Label Studio tasks with the
model's prediction as a pre-annotation) and ``label_studio_config.xml`` (the matching labeling interface).

Import reads the filled-in CSV or a Label Studio JSON export (UTF-8, at most 64 MiB), checks every row against
the batch and the project's classes, and records all labels in one transaction: one bad row and nothing is
imported. Labels equal to an image's current label are counted as unchanged and add no history row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_directory, write_json, write_text
from altoolkit.labeling.pool import check_unchanged, printable
from altoolkit.labeling.store import BatchItem, LabelStore

MANIFEST_FILENAME = "manifest.csv"
TASKS_FILENAME = "label_studio_tasks.json"
CONFIG_FILENAME = "label_studio_config.xml"
LABEL_STUDIO_FROM_NAME = "label"
LABEL_STUDIO_TO_NAME = "image"
TOP_CLASSES = 3
REPORTED_PROBLEMS = 20
MAX_PROBLEMS_TEXT = 1400
"""Characters of problem reports an import error shows at most (fewer than 20 problems if they are long)."""
SHOWN_VALUE_LENGTH = 40
"""A value from a labels file (an id, a class) is cut to this many characters in an error line."""
MAX_LABELS_FILE_BYTES = 64 * 2**20
"""Largest labels file import reads (64 MiB: a Label Studio export of some 20,000 annotated tasks)."""
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet run a CSV cell as a formula (OWASP's CSV injection list)."""
SPREADSHEET_ESCAPE = "'"


def batch_folder_name(round_id: int) -> str:
    return f"round-{round_id:03d}"


def export_batch(store: LabelStore, round_id: int, pool_root: str | Path, output_dir: str | Path, *,
                 link: bool = False, image_url_prefix: str | None = None, overwrite: bool = False) -> Path:
    """Write the batch folder of ``round_id`` (see the module docstring); returns its path.

    ``image_url_prefix`` is what Label Studio tasks put before ``images/<file>`` (default: Label Studio's
    local-files route, ``/data/local-files/?d=<batch folder name>/``, for a document root holding batch folders).
    Every batch image must still have the content it was selected with. An existing folder is replaced only with
    ``overwrite``, and only when it is a batch folder (holds a manifest.csv), so a mistyped folder is never lost.
    """
    output_dir = Path(output_dir)
    _check_replaceable(output_dir, overwrite)
    items = store.batch(round_id)
    prefix = image_url_prefix if image_url_prefix is not None else f"/data/local-files/?d={output_dir.name}/"
    images = [_stored(store, item.image_id) for item in items]
    check_unchanged(pool_root, images, f"images of round {round_id}'s batch",
                    "restore them (or pass the pool's current location with --pool), or select a new round")
    sources = [Path(pool_root) / image.relative_path for image in images]
    try:
        with atomic_directory(output_dir, overwrite=overwrite) as work_dir:
            (work_dir / "images").mkdir()
            files = []
            for item, source in zip(items, sources):
                target = work_dir / "images" / f"{item.image_id}{source.suffix.lower()}"
                if link:
                    os.symlink(source.resolve(), target)
                else:
                    shutil.copyfile(source, target)
                files.append(f"images/{target.name}")
            write_text(work_dir / MANIFEST_FILENAME, manifest_csv(store, items, files))
            write_json(work_dir / TASKS_FILENAME, label_studio_tasks(items, files, prefix, round_id))
            write_text(work_dir / CONFIG_FILENAME, label_studio_config(store.class_names))
    except FileExistsError:
        _check_replaceable(output_dir, overwrite)
        raise
    return output_dir


def _check_replaceable(output_dir: Path, overwrite: bool) -> None:
    """An error unless ``output_dir`` is free, or is a batch folder and ``overwrite`` was asked for."""
    if not output_dir.exists() and not output_dir.is_symlink():
        return
    if not overwrite:
        raise ToolkitError(f"{_cut(str(output_dir), 160)} exists already (round exported before?): pass --overwrite "
                           "to replace it, or --output-dir for another folder")
    if not output_dir.is_dir() or output_dir.is_symlink() or not (output_dir / MANIFEST_FILENAME).is_file():
        raise ToolkitError(f"{_cut(str(output_dir), 160)} is not a batch folder (no {MANIFEST_FILENAME} in it): "
                           "--overwrite replaces only a batch folder; pick another --output-dir")


def _stored(store: LabelStore, image_id: str):
    image = store.image(image_id)
    if image is None:
        raise ToolkitError(f"image {image_id} of the batch is missing from {store.path}: the store is damaged")
    return image


def manifest_csv(store: LabelStore, items: list[BatchItem], files: list[str]) -> str:
    """The CSV manifest: one row per batch image, ``label`` left empty for the labeler.

    Paths and class names go through :func:`spreadsheet_cell`, so opening the manifest never runs a formula. Rows
    end in CRLF (RFC 4180), which also makes the writer quote a cell holding a lone carriage return.
    """
    criteria = sorted({name for item in items for name in item.scores})
    header = ["id", "file", "source_path", "predicted_class"]
    for rank in range(1, TOP_CLASSES + 1):
        header += [f"top{rank}_class", f"top{rank}_probability"]
    header += [f"score_{name}" for name in criteria] + ["label"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for item, file in zip(items, files):
        top = item.top_classes(TOP_CLASSES)
        top += [("", None)] * (TOP_CLASSES - len(top))
        row = [item.image_id, file, spreadsheet_cell(_stored(store, item.image_id).relative_path),
               spreadsheet_cell(item.predicted_class)]
        for name, probability in top:
            row += [spreadsheet_cell(name), "" if probability is None else f"{probability:.4f}"]
        row += [_format_score(item.scores.get(name)) for name in criteria] + [""]
        writer.writerow(row)
    return buffer.getvalue()


def spreadsheet_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula: ``'`` before a formula trigger or a leading ``'``.

    Escaping a leading ``'`` too makes the rule reversible (:func:`from_spreadsheet_cell`) for every text.
    """
    return SPREADSHEET_ESCAPE + text if text.startswith((*FORMULA_TRIGGERS, SPREADSHEET_ESCAPE)) else text


def from_spreadsheet_cell(text: str) -> str:
    """Undo :func:`spreadsheet_cell`: drop the ``'`` it puts before a formula trigger or a ``'``; else unchanged."""
    if text.startswith(SPREADSHEET_ESCAPE) and text[1:].startswith((*FORMULA_TRIGGERS, SPREADSHEET_ESCAPE)):
        return text[1:]
    return text


def _format_score(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def label_studio_tasks(items: list[BatchItem], files: list[str], url_prefix: str, round_id: int) -> list[dict]:
    """Label Studio tasks: the image URL, the image id (to map labels back) and the model's guess as a prediction."""
    tasks = []
    for item, file in zip(items, files):
        probability = item.probabilities.get(item.predicted_class)
        tasks.append({
            "data": {"image": f"{url_prefix}{file}", "image_id": item.image_id, "round": round_id},
            "predictions": [{
                "model_version": f"al-toolkit round {round_id}",
                "score": probability,
                "result": [{"from_name": LABEL_STUDIO_FROM_NAME, "to_name": LABEL_STUDIO_TO_NAME,
                            "type": "choices", "value": {"choices": [item.predicted_class]}}],
            }],
        })
    return tasks


def label_studio_config(class_names: tuple[str, ...]) -> str:
    """A Label Studio labeling interface: the image and one single-choice list of the project's classes."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in class_names)
    return (f'<View>\n  <Image name="{LABEL_STUDIO_TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <Choices name="{LABEL_STUDIO_FROM_NAME}" toName="{LABEL_STUDIO_TO_NAME}" choice="single" '
            f'showInline="true">\n{choices}\n  </Choices>\n</View>\n')


@dataclass(frozen=True)
class ImportedLabel:
    """One label read from a file, with where it was found (``line 7`` or ``task 12``) for error reports.

    ``class_name`` is the text as written (after undoing the manifest's spreadsheet escape); :func:`import_labels`
    matches it to the project's classes. ``image_id`` is empty when the file gives none.
    """

    image_id: str
    class_name: str
    where: str


@dataclass(frozen=True)
class ImportCounts:
    """What an import did: labels of images that had none, labels that replace another class, and labels that
    already were the image's current label (these add no history row)."""

    new: int
    changed: int
    unchanged: int

    @property
    def recorded(self) -> int:
        return self.new + self.changed


def read_labels_file(file: str | Path) -> tuple[list[ImportedLabel], str]:
    """Labels from a filled-in manifest CSV or a Label Studio JSON export; returns (labels, source name).

    The file must be UTF-8 (with or without a byte-order mark; UTF-16 with a byte-order mark is read too) and at
    most :data:`MAX_LABELS_FILE_BYTES` long.
    """
    file = Path(file)
    if not file.is_file():
        raise ToolkitError(f"labels file {_cut(str(file), 120)} not found")
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ToolkitError(f"{_cut(file.name)} is neither a .csv manifest nor a Label Studio .json export")
    text = decode_labels_file(_read_limited(file), file.name)
    if suffix == ".csv":
        return read_manifest_labels(text, file.name), "csv"
    return read_label_studio_labels(text, file.name), "label-studio"


def _read_limited(file: Path) -> bytes:
    """The file's bytes, refusing one over the size limit before reading it (and one that grows past it)."""
    limit_text = f"{MAX_LABELS_FILE_BYTES // 2**20} MiB"
    try:
        if file.stat().st_size > MAX_LABELS_FILE_BYTES:
            raise ToolkitError(f"{_cut(file.name)} is larger than {limit_text}, the limit for a labels file: "
                               "import the batch in parts (export smaller rounds)")
        with open(file, "rb") as handle:
            data = handle.read(MAX_LABELS_FILE_BYTES + 1)
    except OSError as error:
        raise ToolkitError(f"cannot read {_cut(file.name)} ({error.strerror or error}): check the file "
                           "and its permissions") from None
    if len(data) > MAX_LABELS_FILE_BYTES:
        raise ToolkitError(f"{_cut(file.name)} is larger than {limit_text}, the limit for a labels file")
    return data


def decode_labels_file(data: bytes, name: str) -> str:
    """The text of a labels file: UTF-8 (a byte-order mark is dropped), or UTF-16 when it starts with its BOM."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ToolkitError(f"{_cut(name)} is not {'UTF-16' if encoding == 'utf-16' else 'UTF-8'} text (byte "
                           f"0x{data[error.start]:02x} at offset {error.start}): save it as UTF-8 (in Excel: "
                           "\"CSV UTF-8\"; Windows-1252 and Latin-1 are not read)") from None
    if "\x00" in text:
        raise ToolkitError(f"{_cut(name)} contains NUL characters, so it is not a text file (or it is UTF-16 "
                           "without a byte-order mark): save it as UTF-8")
    return text


def read_manifest_labels(text: str, name: str = "manifest.csv") -> list[ImportedLabel]:
    """Rows of a manifest CSV whose ``label`` column is filled in (empty labels are simply not labeled yet).

    The CSV is parsed strictly (an unclosed quote is an error, not a swallowed rest of the file), and the id and
    label columns must appear exactly once.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None) or []
        missing = [column for column in ("id", "label") if column not in header]
        if missing:
            raise ToolkitError(f"{_cut(name)} has no {' or '.join(missing)} column: fill in the manifest.csv that "
                               "`label.py export` wrote")
        repeated = [column for column in ("id", "label") if header.count(column) > 1]
        if repeated:
            raise ToolkitError(f"{_cut(name)} has {' and '.join(repeated)} more than once in its header: keep one "
                               f"{' and one '.join(repeated)} column")
        id_column, label_column = header.index("id"), header.index("label")
        labels = []
        for row in reader:
            cell = row[label_column] if label_column < len(row) else ""
            if cell.strip():
                image_id = row[id_column] if id_column < len(row) else ""
                labels.append(ImportedLabel(image_id.strip(), from_spreadsheet_cell(cell), f"line {reader.line_num}"))
    except csv.Error as error:
        raise ToolkitError(f"{_cut(name)} is not valid CSV at line {reader.line_num} ({error}): check for a quote "
                           f"that is never closed, or a cell over {csv.field_size_limit() // 1024} KiB") from None
    return labels


def read_label_studio_labels(text: str, name: str = "export.json") -> list[ImportedLabel]:
    """Labels from Label Studio's JSON export (tasks with annotations) or its JSON-MIN export (flat rows).

    A task's latest annotation that was not cancelled counts; tasks nobody annotated are skipped (so are the tasks
    Label Studio's *Sync* creates for every file of the batch folder, until someone annotates one). A task without
    ``image_id`` is matched through its image URL when that ends in ``images/<image id>.<ext>``, the name export
    gave the file. A task of the wrong shape is an error that names it.
    """
    try:
        tasks = json.loads(text)
    except RecursionError:
        raise ToolkitError(f"{_cut(name)} nests JSON too deeply to be a Label Studio export: export from Label "
                           "Studio as JSON or JSON-MIN") from None
    except ValueError as error:
        raise ToolkitError(f"{_cut(name)} is not JSON ({_cut(str(error), 80)}): export from Label Studio as "
                           "JSON or JSON-MIN") from None
    if not isinstance(tasks, list):
        raise ToolkitError(f"{_cut(name)} is not a Label Studio export (expected a list of tasks)")
    labels = []
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise ToolkitError(f"{_cut(name)}: task {number} is {_kind(task)}, expected an object")
        task_id = task.get("id", number)
        where = f"task {_cut(str(task_id), 20) if isinstance(task_id, (int, str)) else number}"
        data = task.get("data", task)
        if not isinstance(data, dict):
            raise ToolkitError(f"{_cut(name)}: {where}: 'data' is {_kind(data)}, expected an object")
        class_name = (_annotated_choice(task["annotations"], where, name) if "annotations" in task
                      else _single_choice(task.get(LABEL_STUDIO_FROM_NAME), where, name))
        if class_name is not None and class_name.strip():
            labels.append(ImportedLabel(task_image_id(data), class_name, where))
    return labels


def task_image_id(data: dict) -> str:
    """The task's ``image_id``; without one, the id in an image URL ending in ``images/<image id>.<ext>``."""
    given = data.get("image_id")
    if given is not None and str(given).strip():
        return str(given).strip()
    url = data.get(LABEL_STUDIO_TO_NAME)
    if isinstance(url, str):
        match = re.search(r"(?:^|[/=])images/([0-9a-f]{20})\.[0-9A-Za-z]+$", urllib.parse.unquote(url))
        if match:
            return match.group(1)
    return ""


def _annotated_choice(annotations, where: str, name: str) -> str | None:
    if annotations is None:
        return None
    if not isinstance(annotations, list):
        raise ToolkitError(f"{_cut(name)}: {where}: 'annotations' is {_kind(annotations)}, expected a list")
    for annotation in reversed(annotations):
        if not isinstance(annotation, dict):
            raise ToolkitError(f"{_cut(name)}: {where}: an annotation is {_kind(annotation)}, expected an object")
        cancelled = annotation.get("was_cancelled", False)
        if not isinstance(cancelled, bool):
            raise ToolkitError(f"{_cut(name)}: {where}: 'was_cancelled' is {_kind(cancelled)}, expected true "
                               "or false")
        results = annotation.get("result")
        if results is None or cancelled:
            continue
        if not isinstance(results, list):
            raise ToolkitError(f"{_cut(name)}: {where}: an annotation's 'result' is {_kind(results)}, "
                               "expected a list")
        for result in results:
            if not isinstance(result, dict):
                raise ToolkitError(f"{_cut(name)}: {where}: a result is {_kind(result)}, expected an object")
            if result.get("from_name") == LABEL_STUDIO_FROM_NAME and result.get("type") == "choices":
                value = result.get("value")
                if not isinstance(value, dict):
                    raise ToolkitError(f"{_cut(name)}: {where}: the '{LABEL_STUDIO_FROM_NAME}' result's 'value' "
                                       f"is {_kind(value)}, expected an object with 'choices'")
                return _single_choice(value.get("choices"), where, name)
    return None


def _single_choice(choices, where: str, name: str) -> str | None:
    if choices is None or choices == []:
        return None
    if isinstance(choices, str):
        return choices
    if isinstance(choices, dict) and "choices" in choices:
        return _single_choice(choices["choices"], where, name)
    if isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str):
        return choices[0]
    raise ToolkitError(f"{_cut(name)}: {where}: expected one class, got {_quoted(choices)}")


def import_labels(store: LabelStore, round_id: int, labels: list[ImportedLabel], *, labeler: str,
                  source: str, file_name: str) -> ImportCounts:
    """Check every label against the batch and the classes, then record them all in one transaction.

    Problems (unknown class, id not in the batch, an image given two different classes in the file) are reported
    together, the first :data:`REPORTED_PROBLEMS` by line or task, and then nothing is imported. A class written
    with extra leading or trailing spaces is matched to the one class it equals without them. A label that is
    already the image's current label adds no history row, so importing the same file twice changes nothing.
    """
    batch_ids = {item.image_id for item in store.batch(round_id)}
    problems, first_seen, chosen = [], {}, {}
    for label in labels:
        class_name, class_problem = _matched_class(label.class_name, store.class_names)
        if not label.image_id:
            problems.append(f"{label.where}: " + ("the id cell is empty" if label.where.startswith("line") else
                                                  "no image_id, and its image URL names no file of the batch "
                                                  "(images/<image id>.<ext>)"))
        elif label.image_id not in batch_ids:
            problems.append(f"{label.where}: id {_quoted(label.image_id)} is not in round {round_id}'s batch")
        elif class_problem:
            problems.append(f"{label.where}: {class_problem}")
        elif label.image_id in first_seen and chosen[label.image_id] != class_name:
            problems.append(f"{label.where}: id {label.image_id} labeled again (first at "
                            f"{first_seen[label.image_id]}) with another class ({_quoted(class_name)}, not "
                            f"{_quoted(chosen[label.image_id])})")
        elif label.image_id not in first_seen:
            first_seen[label.image_id] = label.where
            chosen[label.image_id] = class_name
    if problems:
        raise ToolkitError(f"{_cut(file_name)}: {len(problems)} problem(s), nothing imported "
                           f"(classes: {_classes_text(store.class_names)}): {_problems_text(problems)}")
    current = store.current_labels()
    changes = [(image_id, class_name) for image_id, class_name in chosen.items() if current.get(image_id) != class_name]
    if changes:
        store.import_labels(changes, labeler=labeler, round_id=round_id, source=source)
    new = sum(image_id not in current for image_id, _ in changes)
    return ImportCounts(new=new, changed=len(changes) - new, unchanged=len(chosen) - len(changes))


def _matched_class(text: str, class_names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the project class ``text`` names, None) or (None, what is wrong with it)."""
    if text in class_names:
        return text, None
    matches = [name for name in class_names if name.strip() == text.strip()]
    if len(matches) == 1:
        return matches[0], None
    if matches:
        return None, (f"class {_quoted(text)} equals {' and '.join(map(repr, matches))} but for leading or trailing "
                      "spaces: write the class exactly")
    return None, f"unknown class {_quoted(text)}"


def _problems_text(problems: list[str]) -> str:
    """The first :data:`REPORTED_PROBLEMS` problems (fewer if they would make the error line too long)."""
    shown = []
    for problem in problems[:REPORTED_PROBLEMS]:
        if sum(len(text) + 2 for text in shown) + len(problem) > MAX_PROBLEMS_TEXT:
            break
        shown.append(problem)
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _classes_text(class_names: tuple[str, ...], limit: int = 200) -> str:
    """The project's classes for an error line (quoted when spaces at either end would be invisible)."""
    text = ", ".join(repr(name) if name != name.strip() else name for name in class_names)
    return text if len(text) <= limit else text[:limit] + "…"


def _kind(value) -> str:
    """The JSON name of a value's type with its article ("an object", "null"), for error lines."""
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), f"a {type(value).__name__}")


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, control characters escaped: a user-supplied value stays short, one line."""
    text = printable(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _quoted(value, limit: int = SHOWN_VALUE_LENGTH) -> str:
    """A value from the file as Python writes it (strings quoted, spaces visible), cut to ``limit`` characters."""
    return _cut(repr(value), limit)
