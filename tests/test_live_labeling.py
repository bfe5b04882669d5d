"""The live queue: the stopping computations on hand-made cases, the refit's order, the store's record of each
reorder, and a person labeling 30 images in Chromium against the real ``label.py serve --live`` (its worker
process refitting meanwhile), then the server killed during a refit.

One digits project (three classes, three labeled images each, a pool of 80) is selected once per session by the
real ``label.py select`` without a model (tests/test_ml_backend.py uses it too); each test serves its own copy.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import AL_functions as alf
import label
from altoolkit.labeling.live import LiveRound, refit_order, start_worker
from altoolkit.labeling.store import BatchItem, LabelStore
from altoolkit.stopping import (accuracy_with_error, cohens_kappa, cross_validated_accuracy, fold_count,
                                stabilizing_predictions)
from test_labelserver import CHROMIUM, chromium_api

REPO = Path(__file__).resolve().parents[1]
CLASSES = (0, 1, 2)
BUDGET = 40
LABELED_IN_SESSION = 30
REFIT_EVERY = 10
LATENCY_P95_MS = 100
REFIT_STARTED = r"live: refit started"
REORDER_RECORDED = r"live: reorder \d+ recorded"


def test_cohens_kappa_on_hand_made_predictions():
    # agreement 3/4; chance 0.5 × 0.25 + 0.5 × 0.75 = 0.5; kappa (0.75 − 0.5) / (1 − 0.5) = 0.5
    assert cohens_kappa([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    assert cohens_kappa([2, 2, 2], [2, 2, 2]) == 1.0
    assert cohens_kappa([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_stabilizing_predictions_stops_once_the_last_three_kappas_average_099():
    assert stabilizing_predictions([1.0, 1.0]).as_dict()["refits_needed"] == 1
    assert not stabilizing_predictions([1.0, 1.0]).stop
    waiting = stabilizing_predictions([0.5, 1.0, 0.9, 1.0])
    assert not waiting.stop and waiting.mean_kappa == pytest.approx(2.9 / 3)
    stable = stabilizing_predictions([0.5, 1.0, 0.99, 1.0])
    assert stable.stop and stable.mean_kappa == pytest.approx(2.99 / 3)


def test_accuracy_estimate_and_its_folds():
    accuracy, error = accuracy_with_error(8, 10)
    assert accuracy == 0.8 and error == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    assert fold_count([0, 0, 0, 1, 1, 1, 1, 1, 1, 1]) == 3
    assert fold_count([0, 0, 1]) == 0 and fold_count([1, 1, 1]) == 0
    from altoolkit.learners import make_learner

    separable = np.array([[0.0], [0.1], [0.2], [0.3], [5.0], [5.1], [5.2], [5.3]])
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    estimate = cross_validated_accuracy(separable, classes, lambda: make_learner("linear", 2), seed=0)
    assert (estimate.accuracy, estimate.standard_error, estimate.folds, estimate.labels) == (1.0, 0.0, 4, 8)
    assert cross_validated_accuracy(separable[:5], classes[:5], lambda: make_learner("linear", 2)) is None


def test_a_refit_puts_the_strategys_picks_first_then_the_least_certain():
    """Two labeled classes at −3 and +3 on a line; the queue's points nearer 0 are less certain. Margin picks
    the two nearest 0 first; the rest follow by margin."""
    queue = np.array([[2.5], [0.2], [-1.0], [-0.1], [2.0], [-2.8]])
    labeled = np.array([[-3.0], [-2.9], [3.0], [2.9]])
    settings = LiveRound("margin", "patches", "linear", 0, 32, None, None)
    refit = refit_order(queue, labeled, np.array([0, 0, 1, 1]), 2, select=alf.select, settings=settings,
                        next_count=2, stop_features=queue)
    assert refit.ran == "margin"
    assert sorted(refit.order[:2].tolist()) == [1, 3] and refit.selected.sum() == 2
    assert refit.order[2:].tolist() == [2, 4, 0, 5]
    assert refit.stop_predictions.tolist() == [1, 1, 0, 0, 1, 0]


def test_a_reorder_is_recorded_with_the_labels_it_used(tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    for number in range(3):
        Image.new("RGB", (8, 8), (number * 80, 10, 10)).save(pool / f"{number}.png")
    from altoolkit.labeling.pool import scan_pool

    images = scan_pool(pool)
    with LabelStore(tmp_path / "project", class_names=("a", "b")) as store:
        store.add_images(images)
        items = [BatchItem(image.image_id, "a", {"a": 0.5, "b": 0.5}) for image in images]
        round_id = store.start_round("margin", {}, items)
        store.set_label(images[0].image_id, "b", labeler="ann", round_id=round_id)
        last_row, labels = store.labels_up_to()
        reorder = store.record_reorder(round_id, last_row, len(labels), "margin", {"kappa": None},
                                       [BatchItem(images[2].image_id, "b", {"a": 0.1, "b": 0.9}, {"margin": 0.8}),
                                        BatchItem(images[1].image_id, "a", {"a": 0.6, "b": 0.4}, {"margin": 0.2})])
        store.set_label(images[1].image_id, "a", labeler="ann", round_id=round_id)
        (record,) = store.reorders(round_id)
        assert (record["reorder"], record["last_label_row"], record["labels_used"]) == (reorder, 1, 1)
        assert [item.image_id for item in store.reorder_items(reorder)] == [images[2].image_id, images[1].image_id]
        assert store.label_rows_after(round_id, record["last_label_row"]) == 1
        assert store.batch(round_id) == items
        assert store.labels_up_to() == (2, {images[0].image_id: "b", images[1].image_id: "a"})


def write_digit(digits, index: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ink = 255 - np.round(digits.images[index] * (255 / 16)).astype(np.uint8)
    Image.fromarray(ink, mode="L").resize((32, 32), Image.NEAREST).convert("RGB").save(path)


@pytest.fixture(scope="session")
def selected_project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(root holding project/, pool/, labeled/; pool file name → true class): round 1 of 40, no model."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("live")
    rows = [index for index in range(len(digits.target)) if digits.target[index] in CLASSES]
    truth = {}
    for position, index in enumerate(rows[:89]):
        if position < 9:
            write_digit(digits, index, root / "labeled" / str(digits.target[index]) / f"{index}.png")
        else:
            write_digit(digits, index, root / "pool" / f"{index}.png")
            truth[f"{index}.png"] = str(digits.target[index])
    assert label.main(["select", "--project", str(root / "project"), "--pool", str(root / "pool"), "--labeled",
                       str(root / "labeled"), "--budget", str(BUDGET)]) == 0
    return root, truth


class Server:
    """``label.py serve`` in its own process; stderr lines are collected as they come."""

    def __init__(self, project: Path):
        self.process = subprocess.Popen([sys.executable, str(REPO / "label.py"), "serve", "--project", str(project),
                                         "--port", "0", "--no-browser", "--labeler", "ann", "--refit-every",
                                         str(REFIT_EVERY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"http://[^\s/]+/", line)
        assert match and "live" in line, f"{line!r}"
        self.url = match.group(0)
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for line in self.process.stderr:
            self.errors.append(line)

    def wait_for(self, pattern: str, timeout: float = 90, occurrence: int = 1) -> re.Match:
        """The ``occurrence``-th stderr line matching ``pattern``, as soon as it is printed (polled every 10 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = [match for match in map(lambda line: re.search(pattern, line), list(self.errors)) if match]
            if len(matches) >= occurrence:
                return matches[occurrence - 1]
            time.sleep(0.01)
        raise AssertionError(f"no {pattern!r} (#{occurrence}) on the server's stderr: {''.join(self.errors)}")

    def printed(self, pattern: str) -> int:
        """How many stderr lines so far match ``pattern``."""
        return sum(1 for line in list(self.errors) if re.search(pattern, line))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._reader.join(timeout=5)


@pytest.fixture
def live_server(selected_project, tmp_path):
    root, truth = selected_project
    project = tmp_path / "project"
    shutil.copytree(root / "project", project)
    server = Server(project)
    try:
        yield server, project, truth
    finally:
        server.stop()


def true_classes(project: Path, truth: dict[str, str]) -> dict[str, str]:
    with LabelStore(project) as store:
        return {image.image_id: truth[image.relative_path] for image in store.images()}


def test_a_person_labels_30_images_while_the_queue_learns(live_server, capsys):
    sync_api = chromium_api()
    server, project, truth = live_server
    classes = true_classes(project, truth)
    with LabelStore(project) as store:
        batch_ids = store.batch_image_ids(1)
    shown = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(10000)
            page.goto(server.url)
            page.evaluate("performance.setResourceTimingBufferSize(5000)")
            sync_api.expect(page.locator("#progress")).to_have_text(f"0 of {BUDGET} labeled")
            sync_api.expect(page.locator("#live")).to_be_visible()
            for count in range(1, LABELED_IN_SESSION + 1):
                image_id = page.locator("img#current").get_attribute("src").rsplit("/", 1)[1]
                shown.append(image_id)
                page.keyboard.press(classes[image_id])
                if count == REFIT_EVERY:
                    sync_api.expect(page.locator("body")).to_have_attribute("data-reorder", "1", timeout=90000)
                elif count == 2 * REFIT_EVERY:
                    # the next labels are posted the moment the second refit starts, without a pause until it is
                    # recorded: so posts are measured while it runs, however fast this machine refits
                    server.wait_for(REFIT_STARTED, occurrence=2)
                elif server.printed(REFIT_STARTED) < 2 or server.printed(REORDER_RECORDED) >= 2:
                    page.wait_for_timeout(150)  # a person's pace
            page.wait_for_selector("body[data-pending='0']", state="attached")
            sync_api.expect(page.locator("#progress")).to_have_text(f"{LABELED_IN_SESSION} of {BUDGET} labeled")
            # the second refit starts at the 20th label or a little later (the worker looks every 0.25 s)
            sync_api.expect(page.locator("body")).to_have_attribute("data-reorder", re.compile("^[23]$"),
                                                                    timeout=90000)
            sync_api.expect(page.locator("#live-estimate")).to_contain_text("-fold CV on")
            posts = page.evaluate("performance.getEntriesByType('resource').filter(e => e.name.endsWith('/api/label'))"
                                  ".map(e => [performance.timeOrigin + e.startTime, e.duration])")
        finally:
            browser.close()

    with LabelStore(project) as store:
        assert store.current_labels() == {image_id: classes[image_id] for image_id in shown}
        reorders = store.reorders(1)
        first_order = [item.image_id for item in store.reorder_items(reorders[0]["reorder"])]
    # "recommended" runs its regime's strategy for the labels each refit had (typical images first, then margin)
    assert [record["strategy"] for record in reorders] == [
        alf.recommended_choice(record["details"]["labeled"], len(CLASSES), "linear")[0] for record in reorders]
    assert reorders[0]["strategy"] == "typicality"
    used = [record["labels_used"] for record in reorders]
    assert used[0] == REFIT_EVERY and all(later - earlier >= REFIT_EVERY for earlier, later in zip(used, used[1:]))
    # the order the person saw after the first refit is the refit's, not the selection's
    expected = [image_id for image_id in first_order if image_id != shown[REFIT_EVERY]][:REFIT_EVERY - 1]
    assert shown[REFIT_EVERY + 1:2 * REFIT_EVERY] == expected
    assert shown[REFIT_EVERY + 1:] != batch_ids[REFIT_EVERY + 1:LABELED_IN_SESSION]

    capsys.readouterr()
    assert label.main(["status", "--project", str(project)]) == 0
    status = capsys.readouterr().out
    assert re.search(rf"live: reorder {reorders[-1]['reorder']} ran \w+ on \d+ labels; accuracy \d+% ± \d+% "
                     r"\(\d-fold CV on \d+ labels\); stop signal after \d more refit", status), status

    durations = sorted(duration for _, duration in posts)
    assert len(durations) == LABELED_IN_SESSION
    p95 = durations[math.ceil(0.95 * len(durations)) - 1]
    print(f"label posts: median {durations[len(durations) // 2]:.1f} ms, p95 {p95:.1f} ms, max {durations[-1]:.1f} ms")
    assert p95 < LATENCY_P95_MS, durations
    refits = [(record["details"]["refit_started"] * 1000,
               (record["details"]["refit_started"] + record["details"]["refit_seconds"]) * 1000)
              for record in reorders]
    during = [start for start, _ in posts if any(begin <= start <= end for begin, end in refits)]
    assert during, f"no label was posted while a refit ran: posts {posts}, refits {refits}"


def test_no_label_is_lost_when_the_server_is_killed_during_a_refit(live_server):
    server, project, truth = live_server
    classes = true_classes(project, truth)
    worker = int(server.wait_for(r"worker process (\d+)").group(1))
    batch = json.load(urllib.request.urlopen(server.url + "api/batch", timeout=10))
    given = {}
    for item in batch["items"][:REFIT_EVERY]:
        request = urllib.request.Request(server.url + "api/label", method="POST",
                                         data=json.dumps({"id": item["id"], "class": classes[item["id"]]}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        given[item["id"]] = classes[item["id"]]
    server.wait_for("refit started")
    killed_at = time.time()
    server.process.kill()
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 60
    while worker_running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not worker_running(worker), "the worker outlived its server"
    with LabelStore(project) as store:
        assert store.current_labels() == given
        (record,) = store.reorders(1)  # the refit the kill interrupted the server during, recorded whole after it
        assert record["created_at"] > killed_at and record["labels_used"] == REFIT_EVERY
        assert len(store.reorder_items(record["reorder"])) == BUDGET - REFIT_EVERY

    again = Server(project)
    try:
        batch = json.load(urllib.request.urlopen(again.url + "api/batch", timeout=10))
        assert {item["id"]: item["label"] for item in batch["items"] if item["label"]} == given
    finally:
        again.stop()


def worker_running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (an orphan's exit may wait to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


FAILED_ONCE: list[str] = []


def select_failing_once(*args, **kwargs):
    """AL_functions.select, except that its first call in a process fails (as a refit's bug would)."""
    if not FAILED_ONCE:
        FAILED_ONCE.append("failed")
        raise RuntimeError("a refit's bug")
    return alf.select(*args, **kwargs)


def test_a_failed_refit_is_printed_and_the_order_stays_until_the_next_one_works(selected_project, tmp_path, capfd):
    root, truth = selected_project
    project = tmp_path / "project"
    shutil.copytree(root / "project", project)
    classes = true_classes(project, truth)
    with LabelStore(project) as store:
        batch = store.batch_image_ids(1)
        worker = start_worker(project, 1, Path(store.get_meta("pool")), 2, select_failing_once)
        try:
            for image_id in batch[:2]:
                store.set_label(image_id, classes[image_id], labeler="ann", round_id=1)
            deadline = time.monotonic() + 90
            errors = ""
            while "refit failed" not in errors and time.monotonic() < deadline:
                time.sleep(0.2)
                errors += capfd.readouterr().err
            assert "live: refit failed, the page keeps the previous order" in errors and "a refit's bug" in errors
            assert store.reorders(1) == [] and worker.is_alive()
            for image_id in batch[2:4]:
                store.set_label(image_id, classes[image_id], labeler="ann", round_id=1)
            while not store.reorders(1) and time.monotonic() < deadline:
                time.sleep(0.2)
            (record,) = store.reorders(1)
            assert record["labels_used"] == 4
        finally:
            worker.terminate()
            worker.join(timeout=10)
