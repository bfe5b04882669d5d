"""Hand a selected batch to an external labeling tool and bring its labels back.

Export writes, into one batch folder (atomically): ``images/`` (the batch's images, copied or linked, named by
image id), ``manifest.csv`` (one row per image: id, file, predicted class, top probabilities, scores per
criterion and an empty ``label`` column to fill in), ``label_studio_tasks.json`` (Label Studio tasks with the
model's prediction as a pre-annotation) and ``label_studio_config.xml`` (the matching labeling interface).

Import reads the filled-in CSV or a Label Studio JSON export, checks every row against the batch and the
project's classes, and records all labels in one transaction: one bad row and nothing is imported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from altoolkit.errors import ToolkitError
from altoolkit.files import atomic_directory, write_json, write_text
from altoolkit.imagepool import pool_file
from altoolkit.labelstore import BatchItem, LabelStore

MANIFEST_FILENAME = "manifest.csv"
TASKS_FILENAME = "label_studio_tasks.json"
CONFIG_FILENAME = "label_studio_config.xml"
LABEL_STUDIO_FROM_NAME = "label"
LABEL_STUDIO_TO_NAME = "image"
TOP_CLASSES = 3
REPORTED_PROBLEMS = 20


def batch_folder_name(round_id: int) -> str:
    return f"round-{round_id:03d}"


def export_batch(store: LabelStore, round_id: int, pool_root: str | Path, output_dir: str | Path, *,
                 link: bool = False, image_url_prefix: str | None = None, overwrite: bool = False) -> Path:
    """Write the batch folder of ``round_id`` (see the module docstring); returns its path.

    ``image_url_prefix`` is what Label Studio tasks put before ``images/<file>`` (default: Label Studio's
    local-files route, ``/data/local-files/?d=<batch folder name>/``, for a document root holding batch folders).
    """
    output_dir = Path(output_dir)
    items = store.batch(round_id)
    prefix = image_url_prefix if image_url_prefix is not None else f"/data/local-files/?d={output_dir.name}/"
    sources = [pool_file(pool_root, _stored(store, item.image_id)) for item in items]
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
    return output_dir


def _stored(store: LabelStore, image_id: str):
    image = store.image(image_id)
    if image is None:
        raise ToolkitError(f"image {image_id} of the batch is missing from {store.path}: the store is damaged")
    return image


def manifest_csv(store: LabelStore, items: list[BatchItem], files: list[str]) -> str:
    """The CSV manifest: one row per batch image, ``label`` left empty for the labeler."""
    criteria = sorted({name for item in items for name in item.scores})
    header = ["id", "file", "source_path", "predicted_class"]
    for rank in range(1, TOP_CLASSES + 1):
        header += [f"top{rank}_class", f"top{rank}_probability"]
    header += [f"score_{name}" for name in criteria] + ["label"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for item, file in zip(items, files):
        top = item.top_classes(TOP_CLASSES)
        top += [("", None)] * (TOP_CLASSES - len(top))
        row = [item.image_id, file, _stored(store, item.image_id).relative_path, item.predicted_class]
        for name, probability in top:
            row += [name, "" if probability is None else f"{probability:.4f}"]
        row += [_format_score(item.scores.get(name)) for name in criteria] + [""]
        writer.writerow(row)
    return buffer.getvalue()


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
    """One label read from a file, with where it was found (``line 7`` or ``task 12``) for error reports."""

    image_id: str
    class_name: str
    where: str


def read_labels_file(file: str | Path) -> tuple[list[ImportedLabel], str]:
    """Labels from a filled-in manifest CSV or a Label Studio JSON export; returns (labels, source name)."""
    file = Path(file)
    if not file.is_file():
        raise ToolkitError(f"labels file {file} not found")
    text = file.read_text(encoding="utf-8-sig")
    if file.suffix.lower() == ".csv":
        return read_manifest_labels(text, file.name), "csv"
    if file.suffix.lower() == ".json":
        return read_label_studio_labels(text, file.name), "label-studio"
    raise ToolkitError(f"{file} is neither a .csv manifest nor a Label Studio .json export")


def read_manifest_labels(text: str, name: str = "manifest.csv") -> list[ImportedLabel]:
    """Rows of a manifest CSV whose ``label`` column is filled in (empty labels are simply not labeled yet)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in ("id", "label") if column not in (reader.fieldnames or [])]
    if missing:
        raise ToolkitError(f"{name} has no {' or '.join(missing)} column: fill in the manifest.csv that "
                           "`label.py export` wrote")
    labels = []
    for row in reader:
        class_name = (row.get("label") or "").strip()
        if class_name:
            labels.append(ImportedLabel((row.get("id") or "").strip(), class_name, f"line {reader.line_num}"))
    return labels


def read_label_studio_labels(text: str, name: str = "export.json") -> list[ImportedLabel]:
    """Labels from Label Studio's JSON export (tasks with annotations) or its JSON-MIN export (flat rows).

    A task's latest annotation that was not cancelled counts; tasks nobody annotated are skipped.
    """
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as error:
        raise ToolkitError(f"{name} is not JSON ({error}): export from Label Studio as JSON or JSON-MIN") from None
    if not isinstance(tasks, list):
        raise ToolkitError(f"{name} is not a Label Studio export (expected a list of tasks)")
    labels = []
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise ToolkitError(f"{name}: task {number} is not an object")
        data = task.get("data", task)
        image_id = str(data.get("image_id", "")).strip() if isinstance(data, dict) else ""
        where = f"task {task.get('id', number)}"
        class_name = (_annotated_choice(task.get("annotations"), where) if "annotations" in task
                      else _single_choice(task.get(LABEL_STUDIO_FROM_NAME), where))
        if class_name is not None:
            labels.append(ImportedLabel(image_id, class_name, where))
    return labels


def _annotated_choice(annotations, where: str) -> str | None:
    kept = [annotation for annotation in annotations or []
            if isinstance(annotation, dict) and not annotation.get("was_cancelled")]
    for annotation in reversed(kept):
        for result in annotation.get("result") or []:
            if result.get("from_name") == LABEL_STUDIO_FROM_NAME and result.get("type") == "choices":
                return _single_choice(result.get("value", {}).get("choices"), where)
    return None


def _single_choice(choices, where: str) -> str | None:
    if choices is None or choices == []:
        return None
    if isinstance(choices, str):
        return choices.strip()
    if isinstance(choices, dict) and "choices" in choices:
        return _single_choice(choices["choices"], where)
    if isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str):
        return choices[0].strip()
    raise ToolkitError(f"{where}: expected one class, got {choices!r}")


def import_labels(store: LabelStore, round_id: int, labels: list[ImportedLabel], *, labeler: str,
                  source: str, file_name: str) -> int:
    """Check every label against the batch and the classes, then record them all in one transaction.

    Problems (unknown class, id not in the batch, an image labeled twice in the file) are reported together,
    the first :data:`REPORTED_PROBLEMS` by line or task, and then nothing is imported.
    """
    batch_ids = {item.image_id for item in store.batch(round_id)}
    problems, first_seen = [], {}
    for label in labels:
        if label.image_id not in batch_ids:
            problems.append(f"{label.where}: id {label.image_id or '(empty)'!r} is not in round {round_id}'s batch")
        elif label.class_name not in store.class_names:
            problems.append(f"{label.where}: unknown class {label.class_name!r}")
        elif label.image_id in first_seen:
            problems.append(f"{label.where}: id {label.image_id} labeled again (first at {first_seen[label.image_id]})")
        else:
            first_seen[label.image_id] = label.where
    if problems:
        shown = "; ".join(problems[:REPORTED_PROBLEMS])
        more = f"; and {len(problems) - REPORTED_PROBLEMS} more" if len(problems) > REPORTED_PROBLEMS else ""
        raise ToolkitError(f"{file_name}: {len(problems)} problem(s), nothing imported "
                           f"(classes: {', '.join(store.class_names)}): {shown}{more}")
    return store.import_labels([(label.image_id, label.class_name) for label in labels], labeler=labeler,
                               round_id=round_id, source=source)
