"""Self-contained HTML reports: one file with its styles inline and every image embedded as a data URI, so it opens
anywhere without a network, a server or a script. The page only lays out what it is given."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Iterable

import numpy as np

from altoolkit.errors import ToolkitError

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 48px; color: #1d1d1f; }
h1 { font-size: 26px; margin: 24px 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 20px 0 6px; }
code, pre { font: 13px ui-monospace, Menlo, Consolas, monospace; background: #f4f4f6; border-radius: 4px; }
pre { padding: 8px 12px; white-space: pre-wrap; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border: 1px solid #e0e0e0; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f7f7f9; }
img.figure { max-width: 100%; border: 1px solid #eee; }
.met { color: #1a7f37; font-weight: 600; } .missed { color: #c62828; font-weight: 600; }
.note { color: #555; font-size: 13.5px; }
.gallery { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0 18px; }
.gallery figure { margin: 0; width: 80px; text-align: center; font-size: 11px; line-height: 1.2; }
.gallery img { width: 64px; height: 64px; image-rendering: pixelated; border: 3px solid #ccc; }
.gallery img.outlier { border-color: #ef6c00; } .gallery img.duplicate { border-color: #c62828; }
.gallery img.typical { border-color: #1565c0; }
"""
CONTENT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""The page may load nothing: images are data URIs, styles are inline, scripts are not allowed at all."""


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document around the given body fragments."""
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
                      f"<h1>{escape(title)}</h1>", *body, "</body></html>", ""])


def inline_code(text: str) -> str:
    """Escaped text with `backticked` spans as <code> (the markdown reports' only inline markup)."""
    parts = str(text).split("`")
    return "".join(f"<code>{escape(part)}</code>" if number % 2 else escape(part)
                   for number, part in enumerate(parts))


def table(headers: list[str], rows: list[list[str]], row_attributes: list[str] | None = None) -> str:
    """A table of already-escaped cell HTML (``rows``); ``row_attributes`` adds attribute text to each <tr>."""
    attributes = row_attributes or [""] * len(rows)
    head = "".join(f"<th>{header}</th>" for header in headers)
    body = "".join(f"<tr{(' ' + extra) if extra else ''}>" + "".join(
        cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row, extra in zip(rows, attributes))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def heat_cell(value: float | None, low: float, high: float, text: str) -> str:
    """A <td> whose background goes from red (``low``) through yellow to green (``high``)."""
    if value is None or not np.isfinite(value):
        return f"<td>{escape(text)}</td>"
    share = 0.5 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    hue = 120 * share
    return f'<td style="background: hsl({hue:.0f}, 70%, 82%)" data-value="{value:.6g}">{escape(text)}</td>'


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_tag(path: Path, alt: str, css_class: str = "figure") -> str:
    """An <img> of a PNG file, embedded."""
    try:
        png = Path(path).read_bytes()
    except OSError as error:
        raise ToolkitError(f"cannot read the figure {path} ({error.strerror or error}): render the report's "
                           "figures first") from None
    extra = f' class="{escape(css_class)}"' if css_class else ""
    return f'<img{extra} src="{data_uri(png)}" alt="{escape(alt)}">'


def array_png(image: np.ndarray) -> bytes:
    """An image array (H×W×3 or H×W uint8, or floats in [0, 1]) as PNG bytes."""
    from PIL import Image

    pixels = np.asarray(image)
    if not np.issubdtype(pixels.dtype, np.integer):
        pixels = np.clip(np.round(pixels * 255), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8).squeeze()).save(buffer, format="PNG")
    return buffer.getvalue()


def image_tag(image: np.ndarray, alt: str, css_class: str = "") -> str:
    """An <img> of an image array, embedded as PNG."""
    extra = f' class="{escape(css_class)}"' if css_class else ""
    return f'<img{extra} src="{data_uri(array_png(image))}" alt="{escape(alt)}">'
