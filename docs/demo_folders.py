"""Write scikit-learn's bundled digits as image folders, to try the labeling workflow without your own images.

``labeled/<class>/`` gets the first ``--per-class`` training digits of each class (the initial labeled set, with
class sub-folders); ``pool/`` gets the next ``--pool-size`` digits as PNGs with no labels (names say nothing
about the class). Run ``python docs/demo_folders.py --output-dir results/label-demo``.
"""

from __future__ import annotations

from pathlib import Path

from altoolkit.cli import ToolkitArgumentParser, positive_int
from altoolkit.errors import ToolkitError, cli_entry


def write_demo_folders(output_dir: str | Path, per_class: int = 20, pool_size: int = 400) -> tuple[Path, Path]:
    """Write ``labeled/`` and ``pool/`` under ``output_dir`` (atomically each); returns their paths."""
    from PIL import Image

    from altoolkit.data import load_dataset
    from altoolkit.files import atomic_directory

    if per_class < 1 or pool_size < 1:
        raise ToolkitError("--per-class and --pool-size must be positive")
    digits = load_dataset("digits")
    output_dir = Path(output_dir)
    labeled_rows, pool_rows = demo_rows(digits.y_train, per_class, pool_size)
    if len(pool_rows) < pool_size:
        raise ToolkitError(f"digits has only {len(pool_rows)} images left for the pool: lower --pool-size")
    with atomic_directory(output_dir / "labeled") as labeled:
        for row in labeled_rows:
            folder = labeled / digits.class_names[digits.y_train[row]]
            folder.mkdir(exist_ok=True)
            Image.fromarray(digits.x_train[row]).save(folder / f"digit_{row:04d}.png")
    with atomic_directory(output_dir / "pool") as pool:
        for number, row in enumerate(pool_rows):
            Image.fromarray(digits.x_train[row]).save(pool / f"image_{number:04d}.png")
    return output_dir / "labeled", output_dir / "pool"


def demo_rows(classes, per_class: int, pool_size: int) -> tuple[list[int], list[int]]:
    """(rows of the labeled folder, rows of the pool in file order): the first ``per_class`` digits of each class,
    then the next ``pool_size`` digits (``pool/image_0000.png`` is the first pool row)."""
    counts: dict[int, int] = {}
    labeled_rows, pool_rows = [], []
    for row, label in enumerate(classes):
        if counts.get(int(label), 0) < per_class:
            counts[int(label)] = counts.get(int(label), 0) + 1
            labeled_rows.append(row)
        elif len(pool_rows) < pool_size:
            pool_rows.append(row)
    return labeled_rows, pool_rows


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="results/label-demo", help="default: results/label-demo")
    parser.add_argument("--per-class", type=positive_int, default=20, help="labeled images per class (default: 20)")
    parser.add_argument("--pool-size", type=positive_int, default=400, help="unlabeled images (default: 400)")
    args = parser.parse_args(argv)
    if Path(args.output_dir, "labeled").exists() or Path(args.output_dir, "pool").exists():
        raise ToolkitError(f"{args.output_dir} already holds labeled/ or pool/: remove them or choose --output-dir")
    labeled, pool = write_demo_folders(args.output_dir, args.per_class, args.pool_size)
    print(f"labeled set: {labeled}/<class>/  pool: {pool}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
