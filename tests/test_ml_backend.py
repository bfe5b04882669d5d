"""``label.py ml-backend``: Label Studio's ML backend protocol on a live project.

The protocol tests send the JSON Label Studio sends (the shapes of its ML API connector and webhooks, as in
Label Studio 1.23) to a backend served in a thread. The last test runs a real Label Studio (pip's
``label-studio``, pinned, in its own virtual environment cached outside the project) on 127.0.0.1 with a
throw-away data folder, and drives it through ``label-studio-sdk``: connect the backend, retrieve predictions,
annotate, train.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import AL_functions as alf
import label
from altoolkit.labeling.ml_backend import make_backend_server
from altoolkit.labeling.store import LabelStore
from test_live_labeling import REPO, selected_project, true_classes  # noqa: F401 (a fixture)

LABEL_STUDIO_VERSION = "1.23.2"
LABEL_STUDIO_HOME = Path(os.environ.get("AL_LABEL_STUDIO_HOME", Path.home() / ".cache" / "al-toolkit" /
                                        f"label-studio-{LABEL_STUDIO_VERSION}"))
"""The cached virtual environment (``venv/``) and a migrated data folder to copy (``data-template/``)."""
TOKEN = "0123456789abcdef0123456789abcdef01234567"
LABEL_CONFIG = ('<View><Image name="image" value="$image"/><Choices name="label" toName="image" choice="single">'
                '<Choice value="0"/><Choice value="1"/><Choice value="2"/></Choices></View>')
REFIT_EVERY = 3


@pytest.fixture
def project(selected_project, tmp_path):  # noqa: F811 (the imported fixture)
    root, truth = selected_project
    shutil.copytree(root / "project", tmp_path / "project")
    return tmp_path / "project", true_classes(tmp_path / "project", truth)


@pytest.fixture
def backend(project):
    path, classes = project
    store = LabelStore(path)
    server = make_backend_server(store, store.resolve_round(None), Path(store.get_meta("pool")), alf.select, port=0,
                                 refit_every=REFIT_EVERY)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], store, classes
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def call(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def task(number: int, image_id: str) -> dict:
    """A task as Label Studio serialises it (TaskSimpleSerializer): id, data, meta, timestamps, project."""
    return {"id": number, "data": {"image": f"/data/local-files/?d=round-001/images/{image_id}.png",
                                   "image_id": image_id, "round": 1},
            "meta": {}, "created_at": "2026-11-26T10:00:00Z", "updated_at": "2026-11-26T10:00:00Z",
            "is_labeled": False, "overlap": 1, "inner_id": number, "total_annotations": 0, "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None,
            "project": 1, "updated_by": None, "file_upload": None, "comment_authors": [], "annotations": [],
            "predictions": []}


def annotation_event(number: int, image_id: str, class_name: str, action: str = "ANNOTATION_CREATED") -> dict:
    """An annotation webhook as Label Studio sends it to an ML backend (payload of ANNOTATION_CREATED/UPDATED)."""
    return {"action": action, "project": {"id": 1, "title": "digits", "label_config": LABEL_CONFIG},
            "task": task(number, image_id),
            "annotation": {"id": 100 + number, "completed_by": 1, "was_cancelled": False, "ground_truth": False,
                           "lead_time": 2.5, "task": number, "project": 1, "result": [
                               {"id": "a1", "type": "choices", "value": {"choices": [class_name]}, "origin": "manual",
                                "to_name": "image", "from_name": "label"}]}}


def test_health_setup_and_predictions_order_the_tasks_by_the_queue(backend):
    port, store, _ = backend
    status, health = call(port, "/health")
    assert status == 200 and health["status"] == "UP"
    status, setup = call(port, "/setup", {"project": "1.1764150000", "schema": LABEL_CONFIG,
                                           "hostname": "http://localhost:8080", "access_token": "x",
                                           "extra_params": None})
    assert (status, setup) == (200, {"model_version": "al-toolkit round 1"})
    status, refused = call(port, "/setup", {"project": "1.1764150000", "schema": LABEL_CONFIG.replace('"2"', '"7"')})
    assert status == 400 and "'7'" in refused["error"]

    batch = store.batch(1)
    asked = [batch[2].image_id, batch[0].image_id, "f" * 20]
    status, answer = call(port, "/predict", {"tasks": [task(n, image_id) for n, image_id in enumerate(asked)],
                                             "project": "1.1764150000", "label_config": LABEL_CONFIG,
                                             "params": {"login": None, "password": None, "context": None}})
    assert status == 200
    first, second, outside = answer["results"]
    assert (first["score"], second["score"], outside["score"]) == (2 / len(batch), 0.0, 1.0)
    assert first["result"] == [{"from_name": "label", "to_name": "image", "type": "choices",
                                "value": {"choices": [batch[2].predicted_class]},
                                "score": batch[2].probabilities[batch[2].predicted_class]}]
    assert outside["result"] == [] and first["model_version"] == "al-toolkit round 1"
    status, refused = call(port, "/predict", {"tasks": "all"})
    assert status == 400 and "tasks" in refused["error"]


def test_annotation_webhooks_write_labels_and_refit_after_every_few(backend):
    port, store, classes = backend
    batch = store.batch(1)
    for number, item in enumerate(batch[:REFIT_EVERY]):
        status, answer = call(port, "/webhook", annotation_event(number, item.image_id, classes[item.image_id]))
        assert status == 200 and answer["recorded"] == 1
    assert answer["reorder"] == 1 and store.reorders(1)[0]["labels_used"] == REFIT_EVERY
    assert store.current_labels() == {item.image_id: classes[item.image_id] for item in batch[:REFIT_EVERY]}
    assert {event.source for item in batch[:REFIT_EVERY] for event in store.history(item.image_id)} == {
        "label-studio-ml"}

    status, answer = call(port, "/predict", {"tasks": [task(9, batch[0].image_id)], "label_config": LABEL_CONFIG})
    assert answer["results"][0]["score"] == 1.0 and answer["model_version"] == "al-toolkit round 1 refit 1"
    order = [item.image_id for item in store.reorder_items(1)]
    status, answer = call(port, "/predict", {"tasks": [task(9, order[0])], "label_config": LABEL_CONFIG})
    assert answer["results"][0]["score"] == 0.0

    status, answer = call(port, "/webhook", {"action": "START_TRAINING", "project": {"id": 1}})
    assert status == 200 and answer["reorder"] == 2
    status, answer = call(port, "/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert (status, answer["status"]) == (200, "ignored")


def test_annotations_of_unknown_classes_or_other_images_change_nothing(backend):
    port, store, classes = backend
    batch = store.batch(1)
    status, answer = call(port, "/webhook", annotation_event(1, batch[0].image_id, "seven"))
    assert status == 400 and "unknown class 'seven'" in answer["error"]
    good = {"id": 2, "data": task(2, batch[1].image_id)["data"], "annotations": [
        annotation_event(2, batch[1].image_id, classes[batch[1].image_id])["annotation"]]}
    outside = {"id": 3, "data": task(3, "e" * 20)["data"], "annotations": [
        annotation_event(3, "e" * 20, "1")["annotation"]]}
    status, answer = call(port, "/train", {"annotations": [good, outside], "project": "1.1764150000",
                                           "label_config": LABEL_CONFIG, "params": {}})
    assert status == 400 and "not in round 1's batch" in answer["error"]
    assert store.current_labels() == {} and store.reorders(1) == []
    status, answer = call(port, "/train", {"annotations": [good], "project": "1.1764150000"})
    assert status == 200 and answer["recorded"] == 1 and answer["reorder"] == 1
    for body in (b"[1, 2]", b"{not json"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/webhook", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 400 and "JSON object" in json.loads(response.read())["error"]
        connection.close()


def label_studio_python() -> Path:
    """The cached Label Studio environment's Python, installed on first use (a few minutes); skips when pip
    cannot install it, unless AL_REQUIRE_LABEL_STUDIO=1."""
    python = LABEL_STUDIO_HOME / "venv" / "bin" / "python"
    if python.exists() and (LABEL_STUDIO_HOME / "venv" / ".installed").exists():
        return python
    shutil.rmtree(LABEL_STUDIO_HOME / "venv", ignore_errors=True)
    LABEL_STUDIO_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(LABEL_STUDIO_HOME / "venv")], check=True)
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                                f"label-studio=={LABEL_STUDIO_VERSION}"], capture_output=True, text=True, timeout=1200)
    if installed.returncode != 0:
        message = f"pip could not install label-studio {LABEL_STUDIO_VERSION}: {installed.stderr[-500:]}"
        if os.environ.get("AL_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(message)
        pytest.skip(message)
    (LABEL_STUDIO_HOME / "venv" / ".installed").touch()
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def label_studio(data: Path):
    """Label Studio on 127.0.0.1 with data folder ``data`` (a copy of the cached migrated one); its URL.

    A local ML backend needs ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false (Label Studio refuses
    loopback addresses for backends and webhooks otherwise); the legacy token lets the SDK log in as the user the
    template was made with."""
    python = label_studio_python()
    template = LABEL_STUDIO_HOME / "data-template"
    first_start = not (template / ".ready").exists()
    if first_start:
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
    shutil.copytree(template, data, dirs_exist_ok=True)
    port = free_port()
    environment = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "ML_BLOCK_LOCAL_IP": "false",
                   "SSRF_PROTECTION_ENABLED": "false", "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
    user = ["--username", "tester@example.com", "--password", "not-a-secret", "--user-token", TOKEN]
    process = subprocess.Popen([str(python.parent / "label-studio"), "start", "--no-browser", "--host", "127.0.0.1",
                                "--port", str(port), "--data-dir", str(data), *user], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            assert process.poll() is None, "Label Studio stopped while starting"
            time.sleep(0.5)
        else:
            raise AssertionError("Label Studio did not answer /health within 5 minutes")
        if first_start:
            shutil.copytree(data, template, dirs_exist_ok=True)
            (template / ".ready").touch()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_real_label_studio_gets_predictions_sends_annotations_and_trains(project, tmp_path):
    path, classes = project
    assert label.main(["export", "--project", str(path)]) == 0
    with LabelStore(path) as store:
        batch = store.batch(1)
    answers = {item.image_id: classes[item.image_id] for item in batch[:2 * REFIT_EVERY]}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    backend = subprocess.Popen([sys.executable, str(REPO / "label.py"), "ml-backend", "--project", str(path),
                                "--port", "0", "--refit-every", str(REFIT_EVERY)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = backend.stdout.readline()
        match = re.search(r"http://[^\s]+", line)
        assert match, f"{line!r} {backend.stderr.read() if backend.poll() is not None else ''}"
        with label_studio(tmp_path / "label-studio") as url:
            session = subprocess.run([str(label_studio_python()), str(REPO / "tests" / "label_studio_session.py"), url,
                                      TOKEN, match.group(0), str(path / "batches" / "round-001"),
                                      str(tmp_path / "answers.json")], capture_output=True, text=True, timeout=600)
        assert session.returncode == 0, session.stderr[-3000:]
        seen = json.loads(session.stdout.strip().splitlines()[-1])
    finally:
        backend.terminate()
        backend.wait(timeout=30)
        backend.stdout.close()
        backend.stderr.close()

    assert "Connected" in seen["state"] or seen["state"].endswith("CO"), seen["state"]
    scores = sorted(predictions[0]["score"] for predictions in seen["before"].values())
    assert scores == pytest.approx([position / len(batch) for position in range(len(batch))], abs=1e-6)
    assert all(seen["before"][item.image_id][0]["choices"] == [item.predicted_class] for item in batch)
    with LabelStore(path) as store:
        assert store.current_labels() == answers
        assert {event.source for image_id in answers for event in store.history(image_id)} == {"label-studio-ml"}
        reorders = store.reorders(1)
    used = [record["labels_used"] for record in reorders]
    assert used[0] >= REFIT_EVERY and used[-1] == len(answers) and len(used) >= 2, used
    assert seen["model_version"] == f"al-toolkit round 1 refit {reorders[-1]['reorder']}"
    latest = [prediction for predictions in seen["after"].values() for prediction in predictions
              if prediction["model_version"] == seen["model_version"]]
    waiting = len(batch) - len(answers)
    assert sorted(prediction["score"] for prediction in latest if prediction["score"] < 1) == pytest.approx(
        [position / waiting for position in range(waiting)], abs=1e-6)
