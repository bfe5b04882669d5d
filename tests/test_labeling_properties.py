"""Property-based tests of the labels-file parsers: any input is read or refused with one ToolkitError, and the
manifest's spreadsheet escape gives every name back unchanged."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from altoolkit.errors import ToolkitError
from altoolkit.labeling.exports import (FORMULA_TRIGGERS, decode_labels_file, from_spreadsheet_cell,
                                        read_label_studio_labels, read_manifest_labels, spreadsheet_cell)

names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10)


def anything_or(shaped):
    """Mostly the shape Label Studio writes, sometimes any JSON value in its place."""
    return st.one_of(shaped, shaped, shaped, json_values)


choice_results = st.fixed_dictionaries({}, optional={
    "from_name": anything_or(st.just("label")), "type": anything_or(st.just("choices")),
    "value": anything_or(st.fixed_dictionaries({}, optional={"choices": anything_or(st.lists(names, max_size=2))}))})
annotations = st.fixed_dictionaries({}, optional={"was_cancelled": anything_or(st.booleans()),
                                                  "result": anything_or(st.lists(anything_or(choice_results),
                                                                                 max_size=2))})
tasks = st.fixed_dictionaries({}, optional={
    "id": json_values, "label": json_values, "image_id": json_values,
    "data": anything_or(st.fixed_dictionaries({}, optional={"image_id": anything_or(names),
                                                            "image": anything_or(names)})),
    "annotations": anything_or(st.lists(anything_or(annotations), max_size=3))})
"""Label Studio tasks (JSON and JSON-MIN) in which any field may have any type."""


@given(names)
def test_the_spreadsheet_escape_never_starts_a_formula_and_is_undone_exactly(name):
    cell = spreadsheet_cell(name)
    assert not cell.startswith(FORMULA_TRIGGERS)
    assert from_spreadsheet_cell(cell) == name


@given(st.lists(names.filter(str.strip), min_size=1, max_size=5))
def test_any_class_name_survives_a_manifest_round_trip(class_names):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["id", "label"])
    writer.writerows([f"{index:020x}", spreadsheet_cell(name)] for index, name in enumerate(class_names))
    labels = read_manifest_labels(buffer.getvalue())
    assert [label.class_name for label in labels] == class_names


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_with_one_toolkit_error(data):
    try:
        text = decode_labels_file(data, "labels.csv")
    except ToolkitError:
        return
    for parse in (read_manifest_labels, read_label_studio_labels):
        try:
            labels = parse(text)
        except ToolkitError:
            continue
        assert all(isinstance(label.class_name, str) and isinstance(label.image_id, str) for label in labels)


@settings(max_examples=300, deadline=None)
@given(st.lists(anything_or(tasks), max_size=4))
def test_any_json_shape_is_read_or_refused_with_one_toolkit_error(exported):
    try:
        labels = read_label_studio_labels(json.dumps(exported))
    except ToolkitError:
        return
    assert all(isinstance(label.class_name, str) and label.class_name.strip() for label in labels)
