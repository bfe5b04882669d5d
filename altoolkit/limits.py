"""Limits on what data may be, checked before anything large is allocated or decoded.

Image size, pixels per image (decompression bombs), number and names of classes, and the share of memory loaded
images may take. Each limit is a module constant, read when a check runs; the pixel and class limits can also be
raised with an environment variable. Messages name the limit and how to change it.
"""

from __future__ import annotations

import numbers
import os
import unicodedata
from pathlib import Path
from typing import Sequence

from altoolkit.errors import ToolkitError
from altoolkit.validation import short_repr

MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 512
"""Largest ``image_size``: over twice the 224 of ImageNet-pretrained MobileNetV3; 4096 would need 90 GB for digits."""
MAX_IMAGE_PIXELS = 8192 * 8192
"""Most pixels (width × height) an image file may have, checked on its header before it is decoded.

About 67 megapixels: above the 50 MP of today's largest phone photos and the 61 MP of high-end cameras, while a
decompression bomb (a small file claiming 30000×30000 pixels) is refused instead of filling memory; a decoded
image at the limit takes 200 MB. Raise it with the environment variable ``AL_MAX_IMAGE_PIXELS``. The same limit
applies to the height × width of images in .npz and idx files.
"""
MAX_IMAGE_PIXELS_VARIABLE = "AL_MAX_IMAGE_PIXELS"
PIXEL_LIMIT_ADVICE = (f"(a guard against decompression bombs): shrink the image, or raise the limit with "
                       f"{MAX_IMAGE_PIXELS_VARIABLE}=<pixels>")
MAX_CLASSES = 1000
"""Most classes a dataset may have (ImageNet's 1000): more is a stray label value, not a class list.

Without ``class_names`` an .npz gets one class per label value up to the largest, so one label of 2**40 would
otherwise invent a trillion classes. Raise it with the environment variable ``AL_MAX_CLASSES``.
"""
MAX_CLASSES_VARIABLE = "AL_MAX_CLASSES"
MAX_CLASS_NAME_LENGTH = 100
"""Longest class name: names become file names and table headers."""
MEMORY_FRACTION = 0.5
"""Share of this machine's memory (or its container's limit) that loaded images may take, checked before loading
or resizing them: a header promising a huge array, or too large an image size, is an error instead of a hang."""


def check_image_size(value, name: str = "image size") -> int:
    """``value`` as an int in ``MIN_IMAGE_SIZE``..``MAX_IMAGE_SIZE`` (the side of the square images)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not MIN_IMAGE_SIZE <= int(value) <= MAX_IMAGE_SIZE:
        raise ToolkitError(f"{name} must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, "
                           f"got {short_repr(value)}")
    return int(value)


def max_image_pixels() -> int:
    """The pixel limit in force: ``$AL_MAX_IMAGE_PIXELS`` if set, else ``MAX_IMAGE_PIXELS``."""
    return _limit_from_environment(MAX_IMAGE_PIXELS_VARIABLE, MAX_IMAGE_PIXELS)


def max_classes() -> int:
    """The class limit in force: ``$AL_MAX_CLASSES`` if set, else ``MAX_CLASSES``."""
    return _limit_from_environment(MAX_CLASSES_VARIABLE, MAX_CLASSES)


def _limit_from_environment(variable: str, default: int) -> int:
    """A positive integer from the environment variable, ``default`` when it is unset or empty."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise ToolkitError(f"the environment variable {variable} must be a positive integer, got {short_repr(text)}: "
                           f"fix or unset it (default {default})")
    return int(text)


def memory_budget() -> int:
    """Bytes that loaded images may take: ``MEMORY_FRACTION`` of the machine's memory or its container's limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such setting: nothing to go by
        return 2**63
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():
        total = min(total, int(limit))
    return int(total * MEMORY_FRACTION)


def check_fits_in_memory(nbytes: int, what: str) -> None:
    """An error before allocating ``nbytes`` that would not fit in :func:`memory_budget`."""
    budget = memory_budget()
    if nbytes > budget:
        raise ToolkitError(f"{what} needs {byte_size(nbytes)} of memory, more than {byte_size(budget)} "
                           f"({MEMORY_FRACTION:.0%} of this machine's): use a smaller file, image size or class list")


def check_resized_fit(count: int, size: int, source: str) -> None:
    check_fits_in_memory(count * size * size * 3, f"{source} as {count} images of {size}×{size}")


def byte_size(nbytes: int) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= factor:
            return f"{nbytes / factor:,.1f} {unit}"
    return f"{nbytes} bytes"


def listed_names(names: Sequence[str], limit: int = 12) -> str:
    """Names for a one-line message: all of a short list, the first ``limit`` and a count of a long one."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} classes)"


def checked_class_names(names: Sequence, source: str) -> tuple[str, ...]:
    """``names`` as a tuple of distinct, printable, non-empty strings, at most :func:`max_classes` of them."""
    limit = max_classes()
    if len(names) > limit:
        raise ToolkitError(f"{source} has {len(names):,} classes, more than the limit of {limit:,} "
                           f"({MAX_CLASSES_VARIABLE}): check the labels or class names")
    if not len(names):
        raise ToolkitError(f"{source} names no classes: give at least one class name")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ToolkitError(f"{source}: class names must be strings, got {short_repr(name)}")
        if not name.strip() or len(name) > MAX_CLASS_NAME_LENGTH \
                or any(unicodedata.category(character) == "Cc" for character in name):
            raise ToolkitError(f"{source}: class name {short_repr(name)} must be 1 to {MAX_CLASS_NAME_LENGTH} "
                               "characters without control characters (such as line breaks): rename the class")
        if name in seen:
            raise ToolkitError(f"{source}: the class name {short_repr(name)} appears twice: class names must be "
                               "distinct, one per label value")
        seen.add(name)
    return tuple(names)


def check_image_shape(height: int, width: int, what: str) -> None:
    """An error unless an image of height × width has at least one pixel and at most :func:`max_image_pixels`."""
    if height < 1 or width < 1:
        raise ToolkitError(f"{what} is {width}×{height} pixels: images need at least one pixel each way")
    limit = max_image_pixels()
    if height * width > limit:
        raise ToolkitError(f"{what} is {width}×{height} = {height * width:,} pixels, more than the limit of "
                           f"{limit:,} {PIXEL_LIMIT_ADVICE}")
