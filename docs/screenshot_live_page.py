"""Screenshot of the live labeling page for the docs: docs/labeling_live.png.

Writes scikit-learn's bundled digits as folders (two labeled images per class, a pool of 300; no download),
selects a round of 60 with ``label.py select`` without a model, serves it with ``label.py serve`` (live: a refit
after every 10 labels) and labels 40 images in headless Chromium (Playwright) with their true digits, at a
person's pace, letting each refit reach the page before the next ten; after the fourth (the stop signal needs
three agreements) the page is photographed at 1280×800.

    .venv/bin/python -m docs.screenshot_live_page [--output-dir docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from altoolkit.cli import ToolkitArgumentParser
from altoolkit.errors import ToolkitError, cli_entry

PER_CLASS = 2
POOL_SIZE = 300
BUDGET = 60
LABELED = 40
REFIT_EVERY = 10
PACE_MS = 150
REPO = Path(__file__).resolve().parents[1]


def pool_truth(folder: Path) -> dict[str, str]:
    """Pool file name → its true digit (the demo folders' pool, in the order they were written)."""
    from altoolkit.data import load_dataset
    from docs.demo_folders import demo_rows

    digits = load_dataset("digits")
    _, pool_rows = demo_rows(digits.y_train, PER_CLASS, POOL_SIZE)
    names = {f"image_{number:04d}.png": digits.class_names[digits.y_train[row]] for number, row in enumerate(pool_rows)}
    return {name: names[name] for name in (path.name for path in (folder / "pool").iterdir())}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable for Playwright")
    args = parser.parse_args(argv)

    import label
    from playwright.sync_api import expect, sync_playwright

    from altoolkit.labeling.store import LabelStore
    from docs.demo_folders import write_demo_folders

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        labeled, pool = write_demo_folders(folder, per_class=PER_CLASS, pool_size=POOL_SIZE)
        project = folder / "project"
        label.main(["select", "--project", str(project), "--pool", str(pool), "--labeled", str(labeled), "--budget",
                    str(BUDGET)])
        truth = pool_truth(folder)
        with LabelStore(project) as store:
            classes = {image.image_id: truth[image.relative_path] for image in store.images()}
        server = subprocess.Popen([sys.executable, str(REPO / "label.py"), "serve", "--project", str(project),
                                   "--port", "0", "--no-browser", "--labeler", "demo", "--refit-every",
                                   str(REFIT_EVERY)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            match = re.search(r"http://[^\s/]+/", server.stdout.readline())
            if match is None:
                raise ToolkitError("label.py serve did not print its address: run it by hand to see why")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(match.group(0))
                page.wait_for_selector("img#current.loaded")
                for count in range(1, LABELED + 1):
                    image_id = page.locator("img#current").get_attribute("src").rsplit("/", 1)[1]
                    page.keyboard.press(classes[image_id])
                    page.wait_for_timeout(PACE_MS)
                    if count % REFIT_EVERY == 0:  # each refit in turn, however slowly the worker started
                        expect(page.locator("body")).to_have_attribute("data-reorder", str(count // REFIT_EVERY),
                                                                       timeout=120000)
                page.wait_for_selector("img#current.loaded")
                page.wait_for_timeout(400)
                page.screenshot(path=str(args.output_dir / "labeling_live.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            server.stdout.close()
    print(f"wrote {args.output_dir / 'labeling_live.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
