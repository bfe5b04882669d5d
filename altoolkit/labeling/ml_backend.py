"""Label Studio's ML backend protocol served from a label.py project: the live queue's brain for Label Studio.

``label.py ml-backend --project P`` answers the HTTP contract Label Studio's ML backends follow (standard library
only, like the labeling page): ``GET /health`` (and ``GET /``), ``POST /setup`` (checks the project's labeling
interface, answers the model version), ``POST /predict`` (one prediction per task: the model's guess with its
probability, and a ``score`` that orders the tasks for labeling — the position of the task's image in the live
queue's order, 0 for the image to label first, so sorting by prediction score ascending labels in the queue's
order; 1 for an image that has a label or is not in the round's batch), ``POST /webhook`` (an annotation created
or updated is written to the label store, ``START_TRAINING`` refits; other events are answered and ignored) and
``POST /train`` (the older training request: every annotated task written, then a refit). Annotations go through
the checks of ``label.py import`` (unknown classes, images outside the round's batch: refused, all or nothing),
and after every ``refit_every`` new labels the fast learner is refitted and a reorder recorded, exactly as
``serve --live`` does (:mod:`altoolkit.labeling.live`).
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

from altoolkit.errors import ToolkitError
from altoolkit.labeling.exports import (LABEL_STUDIO_FROM_NAME, LABEL_STUDIO_TO_NAME, import_labels,
                                        read_label_studio_labels, task_image_id)
from altoolkit.labeling.live import load_live_features, live_round, reorder_from_store
from altoolkit.labeling.server import check_bind_address
from altoolkit.labeling.store import BatchItem, LabelStore, StoreBusyError

DEFAULT_PORT = 9090
MAX_BODY_BYTES = 64 * 2**20
"""Largest request accepted: Label Studio sends every task of a prediction or training request in one body."""
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
SOURCE = "label-studio-ml"
"""The label store's ``source`` of a label that came through this backend."""


class BackendRequestError(ToolkitError):
    """A request Label Studio sent that this backend cannot use: answered 400 with the reason."""


def label_config_names(label_config) -> tuple[str, str, list[str]]:
    """(from_name, to_name, choices) of the first ``<Choices>`` of a Label Studio labeling interface; the
    names ``label.py export`` writes when none is given."""
    if not label_config:
        return LABEL_STUDIO_FROM_NAME, LABEL_STUDIO_TO_NAME, []
    try:
        root = ElementTree.fromstring(str(label_config))
    except ElementTree.ParseError as error:
        raise BackendRequestError(f"the labeling interface is not valid XML ({error})") from None
    choices = root.find(".//Choices")
    if choices is None or not choices.get("name") or not choices.get("toName"):
        raise BackendRequestError("the labeling interface has no <Choices name=... toName=...>: use the one "
                                  "`label.py export` writes (label_studio_config.xml)")
    return (choices.get("name"), choices.get("toName"),
            [choice.get("value", "") for choice in choices.iter("Choice")])


class MLBackend:
    """One round of one project as a Label Studio ML backend (thread-safe: one refit at a time)."""

    def __init__(self, store: LabelStore, round_id: int, pool_root: Path, select: Callable, refit_every: int):
        self.store, self.round_id, self.select, self.refit_every = store, round_id, select, refit_every
        self.settings = live_round(store, round_id)
        self.features = load_live_features(store, self.settings, pool_root)
        self.batch = {item.image_id: item for item in store.batch(round_id)}
        self._refit_lock = threading.Lock()

    def model_version(self) -> str:
        reorders = self.store.reorders(self.round_id)
        refit = f" refit {reorders[-1]['reorder']}" if reorders else ""
        return f"al-toolkit round {self.round_id}{refit}"

    def health(self) -> dict:
        return {"status": "UP", "model_class": f"al-toolkit {self.settings.learner} on {self.settings.representation}",
                "round": self.round_id}

    def setup(self, body: dict) -> dict:
        """Refuse a labeling interface whose choices are not the project's classes; answer the model version."""
        _, _, choices = label_config_names(body.get("schema"))
        unknown = [choice for choice in choices if choice not in self.store.class_names]
        if unknown:
            raise BackendRequestError(f"the labeling interface offers {', '.join(map(repr, unknown[:5]))}, which "
                                      f"the project does not have (classes: {', '.join(self.store.class_names)})")
        return {"model_version": self.model_version()}

    def queue(self) -> dict[str, tuple[int, int, BatchItem]]:
        """image id → (position, queue length, item) in the latest order of the batch's unlabeled images (the
        selection's order until the first refit)."""
        reorders = self.store.reorders(self.round_id)
        labels = self.store.current_labels(skip_damaged=True)
        items = (self.store.reorder_items(reorders[-1]["reorder"]) if reorders else list(self.batch.values()))
        waiting = [item for item in items if item.image_id not in labels]
        return {item.image_id: (position, len(waiting), item) for position, item in enumerate(waiting)}

    def predict(self, body: dict) -> dict:
        """One prediction per task, in order: the guess with its probability, the queue position as the score."""
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
            raise BackendRequestError("a prediction request needs 'tasks', a list of task objects")
        from_name, to_name, _ = label_config_names(body.get("label_config"))
        queue, version = self.queue(), self.model_version()
        results = []
        for task in tasks:
            data = task.get("data")
            image_id = task_image_id(data) if isinstance(data, dict) else ""
            position, length, item = queue.get(image_id, (None, 0, self.batch.get(image_id)))
            score = 1.0 if position is None else round(position / length, 6)
            result = [] if item is None else [{
                "from_name": from_name, "to_name": to_name, "type": "choices",
                "value": {"choices": [item.predicted_class]},
                "score": item.probabilities.get(item.predicted_class)}]
            results.append({"result": result, "score": score, "model_version": version})
        return {"results": results, "model_version": version}

    def webhook(self, body: dict) -> dict:
        """Write an annotation to the store (then refit after every ``refit_every`` labels); refit on
        START_TRAINING; answer other events without doing anything."""
        action = body.get("action")
        if action == "START_TRAINING":
            return {"status": "ok", "reorder": self.refit()}
        if action not in ANNOTATION_ACTIONS:
            return {"status": "ignored", "action": str(action)[:60]}
        task, annotation = body.get("task"), body.get("annotation")
        if not isinstance(task, dict) or not isinstance(annotation, dict):
            raise BackendRequestError(f"a {action} event needs 'task' and 'annotation' objects")
        recorded = self._record([{**task, "annotations": [annotation]}], f"Label Studio {action}",
                                _annotator(annotation))
        return {"status": "ok", "recorded": recorded, "reorder": self._refit_if_due()}

    def train(self, body: dict) -> dict:
        """The older training request: every annotated task Label Studio sends, recorded at once, then a refit."""
        tasks = body.get("annotations")
        if not isinstance(tasks, list) or not tasks:
            raise BackendRequestError("a training request needs 'annotations', a non-empty list of annotated tasks")
        recorded = self._record(tasks, "Label Studio training request", "label-studio")
        return {"status": "ok", "recorded": recorded, "reorder": self.refit()}

    def _record(self, tasks: list, what: str, labeler: str) -> int:
        labels = read_label_studio_labels(json.dumps(tasks), what)
        counts = import_labels(self.store, self.round_id, labels, labeler=labeler, source=SOURCE, file_name=what)
        return counts.recorded

    def _refit_if_due(self) -> int | None:
        reorders = self.store.reorders(self.round_id)
        baseline = reorders[-1]["last_label_row"] if reorders else 0
        return self.refit() if self.store.label_rows_after(self.round_id, baseline) >= self.refit_every else None

    def refit(self) -> int | None:
        """Refit on every label in the store and record the new order (None: every batch image has a label)."""
        with self._refit_lock:
            return reorder_from_store(self.store, self.round_id, self.features, self.settings, self.refit_every,
                                      self.select, self.store.reorders(self.round_id))


def _annotator(annotation: dict) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"label-studio user {str(who)[:80]}" if who is not None else "label-studio"


class BackendServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], backend: MLBackend):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.backend = backend
        super().__init__(address, BackendRequestHandler)


class BackendRequestHandler(http.server.BaseHTTPRequestHandler):
    """Label Studio's routes; JSON in, JSON out; a bad request is a 400 with a one-line ``error``."""

    server: BackendServer
    server_version = "al-toolkit-ml-backend"
    sys_version = ""
    timeout = 120

    def log_message(self, format: str, *args) -> None:
        """No access log: problems are logged by :meth:`log_error`."""

    def log_error(self, format: str, *args) -> None:
        sys.stderr.write(f"ml-backend: {format % args}\n")

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/", "/health"):
            self._send(200, self.server.backend.health())
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        routes = {"/setup": MLBackend.setup, "/predict": MLBackend.predict, "/webhook": MLBackend.webhook,
                  "/train": MLBackend.train}
        route = routes.get(self.path.split("?")[0])
        if route is None:
            self._send(404, {"error": "not found"})
            return
        try:
            self._send(200, route(self.server.backend, self._json_body()))
        except StoreBusyError as error:
            self._send(503, {"error": str(error)})
        except ToolkitError as error:
            self.log_error("%s", error)
            self._send(400, {"error": str(error)})
        except Exception as error:
            self.log_error("%s", "".join(traceback.format_exception(error)).rstrip())
            self._send(500, {"error": f"the backend failed: {error}"[:300]})

    def _json_body(self) -> dict:
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            raise BackendRequestError(f"the request needs a Content-Length of at most {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(int(length)).decode("utf-8"))
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            raise BackendRequestError("the request body must be a JSON object")
        return body

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_backend_server(store: LabelStore, round_id: int, pool_root: Path, select: Callable, *,
                        host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow_remote: bool = False,
                        refit_every: int) -> BackendServer:
    """A bound backend for round ``round_id`` (its representation loaded); port 0: any free port."""
    check_bind_address(host, allow_remote)
    if not 0 <= port <= 65535:
        raise ToolkitError(f"port {port} is not a TCP port: pick one in 1–65535 (0: any free port)")
    backend = MLBackend(store, round_id, pool_root, select, refit_every)
    try:
        return BackendServer((host.strip("[]"), port), backend)
    except OSError as error:
        raise ToolkitError(f"cannot serve on {host}:{port} ({error.strerror or error}): pick another --port "
                           "(0: any free port) or stop the program using it") from None


def serve_backend(server: BackendServer) -> None:
    """Serve until Ctrl-C, after one line with the URL to give Label Studio (Settings → Model → Connect Model)."""
    host, port = server.server_address[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    backend = server.backend
    print(f"Label Studio ML backend for round {backend.round_id} at {url} — connect it in the project's "
          "Settings → Model; Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print(f"stopped: every label Label Studio sent is in {backend.store.path}", file=sys.stderr, flush=True)
    finally:
        server.server_close()
