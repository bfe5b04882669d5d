"""The labeling page's server: routes, validation, what reaches the label store, and the page itself in Chromium.

Every test builds a tiny project without a model: a few generated images, a hand-made round of six, and a server
on a free port in a background thread. What the server writes to stderr is captured: a request, however malformed,
must never leave a traceback there.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from altoolkit.errors import ToolkitError
from altoolkit.labeling import server as labelserver
from altoolkit.labeling.pool import scan_pool
from altoolkit.labeling.server import UI_LETTERS, check_bind_address, make_server, serve, shortcut_keys
from altoolkit.labeling.store import BatchItem, LabelStore

CLASSES = ("cat", "dog", "bird")
RETRAIN_COMMAND = "python train.py --dataset folder --data-path labeled --label-store project --output-dir m/round-1"
CHROMIUM = Path("/usr/bin/chromium")
BATCH_SIZE = 6
SHORT_BUSY_TIMEOUT = 0.5
"""The store's busy timeout in the lock tests: long enough for a real write, short enough to test quickly."""


@dataclass
class Project:
    """A served project: the store's path, the round, the batch's ids in order, a pool image outside the batch."""

    store_path: Path
    pool: Path
    round_id: int
    batch_ids: list[str]
    outside_id: str
    relative_paths: dict[str, str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def current_labels(self) -> dict[str, str]:
        """The labels as a fresh reader of the database sees them (not through the server's connection)."""
        with LabelStore(self.store_path) as store:
            return store.current_labels()


def write_pool(pool: Path) -> None:
    """Eight distinct small images: six 28×28 PNGs (one in a sub-folder), a TIFF, and one more PNG."""
    (pool / "more").mkdir(parents=True)
    for number in range(6):
        folder = pool / "more" if number == 5 else pool
        Image.new("RGB", (28, 28), (number * 40, 200 - number * 30, 90)).save(folder / f"image_{number}.png")
    Image.new("RGB", (20, 20), (10, 120, 240)).save(pool / "image_6.tif")
    Image.new("RGB", (28, 28), (250, 250, 0)).save(pool / "image_7.png")


def start_project(tmp_path: Path, **store_options) -> tuple[LabelStore, Project]:
    pool = tmp_path / "pool"
    write_pool(pool)
    images = scan_pool(pool)
    by_path = {image.relative_path: image for image in images}
    batch_paths = ["image_0.png", "image_1.png", "image_2.png", "image_3.png", "more/image_5.png", "image_6.tif"]
    store = LabelStore(tmp_path / "project", class_names=CLASSES, **store_options)
    store.add_images(images)
    items = []
    for position, relative in enumerate(batch_paths):
        predicted = CLASSES[position % 3]
        probabilities = {name: (0.6 if name == predicted else 0.2) for name in CLASSES}
        items.append(BatchItem(by_path[relative].image_id, predicted, probabilities, {"margin": 0.4}))
    round_id = store.start_round("margin", {"budget": BATCH_SIZE}, items)
    project = Project(store.path, pool, round_id, [item.image_id for item in items], by_path["image_7.png"].image_id,
                      {image.image_id: image.relative_path for image in images}, port=0)
    return store, project


@contextlib.contextmanager
def served_project(tmp_path: Path, **store_options):
    """A project served in a background thread until the block ends."""
    store, project = start_project(tmp_path, **store_options)
    server = make_server(store, project.round_id, project.pool, port=0, labeler="tester",
                         retrain_command=RETRAIN_COMMAND)
    project.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield project
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        store.close()


@pytest.fixture
def project(tmp_path):
    with served_project(tmp_path) as project:
        yield project


@pytest.fixture
def busy_project(tmp_path):
    """A served project whose store gives up on a held write lock after SHORT_BUSY_TIMEOUT seconds."""
    with served_project(tmp_path, busy_timeout=SHORT_BUSY_TIMEOUT) as project:
        yield project


@contextlib.contextmanager
def write_lock_held(project: Project):
    """Another program's connection holding the store's write lock until the block ends."""
    holder = sqlite3.connect(project.store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def request(project: Project, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as given (no client-side normalisation of ``..`` or escapes)."""
    connection = http.client.HTTPConnection("127.0.0.1", project.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_json(project: Project, path: str, payload, timeout: float = 5, **headers) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, data = request(project, "POST", path, body, {"Content-Type": "application/json", **headers}, timeout)
    return status, json.loads(data)


def test_image_route_serves_batch_images_and_nothing_else(project):
    first = project.batch_ids[0]
    status, headers, data = request(project, "GET", f"/image/{first}")
    assert status == 200
    assert data == (project.pool / "image_0.png").read_bytes()
    assert headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"

    nested = project.batch_ids[4]
    status, _, data = request(project, "GET", f"/image/{nested}")
    assert status == 200 and data == (project.pool / "more" / "image_5.png").read_bytes()

    attempts = [
        "/image/../labels.sqlite",
        "/image/../../project/labels.sqlite",
        "/image/..%2F..%2Fetc%2Fpasswd",
        "/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/image/%2E%2E/labels.sqlite",
        "/image/....//....//etc/passwd",
        f"/image/{project.store_path}",
        "/image//etc/passwd",
        "/image/image_0.png",
        f"/image/{project.outside_id}",
        f"/image/{first.upper()}",
        f"/image/{first}/",
        f"/image/{first}%00",
        f"/image/{first}/../{project.outside_id}",
        f"/image/..?id={first}",
        f"/image/%2e%2e?{first}",
        f"/{project.pool}/image_0.png",
        "/labels.sqlite",
    ]
    for path in attempts:
        status, headers, data = request(project, "GET", path)
        assert status == 404, path
        assert b"SQLite" not in data and b"root:" not in data, path
        assert not data.startswith(b"\x89PNG"), path


def test_images_browsers_cannot_show_are_sent_as_png(project):
    tiff_id = project.batch_ids[5]
    status, headers, data = request(project, "GET", f"/image/{tiff_id}")
    assert status == 200 and headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (20, 20)
        assert image.convert("RGB").getpixel((3, 3)) == (10, 120, 240)


def test_a_pool_file_changed_since_selection_is_not_served(project, capsys):
    (project.pool / "image_1.png").write_bytes((project.pool / "image_7.png").read_bytes())
    status, _, data = request(project, "GET", f"/image/{project.batch_ids[1]}")
    assert status == 404
    assert "changed since it was selected" in json.loads(data)["error"]
    assert "image_1.png changed since it was selected" in capsys.readouterr().err


def test_batch_api_describes_the_round(project):
    status, headers, data = request(project, "GET", "/api/batch")
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "application/json"
    batch = json.loads(data)
    assert batch["round"] == project.round_id
    assert batch["classes"] == list(CLASSES)
    assert batch["shortcuts"] == {"cat": "1", "dog": "2", "bird": "3"}
    assert batch["total"] == BATCH_SIZE and batch["labeled"] == 0
    assert batch["retrain_command"] == RETRAIN_COMMAND
    assert [item["id"] for item in batch["items"]] == project.batch_ids
    assert [item["position"] for item in batch["items"]] == list(range(BATCH_SIZE))
    second = batch["items"][1]
    assert second["top"][0] == {"class": "dog", "probability": 0.6}
    assert [guess["class"] for guess in second["top"]] == ["dog", "bird", "cat"]
    assert all(item["label"] is None for item in batch["items"])


def test_page_is_served_with_a_strict_policy(project):
    status, headers, data = request(project, "GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)
    html = data.decode()
    for selector in ('id="progress"', 'id="skip"', 'id="undo"', 'id="done"', 'id="current"'):
        assert selector in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    status, _, _ = request(project, "GET", "/nothing-here")
    assert status == 404


def test_label_is_validated_and_stored(project):
    first, second = project.batch_ids[:2]
    status, answer = post_json(project, "/api/label", {"id": first, "class": "horse"})
    assert status == 400 and "unknown class" in answer["error"]
    status, answer = post_json(project, "/api/label", {"id": project.outside_id, "class": "cat"})
    assert status == 404 and "error" in answer
    status, answer = post_json(project, "/api/label", {"id": "../labels.sqlite", "class": "cat"})
    assert status == 404
    status, answer = post_json(project, "/api/label", {"id": 7, "class": "cat"})
    assert status == 400
    status, answer = post_json(project, "/api/label", {"id": first, "class": ["cat"]})
    assert status == 400
    assert project.current_labels() == {}

    status, answer = post_json(project, "/api/label", {"id": first, "class": "dog"})
    assert status == 200 and answer == {"labeled": 1, "total": BATCH_SIZE}
    status, answer = post_json(project, "/api/label", {"id": second, "class": "bird"})
    assert answer == {"labeled": 2, "total": BATCH_SIZE}
    assert project.current_labels() == {first: "dog", second: "bird"}
    with LabelStore(project.store_path) as store:
        event = store.history(first)[-1]
    assert (event.class_name, event.labeler, event.round_id, event.source) == ("dog", "tester", project.round_id,
                                                                              "page")

    status, answer = post_json(project, "/api/unlabel", {"id": first})
    assert status == 200 and answer == {"labeled": 1, "total": BATCH_SIZE}
    assert project.current_labels() == {second: "bird"}
    status, answer = post_json(project, "/api/unlabel", {"id": project.outside_id})
    assert status == 404
    assert project.current_labels() == {second: "bird"}


def test_bad_requests_are_refused_before_reaching_the_store(project):
    first = project.batch_ids[0]
    status, answer = post_json(project, "/api/label", b"id=1&class=cat")
    assert status == 400 and "JSON" in answer["error"]
    status, answer = post_json(project, "/api/label", b'["not", "an", "object"]')
    assert status == 400
    big = json.dumps({"id": first, "class": "cat", "padding": "x" * (65 * 1024)}).encode()
    status, answer = post_json(project, "/api/label", big)
    assert status == 413
    status, _, _ = request(project, "POST", "/api/label", json.dumps({"id": first, "class": "cat"}).encode(),
                           {"Content-Type": "text/plain"})
    assert status == 415
    status, answer = post_json(project, "/api/label", {"id": first, "class": "cat"}, Origin="http://evil.example")
    assert status == 403
    status, answer = post_json(project, "/api/label", {"id": first, "class": "cat"}, Host="evil.example:80")
    assert status == 403
    status, _, _ = request(project, "GET", "/api/batch", headers={"Host": "rebound.example"})
    assert status == 403
    status, answer = post_json(project, "/api/nothing", {"id": first})
    assert status == 404
    assert project.current_labels() == {}


def test_deep_nesting_and_huge_numbers_are_answered_400_without_a_traceback(project, capsys):
    first = project.batch_ids[0]
    bodies = {
        "30,000-deep array": b"[" * 30_000 + b"]" * 30_000,
        "9,000-deep object": b'{"a": ' * 9_000 + b"1" + b"}" * 9_000,
        "60,000-digit id": b'{"id": ' + b"7" * 60_000 + b', "class": "cat"}',
        "60,000-digit class": f'{{"id": "{first}", "class": -{"9" * 60_000}}}'.encode(),
        "invalid UTF-8": b'{"id": "\xff\xfe", "class": "cat"}',
        "UTF-8 byte order mark": b"\xef\xbb\xbf" + json.dumps({"id": first, "class": "cat"}).encode(),
        "NaN class": f'{{"id": "{first}", "class": NaN}}'.encode(),
        "lone surrogate id": b'{"id": "\\ud800", "class": "cat"}',
    }
    for name, body in bodies.items():
        status, answer = post_json(project, "/api/label", body)
        assert status in (400, 404), name
        assert isinstance(answer["error"], str) and len(answer["error"]) < 300, name
    assert project.current_labels() == {}
    assert capsys.readouterr().err == ""


def send_raw(project: Project, method: str, target: str, headers: dict[str, bytes | str],
             body: bytes | None = None) -> tuple[int, dict]:
    """Send a request exactly as given: no check of the target or the headers on the client's side."""
    connection = http.client.HTTPConnection("127.0.0.1", project.port, timeout=5)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": f"127.0.0.1:{project.port}", **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_unparseable_targets_and_lengths_are_answered_without_a_traceback(project, capsys):
    label = json.dumps({"id": project.batch_ids[0], "class": "cat"}).encode()
    for target in ("http://[::1/api/label", "http://[/", "//[", "//%zz"):
        assert send_raw(project, "GET", target, {})[0] == 404, target
        status, answer = send_raw(project, "POST", target, {"Content-Type": "application/json",
                                                            "Content-Length": str(len(label))}, label)
        assert status == 404 and "error" in answer, target
    for length in ("1_0", "+5", "-1", " ", "٣".encode(), "9" * 5000, "0x10"):
        status, answer = send_raw(project, "POST", "/api/label", {"Content-Type": "application/json",
                                                                  "Content-Length": length}, label)
        assert status in (400, 413) and "error" in answer, length
    assert project.current_labels() == {}
    assert capsys.readouterr().err == ""


JSON_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | JSON_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4),
    max_leaves=10)


def test_every_request_body_gets_a_json_answer_and_never_a_traceback(project, capsys):
    """Property: whatever JSON (or bytes) is posted, the answer is 200, 400 or 404 with JSON, and a 200 stored
    exactly the label that was sent."""
    ids = project.batch_ids
    label_bodies = st.fixed_dictionaries({}, optional={"id": st.sampled_from(ids) | JSON_VALUES,
                                                       "class": st.sampled_from(CLASSES) | JSON_VALUES,
                                                       "extra": JSON_VALUES})
    bodies = (label_bodies | JSON_VALUES).map(lambda value: (value, json.dumps(value).encode())) | st.binary(
        max_size=200).map(lambda data: (None, data))

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(path=st.sampled_from(["/api/label", "/api/unlabel"]), sent=bodies)
    def post_anything(path, sent):
        value, body = sent
        status, _, data = request(project, "POST", path, body, {"Content-Type": "application/json"})
        answer = json.loads(data)
        assert status in (200, 400, 404), (status, answer)
        if status != 200:
            assert isinstance(answer["error"], str) and len(answer["error"]) < 300
            return
        assert answer["total"] == BATCH_SIZE
        with LabelStore(project.store_path) as store:
            assert store.history(value["id"])[-1].class_name == (value["class"] if path == "/api/label" else None)

    post_anything()
    assert "Traceback" not in capsys.readouterr().err


def test_a_post_during_another_programs_write_lock_gets_503_and_nothing_locks_up(busy_project):
    project = busy_project
    ids = project.batch_ids
    label = json.dumps({"id": ids[0], "class": "cat"}).encode()
    with write_lock_held(project):
        started = time.monotonic()
        status, headers, data = request(project, "POST", "/api/label", label, {"Content-Type": "application/json"})
        waited = time.monotonic() - started
    assert status == 503, data
    assert headers["retry-after"] == "1"
    assert "busy" in json.loads(data)["error"]
    assert SHORT_BUSY_TIMEOUT * 0.8 < waited < SHORT_BUSY_TIMEOUT + 2
    assert project.current_labels() == {}

    sent = [(ids[number % BATCH_SIZE], CLASSES[number % len(CLASSES)]) for number in range(40)]
    answers: dict[int, int | str] = {}

    def post_label(number: int) -> None:
        """Post like the page: a 503 (forty writers can queue past the short timeout on a loaded machine) is
        sent again, a bounded number of times; a connection error is recorded as the answer."""
        image_id, class_name = sent[number]
        for _ in range(50):
            try:
                answers[number] = post_json(project, "/api/label", {"id": image_id, "class": class_name},
                                            timeout=25)[0]
            except OSError as error:
                answers[number] = repr(error)
                return
            if answers[number] != 503:
                return
            time.sleep(0.1)

    threads = [threading.Thread(target=post_label, args=(number,), daemon=True) for number in range(len(sent))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not [thread for thread in threads if thread.is_alive()], "posts still waiting for the server"
    assert answers == {number: 200 for number in range(len(sent))}
    with LabelStore(project.store_path, read_only=True) as store:
        stored = sorted((event.image_id, event.class_name) for image_id in ids for event in store.history(image_id))
    assert stored == sorted(sent)


def test_bind_address_must_be_loopback_unless_remote_is_allowed():
    with pytest.raises(ToolkitError, match="--allow-remote"):
        check_bind_address("0.0.0.0", False)
    with pytest.raises(ToolkitError, match="--allow-remote"):
        check_bind_address("192.168.1.20", False)
    with pytest.raises(ToolkitError):
        check_bind_address("", False)
    with pytest.raises(ToolkitError):
        check_bind_address("example.com", False)
    check_bind_address("0.0.0.0", True)
    check_bind_address("127.0.0.1", False)
    check_bind_address("127.3.4.5", False)
    check_bind_address("::1", False)
    check_bind_address("[::1]", False)
    check_bind_address("localhost", False)


def test_shortcut_keys_skip_the_pages_own_keys():
    twelve = [f"class {number}" for number in range(12)]
    assert list(shortcut_keys(twelve).values()) == list("123456789abc")
    many = [f"class {number}" for number in range(40)]
    keys = shortcut_keys(many)
    assert len(keys) == 33 and len(set(keys.values())) == 33
    assert not set(keys.values()) & {*UI_LETTERS, " "}
    assert list(keys.values())[9:] == [letter for letter in "abcdefghijklmnopqrstuvwxyz" if letter not in "su"]
    assert "class 33" not in keys
    assert shortcut_keys([str(number) for number in range(10)]) == {str(number): str(number) for number in range(10)}
    assert shortcut_keys(["s", "t"]) == {"s": "1", "t": "2"}


def test_make_server_reports_a_busy_port_in_one_line(tmp_path):
    store, project = start_project(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ToolkitError, match=f"cannot serve on 127.0.0.1:{port}") as caught:
            make_server(store, project.round_id, project.pool, port=port)
    assert "\n" not in str(caught.value)
    with pytest.raises(ToolkitError, match="--allow-remote"):
        make_server(store, project.round_id, project.pool, host="0.0.0.0", port=0)
    with pytest.raises(ToolkitError, match="--pool"):
        make_server(store, project.round_id, tmp_path / "moved", port=0)
    store.close()


def test_serve_prints_the_address_then_stops_cleanly_on_ctrl_c(tmp_path, monkeypatch, capsys):
    store, project = start_project(tmp_path)
    seen = {}
    real_serve_forever = labelserver.LabelingServer.serve_forever

    def serve_until_one_request(server):
        thread = threading.Thread(target=real_serve_forever, args=(server, 0.05), daemon=True)
        thread.start()
        project.port = server.server_address[1]
        seen["status"] = request(project, "GET", "/api/batch")[0]
        server.shutdown()
        thread.join(timeout=5)
        raise KeyboardInterrupt

    monkeypatch.setattr(labelserver.LabelingServer, "serve_forever", serve_until_one_request)
    monkeypatch.setattr(labelserver.webbrowser, "open", lambda url: seen.setdefault("browser", url))
    serve(store, project.round_id, project.pool, host="127.0.0.1", port=0, allow_remote=False, labeler="tester",
          retrain_command=RETRAIN_COMMAND, open_browser=True)
    output = capsys.readouterr()
    lines = output.out.splitlines()
    assert len(lines) == 1
    match = re.fullmatch(r"serving round (\d+) \((\d+) images\) at (http://127\.0\.0\.1:(\d+)/) — Ctrl-C to stop",
                         lines[0])
    assert match and int(match[1]) == project.round_id and int(match[2]) == BATCH_SIZE
    assert seen == {"browser": match[3], "status": 200}
    assert "stopped: 0 of 6 labeled" in output.err
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", int(match[4])))
    store.close()


def chromium_api():
    """Playwright's sync API, to drive Debian's Chromium; skips without them unless AL_REQUIRE_BROWSER=1."""
    if os.environ.get("AL_REQUIRE_BROWSER") == "1":
        assert CHROMIUM.exists(), f"{CHROMIUM} is missing but AL_REQUIRE_BROWSER=1: install Debian's chromium"
        from playwright import sync_api

        return sync_api
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser test")
    return sync_api


def test_labeling_in_the_browser(project):
    sync_api = chromium_api()
    ids = project.batch_ids
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(5000)
            refused = []

            def refuse_when_asked(route):
                """Answer one label request as a server that refuses it would (interception is on from the start:
                routes added mid-session can miss a request in Chromium)."""
                if refused == ["next"]:
                    refused[:] = [route.request.post_data_json]
                    route.fulfill(status=400, content_type="application/json",
                                  body=json.dumps({"error": "unknown class 'x'"}))
                else:
                    route.continue_()

            page.route("**/api/label", refuse_when_asked)
            page.goto(project.url)
            current = page.locator("img#current")
            sync_api.expect(page.locator("#progress")).to_have_text("0 of 6 labeled")
            page.wait_for_selector("img#current.loaded")
            assert current.get_attribute("src") == f"/image/{ids[0]}"
            box = current.bounding_box()
            assert box["width"] >= 400 and box["height"] >= 400
            assert "pixelated" in current.get_attribute("class")
            assert page.locator('[data-class="cat"] kbd').inner_text() == "1"
            assert "predicted" in page.locator('[data-class="cat"]').get_attribute("class")

            def settled():
                page.wait_for_selector("body[data-pending='0']", state="attached")

            page.click('[data-class="dog"]')
            page.keyboard.press("3")
            page.click('[data-class="cat"]')
            page.keyboard.press("1")
            sync_api.expect(page.locator("#position")).to_have_text("image 5 of 6")
            page.keyboard.press("u")
            sync_api.expect(page.locator("#position")).to_have_text("image 4 of 6")
            page.locator('[data-class="bird"]').focus()
            page.keyboard.press(" ")
            sync_api.expect(page.locator("#position")).to_have_text("image 5 of 6")
            page.keyboard.press("2")
            settled()
            sync_api.expect(page.locator("#progress")).to_have_text("4 of 6 labeled")
            sync_api.expect(page.locator("#position")).to_have_text("image 6 of 6")
            assert project.current_labels() == {ids[0]: "dog", ids[1]: "bird", ids[2]: "cat", ids[4]: "dog"}

            refused.append("next")
            page.keyboard.press("1")
            sync_api.expect(page.locator("#message")).to_contain_text("unknown class 'x'")
            assert refused == [{"id": ids[5], "class": "cat"}]
            settled()
            sync_api.expect(page.locator("#progress")).to_have_text("4 of 6 labeled")
            assert ids[5] not in project.current_labels()
            page.click("#skip")
            sync_api.expect(page.locator("#position")).to_have_text("image 6 of 6")

            page.keyboard.press("1")
            sync_api.expect(page.locator("#position")).to_have_text("image 4 of 6")
            assert page.locator("#done").is_hidden()
            page.click('[data-class="bird"]')
            sync_api.expect(page.locator("#done")).to_be_visible()
            sync_api.expect(page.locator("#retrain-command")).to_have_text(RETRAIN_COMMAND)
            sync_api.expect(page.locator("#progress")).to_have_text("6 of 6 labeled")
            settled()
            assert project.current_labels() == {ids[0]: "dog", ids[1]: "bird", ids[2]: "cat", ids[3]: "bird",
                                                ids[4]: "dog", ids[5]: "cat"}

            page.keyboard.press("Backspace")
            sync_api.expect(page.locator("#done")).to_be_hidden()
            sync_api.expect(page.locator("#position")).to_have_text("image 4 of 6")
            settled()
            assert ids[3] not in project.current_labels()
            sync_api.expect(page.locator("#progress")).to_have_text("5 of 6 labeled")
        finally:
            browser.close()


def test_the_page_keeps_labels_the_busy_store_could_not_take_and_resends_them_in_order(busy_project):
    sync_api = chromium_api()
    ids = busy_project.batch_ids
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(10000)
            page.goto(busy_project.url)
            sync_api.expect(page.locator("#progress")).to_have_text("0 of 6 labeled")
            with write_lock_held(busy_project):
                page.keyboard.press("1")
                page.keyboard.press("2")
                page.keyboard.press("u")
                sync_api.expect(page.locator("#save-state")).to_contain_text("retrying")
                sync_api.expect(page.locator("#status")).to_have_text("label withdrawn · saving…")
                page.keyboard.press("ArrowLeft")
                sync_api.expect(page.locator("#status")).to_have_text("labeled cat · saving…")
                assert page.locator("body").get_attribute("data-pending") == "3"
                page.wait_for_selector("img#current.loaded")
                assert busy_project.current_labels() == {}
            page.wait_for_selector("body[data-pending='0']", state="attached")
            sync_api.expect(page.locator("#save-state")).to_have_text("all labels saved")
            sync_api.expect(page.locator("#status")).to_have_text("labeled cat")
            assert page.locator("#message.error").count() == 0
        finally:
            browser.close()
    assert busy_project.current_labels() == {ids[0]: "cat"}
    with LabelStore(busy_project.store_path) as store:
        assert [event.class_name for event in store.history(ids[1])] == ["dog", None]
