"""Benchmark: how fast ``label.py serve --live`` answers a label post while its worker refits.

Run ``python benchmarks/live_latency.py --help``. Writes scikit-learn's digits as folders (``--per-class`` labeled
images per class, a pool of ``--pool-size``), selects a round of ``--budget`` without a model, serves it live
(a refit after every ``--refit-every`` labels) in its own process and, once the worker has loaded the
representation, posts ``--labels`` labels over HTTP at a person's ``--pace``, each the page's current guess.
Every post's wall time (a fresh connection each, as measured by the client) is classed by whether a refit was
running when it was sent (the refit times come from the store's reorder records) and the distribution is
reported. The target (issue 17): p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, positive_float, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report

SCRIPT = "benchmarks/live_latency.py"
TARGET_P95_MS = 100
REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="results/live-latency",
                        help="folders and project, replaced on every run (default: results/live-latency)")
    parser.add_argument("--per-class", type=positive_int, default=2, help="labeled images per class (default: 2)")
    parser.add_argument("--pool-size", type=positive_int, default=400, help="default: 400")
    parser.add_argument("--budget", type=positive_int, default=120, help="the round's batch (default: 120)")
    parser.add_argument("--labels", type=positive_int, default=100, help="labels posted (default: 100)")
    parser.add_argument("--refit-every", type=positive_int, default=10, help="default: 10")
    parser.add_argument("--pace", type=positive_float, default=0.25, help="seconds between posts (default: 0.25)")
    parser.add_argument("--output", default=None, metavar="FILE.md", help="also write the report here")
    return parser


def percentile_ms(seconds: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0–1) of durations in seconds, in milliseconds."""
    ordered = sorted(seconds)
    return 1000 * ordered[max(0, int(np.ceil(share * len(ordered))) - 1)]


def post_label(url: str, image_id: str, class_name: str) -> float:
    """Post one label; its wall time in seconds."""
    request = urllib.request.Request(url + "api/label", data=json.dumps({"id": image_id, "class": class_name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def measure(project: Path, labels: int, refit_every: int, pace: float) -> tuple[list[tuple[float, float]], list]:
    """Serve ``project`` live and post ``labels`` labels: ([(sent at, seconds)], the round's reorder records)."""
    from altoolkit.labeling.store import LabelStore

    server = subprocess.Popen([sys.executable, str(REPO / "label.py"), "serve", "--project", str(project), "--port",
                               "0", "--no-browser", "--refit-every", str(refit_every)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://[^\s/]+/", server.stdout.readline())
        if match is None:
            raise ToolkitError("label.py serve did not print its address: run it by hand to see why")
        url = match.group(0)
        for line in server.stderr:  # the worker has loaded the representation: from here on refits keep pace
            if line.startswith("live: refitting"):
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()
        with urllib.request.urlopen(url + "api/batch", timeout=30) as response:
            items = json.loads(response.read())["items"]
        posts = []
        for item in items[:labels]:
            sent = time.time()
            posts.append((sent, post_label(url, item["id"], item["predicted"])))
            time.sleep(pace)
        time.sleep(5 * pace)
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
        server.stderr.close()
    with LabelStore(project) as store:
        return posts, store.reorders(store.latest_round())


def report_lines(posts: list[tuple[float, float]], reorders: list, arguments: argparse.Namespace) -> list[str]:
    refits = [(record["details"]["refit_started"],
               record["details"]["refit_started"] + record["details"]["refit_seconds"]) for record in reorders]
    during = [seconds for sent, seconds in posts if any(start <= sent <= end for start, end in refits)]
    outside = [seconds for sent, seconds in posts if not any(start <= sent <= end for start, end in refits)]
    lines = ["# Label post latency of the live labeling server", "",
             f"Digits, {arguments.per_class} labeled images per class, a pool of {arguments.pool_size}, a round of "
             f"{arguments.budget}; {len(posts)} labels posted every {arguments.pace:g} s over HTTP (a fresh "
             f"connection each); a refit after every {arguments.refit_every} labels: {len(reorders)} refits, "
             f"{np.median([end - start for start, end in refits]) if refits else float('nan'):.2f} s each (median).",
             "", "| posts | n | median ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for name, values in (("all", [seconds for _, seconds in posts]), ("during a refit", during),
                         ("no refit running", outside)):
        if values:
            lines.append(f"| {name} | {len(values)} | {percentile_ms(values, 0.5):.1f} | "
                         f"{percentile_ms(values, 0.95):.1f} | {percentile_ms(values, 0.99):.1f} | "
                         f"{1000 * max(values):.1f} |")
    p95 = percentile_ms([seconds for _, seconds in posts], 0.95)
    verdict = "met" if p95 < TARGET_P95_MS else "missed"
    lines += ["", f"Target: p95 under {TARGET_P95_MS} ms — {verdict} ({p95:.1f} ms)."]
    return lines


@cli_entry
def main(argv: list[str] | None = None) -> int:
    import label
    from docs.demo_folders import write_demo_folders

    arguments = build_parser().parse_args(argv)
    if arguments.labels > arguments.budget:
        raise ToolkitError(f"--labels {arguments.labels} exceeds the round's --budget {arguments.budget}")
    started = time.perf_counter()
    work = Path(arguments.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    labeled, pool = write_demo_folders(work, per_class=arguments.per_class, pool_size=arguments.pool_size)
    label.main(["select", "--project", str(work / "project"), "--pool", str(pool), "--labeled", str(labeled),
                "--budget", str(arguments.budget)])
    posts, reorders = measure(work / "project", arguments.labels, arguments.refit_every, arguments.pace)
    finish_report(report_lines(posts, reorders, arguments), started, arguments.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
