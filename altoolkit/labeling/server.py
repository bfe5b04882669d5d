"""The labeling page's web server: one round's batch, one image at a time, every label saved the moment it is given.

Standard library only (``http.server``). The server answers on loopback unless told otherwise, serves nothing but
the page, the batch as JSON, and the batch's own images (looked up by id in the label store: no filesystem path is
ever built from a URL), and writes labels through :class:`~altoolkit.labeling.store.LabelStore`, which commits each one.

Routes: ``GET /`` (the page), ``GET /api/batch``, ``GET /api/live`` (the live queue's latest order and
estimates, see :mod:`altoolkit.labeling.live`), ``GET /image/<id>``, ``POST /api/label`` ``{"id", "class"}``
and ``POST /api/unlabel`` ``{"id"}`` (both answer ``{"labeled": k, "total": B}``). A malformed request gets a 4xx
answer with a JSON ``error``; when another program holds the store's write lock for longer than the store's busy
timeout, a post is answered 503 with ``Retry-After`` and nothing is written (the page keeps the label and retries).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.resources
import io
import ipaddress
import json
import re
import socket
import string
import sys
import traceback
import webbrowser
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence
from urllib.parse import urlsplit

from altoolkit.errors import ToolkitError
from altoolkit.labeling.pool import is_image_id, pool_file
from altoolkit.labeling.store import BatchItem, LabelStore, StoreBusyError, current_user

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted: a label is a few dozen bytes."""
RETRY_AFTER_SECONDS = 1
"""What a 503 (the store is busy) tells the page to wait before sending the label again."""

UI_LETTERS = ("s", "u")
"""Letters the page keeps for itself: ``s`` skips to the next unlabeled image, ``u`` undoes the last label.

The page's other keys are Space (skip), Backspace and Ctrl/Cmd+Z (undo), ← and → (previous and next image).
"""

CLASS_KEYS = tuple("123456789") + tuple(letter for letter in string.ascii_lowercase if letter not in UI_LETTERS)
"""Shortcut keys handed to classes in order: 1–9, then the letters the page does not use (33 keys in all)."""

OWN_NAME_KEYS = frozenset("0123456789") | frozenset(CLASS_KEYS)
"""Single-character class names that can be their own key (so class "3" is key 3, not the fourth key)."""

BROWSER_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                       ".webp": "image/webp", ".bmp": "image/bmp"}
"""Formats every browser shows as they are; other pool formats (TIFF) are sent converted to PNG."""

PAGE_RESOURCE = ("static", "label_page.html")
NOTHING = "'none'"
"""Content-Security-Policy source list that allows nothing."""
SERVER_NAME = "al-toolkit-labeling"


def check_bind_address(host: str, allow_remote: bool) -> None:
    """Refuse a ``host`` other machines can reach (anything but loopback) unless ``allow_remote`` says so.

    The page has no login: anyone who can reach it can label the batch and read the batch's images.
    """
    if allow_remote or is_loopback(host):
        return
    shown = host or "every network interface"
    raise ToolkitError(f"refusing to serve on {shown}, which other machines can reach: pass --allow-remote to do it "
                       "on purpose (anyone who reaches the page can label), or use --host 127.0.0.1")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1; IPv6 may come in brackets)."""
    name = host.strip().lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def shortcut_keys(class_names: Sequence[str]) -> dict[str, str]:
    """Class name → its keyboard shortcut on the page (a lowercase key; the page shows it in capitals).

    When every class name is a single digit or letter the page does not use, each class is its own key (the
    digits project labels "7" with key 7). Otherwise classes get 1–9 and then the letters a–z without the page's
    own (``UI_LETTERS``), in order; classes past the 33rd have no shortcut and are labeled by clicking.
    """
    own_keys = [name.lower() for name in class_names]
    if (own_keys and all(len(key) == 1 and key in OWN_NAME_KEYS for key in own_keys)
            and len(set(own_keys)) == len(own_keys)):
        return dict(zip(class_names, own_keys))
    return dict(zip(class_names, CLASS_KEYS))


@dataclass
class LabelingSession:
    """What the server serves: one round's batch of one store, and who is labeling it."""

    store: LabelStore
    round_id: int
    items: list[BatchItem]
    pool_root: Path
    labeler: str
    retrain_command: str
    page: bytes
    page_policy: str
    loopback_only: bool
    refit_every: int | None = None
    """New labels between two refits of the live queue (None: no live queue)."""

    def __post_init__(self) -> None:
        self.positions = {item.image_id: position for position, item in enumerate(self.items)}
        self.shortcuts = shortcut_keys(self.store.class_names)

    def progress(self) -> dict:
        """Labeled and total images of the batch (a damaged label row elsewhere does not stop an answer)."""
        labels = self.store.current_labels(skip_damaged=True)
        return {"labeled": sum(1 for item in self.items if item.image_id in labels), "total": len(self.items)}

    def batch_payload(self) -> dict:
        labels = self.store.current_labels()
        items = [{"id": item.image_id, "position": position,
                  "top": [{"class": name, "probability": probability} for name, probability in item.top_classes(3)],
                  "predicted": item.predicted_class, "label": labels.get(item.image_id)}
                 for position, item in enumerate(self.items)]
        return {"round": self.round_id, "classes": list(self.store.class_names), "shortcuts": self.shortcuts,
                "items": items, "labeled": sum(item["label"] is not None for item in items),
                "total": len(items), "labeler": self.labeler, "retrain_command": self.retrain_command}

    def live_payload(self) -> dict:
        """The live queue's state: labels per class in the store, and the latest reorder (its order of the images
        not yet labeled with the refitted learner's guesses, the accuracy estimate and the stop signal)."""
        if self.refit_every is None:
            return {"enabled": False}
        counts = dict.fromkeys(self.store.class_names, 0)
        for image_id, class_name in self.store.current_labels(skip_damaged=True).items():
            counts[class_name] += 1
        payload = {"enabled": True, "every": self.refit_every, "reorder": 0, "store_per_class": counts}
        history = self.store.reorders(self.round_id)
        if history:
            latest = history[-1]
            details = latest["details"]
            order = [{"id": item.image_id, "predicted": item.predicted_class,
                      "top": [{"class": name, "probability": probability} for name, probability in item.top_classes(3)]}
                     for item in self.store.reorder_items(latest["reorder"]) if item.image_id in self.positions]
            payload.update(reorder=latest["reorder"], labels_used=latest["labels_used"], ran=details.get("ran"),
                           labeled=details.get("labeled"), estimate=details.get("estimate"),
                           stop=details.get("stop"), kappa=details.get("kappa"),
                           folder_per_class=details.get("folder_per_class"), order=order)
        return payload

    def image_response(self, image_id: str) -> tuple[bytes, str] | None:
        """A batch image as (bytes, content type) a browser can show; None unless ``image_id`` is one of the batch's.

        The file must still have the content the model scored (its hash is part of the id): a changed file is an
        error, so nobody labels a picture the selection never saw.
        """
        if not is_image_id(image_id) or image_id not in self.positions:
            return None
        image = self.store.image(image_id)
        relative = PurePosixPath(image.relative_path) if image is not None else None
        if relative is None or relative.is_absolute() or ".." in relative.parts:
            return None
        file = pool_file(self.pool_root, image)
        data = file.read_bytes()
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ToolkitError(f"pool image {file} changed since it was selected: restore it, or select a new "
                               "round")
        content_type = BROWSER_IMAGE_TYPES.get(file.suffix.lower())
        if content_type is None:
            return _as_png(data), "image/png"
        return data, content_type


def _as_png(data: bytes) -> bytes:
    """Re-encode an image (e.g. TIFF, which browsers do not show) as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        output = io.BytesIO()
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(output, format="PNG")
    return output.getvalue()


class LabelingServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that carries its :class:`LabelingSession` (the handler reads it)."""

    daemon_threads = True
    # The listen backlog: the default of 5 drops connections when a page and its retries queue behind a busy
    # database, and a dropped connection costs the browser seconds of SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], session: LabelingSession):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.session = session
        super().__init__(address, LabelRequestHandler)

    def handle_error(self, request, client_address) -> None:
        """Print unexpected errors; a browser that closed a connection early (a skipped image) is not one."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LabelRequestHandler(http.server.BaseHTTPRequestHandler):
    """The page's routes; requests are logged only when something goes wrong."""

    server: LabelingServer
    server_version = SERVER_NAME
    sys_version = ""
    timeout = 30

    def log_message(self, format: str, *args) -> None:
        """Silence the per-request access log (errors go through :meth:`log_error`)."""

    def log_error(self, format: str, *args) -> None:
        sys.stderr.write(f"labeling page: {format % args}\n")

    @property
    def session(self) -> LabelingSession:
        return self.server.session

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        path = _request_path(self.path)
        try:
            if path == "/":
                self._send(200, self.session.page, "text/html; charset=utf-8",
                           {"Cache-Control": "no-store", "Content-Security-Policy": self.session.page_policy,
                            "X-Frame-Options": "DENY"})
            elif path == "/api/batch":
                self._send_json(200, self.session.batch_payload())
            elif path == "/api/live":
                self._send_json(200, self.session.live_payload())
            elif path.startswith("/image/"):
                self._send_image(path[len("/image/"):])
            else:
                self._send_json(404, {"error": "not found"})
        except Exception as error:
            self._send_failure(error)

    def do_POST(self) -> None:
        if not self._host_allowed() or not self._origin_allowed():
            return
        path = _request_path(self.path)
        if path not in ("/api/label", "/api/unlabel"):
            self._send_json(404, {"error": "not found"})
            return
        try:
            body = self._read_json_body()
            if body is None:
                return
            if path == "/api/label":
                self._label(body)
            else:
                self._unlabel(body)
        except Exception as error:
            self._send_failure(error)

    def _send_image(self, image_id: str) -> None:
        try:
            found = self.session.image_response(image_id)
        except StoreBusyError:
            raise
        except ToolkitError as error:
            self.log_error("%s", error)
            self._send_json(404, {"error": str(error)})
            return
        if found is None:
            self._send_json(404, {"error": "not found"})
            return
        data, content_type = found
        self._send(200, data, content_type, {"Cache-Control": "private, max-age=3600"})

    def _batch_image_id(self, body: dict) -> str | None:
        """The body's ``id`` when it is one of the batch's images; otherwise answers the error and returns None."""
        image_id = body.get("id")
        if not isinstance(image_id, str):
            self._send_json(400, {"error": "the request needs the image's id as a string"})
            return None
        if image_id not in self.session.positions:
            self._send_json(404, {"error": f"image {image_id[:40]!r} is not in round {self.session.round_id}'s "
                                           "batch: reload the page"})
            return None
        return image_id

    def _label(self, body: dict) -> None:
        image_id = self._batch_image_id(body)
        if image_id is None:
            return
        class_name = body.get("class")
        if not isinstance(class_name, str) or class_name not in self.session.store.class_names:
            shown = repr(class_name)[:60]
            self._send_json(400, {"error": f"unknown class {shown}: the classes are "
                                           f"{', '.join(self.session.store.class_names)}"})
            return
        self.session.store.set_label(image_id, class_name, labeler=self.session.labeler,
                                     round_id=self.session.round_id, source="page")
        self._send_json(200, self.session.progress())

    def _unlabel(self, body: dict) -> None:
        image_id = self._batch_image_id(body)
        if image_id is None:
            return
        self.session.store.clear_label(image_id, labeler=self.session.labeler, round_id=self.session.round_id,
                                       source="page")
        self._send_json(200, self.session.progress())

    def _read_json_body(self) -> dict | None:
        """The request's JSON object; None after answering 400/411/413/415 when there is no acceptable one."""
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._send_json(415, {"error": "send the request as application/json"})
            return None
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._send_json(411, {"error": "the request needs a Content-Length"})
            return None
        length_text = length_header.strip()
        if not (length_text.isascii() and length_text.isdigit()):
            self.close_connection = True
            self._send_json(400, {"error": "the request's Content-Length is not a number of bytes"})
            return None
        if len(length_text) > len(str(MAX_BODY_BYTES)) or int(length_text) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": f"the request body is larger than {MAX_BODY_BYTES} bytes"})
            return None
        try:
            body = json.loads(self.rfile.read(int(length_text)).decode("utf-8"))
        except (ValueError, RecursionError):
            body = None  # not UTF-8, not JSON, nested too deeply, or a number too long to convert
        if not isinstance(body, dict):
            self._send_json(400, {"error": "the request body must be a JSON object"})
            return None
        return body

    def _host_allowed(self) -> bool:
        """On loopback, answer only requests addressed to a loopback name (a DNS-rebinding page cannot)."""
        host = self.headers.get("Host")
        if not self.session.loopback_only or host is None or is_loopback(_host_name(host)):
            return True
        self._send_json(403, {"error": "this labeling page answers only on localhost"})
        return False

    def _origin_allowed(self) -> bool:
        """Refuse writes sent by another site's page (a browser names the sending page's origin)."""
        origin = self.headers.get("Origin")
        if origin is None or origin == f"http://{self.headers.get('Host', '')}":
            return True
        self._send_json(403, {"error": "labels can only be given from the labeling page itself"})
        return False

    def _send_failure(self, error: Exception) -> None:
        """Answer a request that failed: 503 when the store is busy (nothing was written, the page retries), 500
        with the one-line reason for a store problem, 500 and a logged traceback for anything unexpected."""
        if isinstance(error, (ConnectionError, TimeoutError)):
            self.close_connection = True
            return
        if isinstance(error, StoreBusyError):
            self.log_error("%s", error)
            self._send_json(503, {"error": str(error)}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return
        if isinstance(error, ToolkitError):
            self.log_error("%s", error)
            self._send_json(500, {"error": str(error)})
            return
        self.log_error("%s", "".join(traceback.format_exception(error)).rstrip())
        self._send_json(500, {"error": f"the server failed: {error}"[:300]})

    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json",
                   {"Cache-Control": "no-store", **(headers or {})})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _request_path(target: str) -> str:
    """The path part of a request target; empty (no route) when it cannot be parsed, e.g. ``//[``."""
    try:
        return urlsplit(target).path
    except ValueError:
        return ""


def _host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:8765`` → ``::1``, ``localhost:8765`` → ``localhost``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def load_page() -> tuple[bytes, str]:
    """The page's HTML and its Content-Security-Policy (only the page's own inline script and style may run)."""
    resource = importlib.resources.files("altoolkit.labeling")
    for part in PAGE_RESOURCE:
        resource = resource / part
    try:
        html = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise ToolkitError(f"the labeling page ({'/'.join(PAGE_RESOURCE)}) is missing from the installed "
                           "al-toolkit: reinstall it") from None
    scripts = " ".join(_inline_hash(text) for text in re.findall(r"<script>(.*?)</script>", html, re.DOTALL))
    styles = " ".join(_inline_hash(text) for text in re.findall(r"<style>(.*?)</style>", html, re.DOTALL))
    policy = (f"default-src 'none'; script-src {scripts or NOTHING}; style-src {styles or NOTHING}; "
              "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return html.encode("utf-8"), policy


def _inline_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def make_server(store: LabelStore, round_id: int | None, pool_root: str | Path, *, host: str = "127.0.0.1",
                port: int = 8765, allow_remote: bool = False, labeler: str | None = None,
                retrain_command: str = "", refit_every: int | None = None) -> LabelingServer:
    """A bound (not yet serving) server for round ``round_id``'s batch (None: the latest); port 0: any free port.

    Checks up front what would otherwise show up as broken images or failed saves: the address, the batch and
    the labels in the store, every pool file.
    ``labeler`` defaults to the current user; ``refit_every`` turns on the page's live panel (the worker that
    refits is started by :func:`serve`).
    """
    check_bind_address(host, allow_remote)
    if not 0 <= port <= 65535:
        raise ToolkitError(f"port {port} is not a TCP port: pick one in 1–65535 (0: any free port)")
    round_id = store.resolve_round(round_id)
    items = store.batch(round_id)
    store.current_labels()  # a damaged label row stops the server here, before anyone labels
    if not items:
        raise ToolkitError(f"round {round_id} selected no images: nothing to label")
    for item in items:
        image = store.image(item.image_id)
        if image is None:
            raise ToolkitError(f"round {round_id} names image {item.image_id}, which {store.path} does not know: "
                               "the store is damaged, select a new round")
        pool_file(pool_root, image)
    page, policy = load_page()
    session = LabelingSession(store, round_id, items, Path(pool_root), labeler or current_user(), retrain_command,
                              page, policy, loopback_only=is_loopback(host), refit_every=refit_every)
    try:
        return LabelingServer((host.strip("[]"), port), session)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ToolkitError(f"cannot serve on {host}:{port} ({reason}): pick another --port (0: any free port) "
                           "or stop the program using it") from None


def server_url(server: LabelingServer) -> str:
    """The page's address, e.g. ``http://127.0.0.1:8765/`` (IPv6 hosts in brackets)."""
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(store: LabelStore, round_id: int | None, pool_root: str | Path, *, host: str = "127.0.0.1", port: int = 8765,
          allow_remote: bool = False, labeler: str | None = None, retrain_command: str = "",
          open_browser: bool = True, live_select=None, refit_every: int | None = None) -> None:
    """Serve the labeling page until Ctrl-C; prints one line with the page's address (and opens it if asked).

    With ``live_select`` (AL_functions.select) the live queue's worker process refits after every ``refit_every``
    labels (:mod:`altoolkit.labeling.live`); it is stopped with the server.
    """
    from altoolkit.labeling.live import live_round, start_worker

    live = live_select is not None
    server = make_server(store, round_id, pool_root, host=host, port=port, allow_remote=allow_remote,
                         labeler=labeler, retrain_command=retrain_command, refit_every=refit_every if live else None)
    session = server.session
    url = server_url(server)
    worker = None
    if live:
        live_round(store, session.round_id)
        worker = start_worker(store.path.parent, session.round_id, Path(pool_root), refit_every, live_select)
    mode = f", live: reordered after every {refit_every} labels" if live else ""
    print(f"serving round {session.round_id} ({len(session.items)} images{mode}) at {url} — Ctrl-C to stop",
          flush=True)
    try:
        if open_browser:
            webbrowser.open(url)
        server.serve_forever()
    except KeyboardInterrupt:
        progress = session.progress()
        print(f"stopped: {progress['labeled']} of {progress['total']} labeled, every label saved in {store.path}",
              file=sys.stderr, flush=True)
    finally:
        server.server_close()
        if worker is not None:
            worker.terminate()
            worker.join(timeout=10)
