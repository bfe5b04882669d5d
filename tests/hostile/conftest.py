"""What every test of the hostile-input suite checks when the toolkit refuses an input.

A refusal is exit code 2, exactly one line on stderr that starts with ``error:`` and is short, no traceback, and
no file created, changed or removed under the watched folders (hidden temporaries included). The suite's files
generate their own bad inputs; ``refused`` runs an entry point's ``main(argv)`` in this process (fast: one
TensorFlow import for the whole suite), ``refused_in_subprocess`` runs a script as a user does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_ERROR_LINE = 2000
"""Longest error line accepted: long enough for a list of 20 problems, far short of a 14 MB class list."""


def tree_snapshot(*roots: str | os.PathLike) -> dict[str, tuple]:
    """Every entry under ``roots`` (files by size and SHA-256, folders, symlinks by target), hidden ones included."""
    entries: dict[str, tuple] = {}
    for root in map(Path, roots):
        paths = [root] if not root.is_dir() or root.is_symlink() else [root, *sorted(root.rglob("*"))]
        for path in paths:
            if path.is_symlink():
                entries[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[str(path)] = ("dir",)
            elif path.is_file():
                entries[str(path)] = ("file", path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            elif not path.exists():
                entries[str(path)] = ("absent",)
    return entries


def check_refusal(code, stderr: str, before: dict, watched) -> str:
    """Assert the refusal contract; returns the error line (for tests that check what it says)."""
    assert code == 2, f"exit code {code}, expected 2; stderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-4000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got {len(lines)}: {stderr[-2000:]}"
    assert lines[0].startswith("error: "), lines[0][:500]
    assert len(lines[0]) <= MAX_ERROR_LINE, f"error line of {len(lines[0])} characters: {lines[0][:300]}…"
    after = tree_snapshot(*watched)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"files changed by a refused input: {changed[:10]}"
    return lines[0]


@pytest.fixture
def refused(capsys):
    """``refused(main, argv, *watched)``: run ``main(argv)`` in-process and check the refusal contract."""

    def run(main, argv: list[str], *watched: str | os.PathLike) -> str:
        before = tree_snapshot(*watched)
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as stop:
            code = stop.code
        stderr = capsys.readouterr().err
        return check_refusal(code, stderr, before, watched)

    return run


@pytest.fixture
def refused_in_subprocess():
    """``refused_in_subprocess(["label.py", "import", ...], *watched, cwd=...)``: a real process, as a user runs it
    (``preexec_fn`` runs in the child before the script, e.g. to drop root's right to write anywhere)."""

    def run(arguments: list[str], *watched: str | os.PathLike, cwd: str | os.PathLike | None = None,
            timeout: float = 120, preexec_fn=None) -> str:
        before = tree_snapshot(*watched)
        script, *rest = arguments
        command = [sys.executable, *(["-m", script[3:]] if script.startswith("-m ") else [str(REPO / script)]),
                   *map(str, rest)]
        completed = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                                   preexec_fn=preexec_fn)
        return check_refusal(completed.returncode, completed.stderr, before, watched)

    return run
