"""Screenshots of the labeling page for the docs: docs/labeling_page.png (mid-round) and docs/labeling_done.png.

Builds a throw-away project from scikit-learn's bundled digits (no download): the 8×8 images upscaled to 64×64
PNGs form the pool, a logistic regression trained on 300 digits scores them, and the 20 images it is least sure
about (smallest margin between its top two classes) form the round, so the guesses on the page are real model
outputs. A few images are labeled through the store, the page is served on a free port and photographed in
headless Chromium (Playwright) at 1280×800; the rest are then labeled with the keyboard to reach the done screen.

    .venv/bin/python docs/screenshot_labeling_page.py [--output-dir docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from altoolkit.cli import ToolkitArgumentParser, positive_int

TRAIN_SIZE = 300
CANDIDATES = range(300, 1000)
RETRAIN_COMMAND = ("python train.py --dataset folder --data-path digits/labeled --label-store digits/project "
                   "--output-dir models/round-1")


def build_demo_project(folder: Path, batch_size: int, labeled_first: int):
    """A digits project in ``folder``: (store, round id, pool folder, true class of each batch image in order)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from altoolkit.labeling.pool import scan_pool
    from altoolkit.labeling.store import BatchItem, LabelStore

    digits = load_digits()
    model = LogisticRegression(max_iter=2000).fit(digits.data[:TRAIN_SIZE], digits.target[:TRAIN_SIZE])
    candidates = np.array(CANDIDATES)
    probabilities = model.predict_proba(digits.data[candidates])
    ordered = np.sort(probabilities, axis=1)
    margins = ordered[:, -1] - ordered[:, -2]
    chosen = np.argsort(margins, kind="stable")[:batch_size]

    pool = folder / "pool"
    pool.mkdir()
    for index in candidates[chosen]:
        ink = 255 - np.round(digits.images[index] * (255 / 16)).astype(np.uint8)
        Image.fromarray(ink, mode="L").resize((64, 64), Image.NEAREST).save(pool / f"digit_{index:04d}.png")
    images = scan_pool(pool)
    id_by_name = {image.relative_path: image.image_id for image in images}

    class_names = [str(number) for number in model.classes_]
    store = LabelStore(folder / "project", class_names=class_names)
    store.add_images(images)
    items = [BatchItem(id_by_name[f"digit_{candidates[row]:04d}.png"], class_names[int(np.argmax(probabilities[row]))],
                       {name: float(p) for name, p in zip(class_names, probabilities[row])},
                       {"margin": float(margins[row])})
             for row in chosen]
    round_id = store.start_round("margin", {"budget": batch_size, "model": "logistic regression on 300 digits"},
                                 items)
    truths = [str(digits.target[candidates[row]]) for row in chosen]
    for item, truth in zip(items[:labeled_first], truths[:labeled_first]):
        store.set_label(item.image_id, truth, labeler="demo", round_id=round_id, source="page")
    return store, round_id, pool, truths


def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable for Playwright")
    parser.add_argument("--batch-size", type=positive_int, default=20)
    parser.add_argument("--labeled-first", type=positive_int, default=6, help="images labeled before the first screenshot")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from altoolkit.labeling.server import make_server, server_url

    with tempfile.TemporaryDirectory() as temporary:
        store, round_id, pool, truths = build_demo_project(Path(temporary), args.batch_size, args.labeled_first)
        server = make_server(store, round_id, pool, port=0, labeler="demo", retrain_command=RETRAIN_COMMAND)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server_url(server))
                page.wait_for_selector("img#current.loaded")
                page.screenshot(path=str(args.output_dir / "labeling_page.png"))
                for truth in truths[args.labeled_first:]:
                    page.keyboard.press(truth)
                page.wait_for_selector("#done", state="visible")
                page.wait_for_selector("body[data-pending='0']")
                page.wait_for_timeout(400)
                page.screenshot(path=str(args.output_dir / "labeling_done.png"))
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
            store.close()
    print(f"wrote {args.output_dir / 'labeling_page.png'} and {args.output_dir / 'labeling_done.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
