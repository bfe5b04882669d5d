"""Benchmark: ``label.py select`` on generated pools of image files, from 10,000 to a million, with peak memory.

Run ``python benchmarks/scale.py --help``. The script writes pools of small PNG files (scikit-learn's digits,
resized to ``--image-size``, four random pixels changed per file so every file is distinct), a labeled folder of
``--labeled-per-class`` images per digit, and a MobileNetV3Small trained on it for one epoch (its weights do not
change the cost). Then, for every pool size and strategy, one ``label.py select`` in a fresh project and a fresh
process — list and hash the files, decode and score the whole pool, cache the arrays, select ``--budget`` —
measuring its wall time and peak resident memory (``ru_maxrss`` of that child process, from ``os.wait4``). It
also compares the streamed forward pass (decoding in parallel while the model runs) with the in-memory pass over
the same decoded images. The targets (issue 16): peak memory at most 2 GB, time per image flat from the
smallest to the largest pool, the streamed pass at least 0.9× the in-memory one. A benchmark to read, not a
timed test. Pools are generated once under ``--work-dir`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from altoolkit.cli import ToolkitArgumentParser, image_size_argument, positive_int
from altoolkit.errors import ToolkitError, cli_entry
from benchmarks.reporting import finish_report

SCRIPT = "benchmarks/scale.py"
FILES_PER_FOLDER = 1000
MEMORY_TARGET_BYTES = 2 * 10**9
STREAMED_TARGET = 0.9
THROUGHPUT_IMAGES = 50_000
RAY_POOL_LIMIT = 100_000
"""The Ray comparison runs on the largest pool of at most this many files."""
REPO = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = ToolkitArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="pool sizes, comma-separated (default: 10000,100000,1000000)")
    parser.add_argument("--image-size", type=image_size_argument, default=32, help="default: 32")
    parser.add_argument("--strategies", default="margin,recommended", help="default: margin,recommended")
    parser.add_argument("--budget", type=positive_int, default=1000, help="default: 1000")
    parser.add_argument("--labeled-per-class", type=positive_int, default=5,
                        help="labeled images per digit (default: 5, so recommended starts with typicality)")
    parser.add_argument("--work-dir", default="results/scale", help="pools, model, projects (default: results/scale)")
    parser.add_argument("--no-ray", dest="ray", action="store_false",
                        help="skip the Ray engine's comparison (it needs the [ray] extra)")
    parser.add_argument("--output", default=None, metavar="FILE.md", help="also write the report here")
    return parser


def _write_files(task: tuple[str, int, int, int]) -> int:
    """Write files ``start..stop-1`` of a generated pool (run in a worker process)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder, start, stop, size = task
    digits = load_digits().images
    rng = np.random.default_rng(start)
    for index in range(start, stop):
        image = Image.fromarray((digits[index % len(digits)] * 15).astype(np.uint8)).resize((size, size))
        pixels = np.asarray(image.convert("RGB")).copy()
        rows, columns = rng.integers(0, size, 4), rng.integers(0, size, 4)
        pixels[rows, columns] = rng.integers(0, 256, (4, 3))
        file = Path(folder) / f"{index // FILES_PER_FOLDER:05d}" / f"{index:07d}.png"
        file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(file)
    return stop - start


def generated_pool(work_dir: Path, count: int, size: int) -> Path:
    """A folder of ``count`` distinct PNG files at ``size`` pixels (written once; the first ``count`` files of a
    larger generated pool are hard-linked instead of written again)."""
    folder = work_dir / f"pool-{size}px-{count}"
    done = folder / ".complete"
    if done.exists():
        return folder
    larger = sorted((path for path in work_dir.glob(f"pool-{size}px-*") if (path / ".complete").exists()
                     and int(path.name.rsplit("-", 1)[1]) > count), key=lambda path: int(path.name.rsplit("-", 1)[1]))
    if larger:
        for index in range(count):
            relative = Path(f"{index // FILES_PER_FOLDER:05d}") / f"{index:07d}.png"
            (folder / relative.parent).mkdir(parents=True, exist_ok=True)
            if not (folder / relative).exists():
                os.link(larger[0] / relative, folder / relative)
    else:
        step = 20_000
        tasks = [(str(folder), start, min(start + step, count), size) for start in range(0, count, step)]
        with ProcessPoolExecutor(os.cpu_count() or 1) as executor:
            list(executor.map(_write_files, tasks))
    done.write_text(str(count))
    return folder


def labeled_folder(work_dir: Path, per_class: int, size: int) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = work_dir / f"labeled-{size}px-{per_class}"
    if (folder / ".complete").exists():
        return folder
    digits = load_digits()
    counts: dict[int, int] = {}
    for image, target in zip(digits.images[::-1], digits.target[::-1]):
        if counts.get(int(target), 0) < per_class:
            counts[int(target)] = counts.get(int(target), 0) + 1
            file = folder / f"digit_{target}" / f"{counts[int(target)]}.png"
            file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 15).astype(np.uint8)).resize((size, size)).convert("RGB").save(file)
    (folder / ".complete").write_text("")
    return folder


def trained_model(work_dir: Path, labeled: Path, size: int) -> Path:
    run = work_dir / f"model-{size}px"
    model = run / "best_model.keras"
    if not model.exists():
        from altoolkit.data import load_dataset

        training_images = len(load_dataset("folder", path=labeled, image_size=size).x_train)
        command = [sys.executable, "train.py", "--dataset", "folder", "--data-path", str(labeled), "--image-size",
                   str(size), "--labeled-size", str(training_images), "--epochs", "1", "--quiet", "--output-dir",
                   str(run)]
        if subprocess.run(command, cwd=REPO).returncode != 0:
            raise ToolkitError(f"{shlex.join(command)} failed (its error is above)")
    return model


def measured_select(command: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak resident bytes, stdout) of one ``label.py select`` in its own process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=errors, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        output.seek(0)
        errors.seek(0)
        printed, complaint = output.read(), errors.read().strip()
    if process.returncode != 0:
        raise ToolkitError(f"{shlex.join(command)} failed: {complaint.splitlines()[-1] if complaint else '?'}")
    return seconds, usage.ru_maxrss * 1024, printed


def streamed_against_in_memory(pool_folder: Path, model_path: Path, size: int, cache: Path) -> dict:
    """Images per second, on the first :data:`THROUGHPUT_IMAGES` files, of the streamed pass (decoding in parallel
    while the model runs, arrays to disk), of the in-memory path it replaced (every image decoded in turn into one
    array, then the batched pass) and of that pass alone over the already decoded images."""
    from altoolkit.model import load_classifier, probabilities_and_embeddings
    from altoolkit.outputs import streamed_model_outputs
    from altoolkit.sources import read_image
    from altoolkit.streaming import FilePool, scan_file_pool

    pool = scan_file_pool(pool_folder, size)
    pool = FilePool(pool.root, pool.files[:THROUGHPUT_IMAGES], size)
    model = load_classifier(model_path)
    started = time.perf_counter()
    images = np.stack([read_image(pool.root / file.relative_path, size) for file in pool.files])
    decoding = time.perf_counter() - started
    probabilities_and_embeddings(model, images[:512])  # traced once, outside the timing
    started = time.perf_counter()
    probabilities_and_embeddings(model, images)
    passing = time.perf_counter() - started
    del images
    started = time.perf_counter()
    streamed_model_outputs(model, f"throughput-{time.time()}", pool, cache)
    streamed = time.perf_counter() - started
    return {"images": len(pool), "in_memory": len(pool) / (decoding + passing), "pass_alone": len(pool) / passing,
            "streamed": len(pool) / streamed}


def ray_against_local(pool_folder: Path, model_path: Path, size: int, cache: Path) -> list[tuple[str, float, float]]:
    """(engine, images per second, largest difference from the local arrays) of the model's pass over a pool:
    local (streamed in this process), then Ray Data with 1 and 2 one-core actors on a local Ray. Ray's time
    includes starting its actors (each imports TensorFlow and loads the model)."""
    from altoolkit.model import load_classifier
    from altoolkit.outputs import streamed_model_outputs
    from altoolkit.ray_engine import RayEngine, start_ray
    from altoolkit.streaming import scan_file_pool

    pool = scan_file_pool(pool_folder, size)
    model = load_classifier(model_path)
    results, reference = [], None
    start_ray(None, num_cpus=os.cpu_count())
    engines = (("local", None), ("Ray, 1 actor", RayEngine(actors=1)), ("Ray, 2 actors", RayEngine(actors=2)))
    for label, engine in engines:
        started = time.perf_counter()
        outputs = streamed_model_outputs(model, f"{label}-{time.time()}", pool, cache, engine=engine,
                                         model_path=model_path)
        seconds = time.perf_counter() - started
        reference = reference or outputs
        difference = max(float(np.abs(np.asarray(mine) - np.asarray(theirs)).max())
                         for mine, theirs in zip(outputs, reference))
        results.append((label, len(pool) / seconds, difference))
    return results


@cli_entry
def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    sizes = sorted({int(text) for text in args.sizes.split(",")})
    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    started = time.perf_counter()
    work_dir = Path(args.work_dir).resolve() / f"{args.image_size}px"
    work_dir.mkdir(parents=True, exist_ok=True)
    generating = time.perf_counter()
    pools = {count: generated_pool(work_dir, count, args.image_size) for count in sorted(sizes, reverse=True)}
    generating = time.perf_counter() - generating
    labeled = labeled_folder(work_dir, args.labeled_per_class, args.image_size)
    model = trained_model(work_dir, labeled, args.image_size)
    rows = []
    for count in sizes:
        for strategy in strategies:
            project = work_dir / "projects" / f"{strategy}-{count}"
            if project.exists():
                subprocess.run(["rm", "-rf", str(project)], check=True)
            command = [sys.executable, "label.py", "select", "--project", str(project), "--pool", str(pools[count]),
                       "--labeled", str(labeled), "--model", str(model), "--budget", str(args.budget),
                       "--strategy", strategy, "--cache-limit-gb", "1000"]
            seconds, peak, output = measured_select(command)
            ran = next((line.split(":", 1)[1].split(" features")[0].strip() for line in output.splitlines()
                        if line.startswith(f"{strategy}:")), strategy)
            rows.append((count, strategy, ran, seconds, peak))
            print(f"{count:,} files, {strategy}: {seconds:.0f} s, peak {peak / 2**30:.2f} GiB", flush=True)
    throughput = streamed_against_in_memory(pools[max(sizes)], model, args.image_size, work_dir / "throughput-cache")
    ray_pool = max((count for count in sizes if count <= RAY_POOL_LIMIT), default=min(sizes))
    engines = ray_against_local(pools[ray_pool], model, args.image_size, work_dir / "ray-cache") if args.ray else []
    lines = report_lines(args, arguments, rows, throughput, generating, ray_pool, engines)
    finish_report(lines, started, args.output)
    return 0


def decoding_ms(throughput: dict) -> float:
    """Milliseconds of serial decoding per image: the in-memory path's time per image minus the pass's."""
    return 1000 * (1 / throughput["in_memory"] - 1 / throughput["pass_alone"])


def report_lines(args, arguments, rows, throughput, generating, ray_pool, engines) -> list[str]:
    lines = [f"# `label.py select` on pools of {args.image_size}-pixel image files", "", "```",
             f"python {SCRIPT} {shlex.join(arguments)}", "```", "",
             f"- Pools: generated PNG files ({args.image_size}×{args.image_size}, digits with four random pixels "
             f"changed per file; generating took {generating:.0f} s, or nothing when reused); labeled folder: "
             f"{args.labeled_per_class} per digit; model: MobileNetV3Small, one epoch on it.",
             f"- Each row: one `label.py select --budget {args.budget}` in a fresh project and process: list and hash "
             "the files, decode and score the whole pool (probabilities and embeddings cached on disk), select. Peak "
             "memory is the process's `ru_maxrss`.",
             f"- Machine: {os.cpu_count()} CPUs; 1-minute load average at the end {os.getloadavg()[0]:.2f}.", "",
             "| pool files | strategy | ran | wall time | per 1,000 images | peak memory | ≤ 2 GB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for count, strategy, ran, seconds, peak in rows:
        verdict = "✅" if peak <= MEMORY_TARGET_BYTES else "❌"
        lines.append(f"| {count:,} | `{strategy}` | {ran} | {seconds:.0f} s | {1000 * seconds / count:.2f} s | "
                     f"{peak / 10**9:.2f} GB | {verdict} |")
    ratio = throughput["streamed"] / throughput["in_memory"]
    lines += ["", f"Forward pass over {throughput['images']:,} of the files, images per second: streamed (decoding "
              f"in {os.cpu_count()} threads while the model runs, arrays written to disk) "
              f"{throughput['streamed']:,.0f}; the in-memory path it replaces (decode every image in turn into one "
              f"array, then the batched pass) {throughput['in_memory']:,.0f}: **{ratio:.2f}×** (target ≥ "
              f"{STREAMED_TARGET}×: {'✅ holds' if ratio >= STREAMED_TARGET else '❌ misses'}). The batched pass "
              f"alone over images already in memory runs at {throughput['pass_alone']:,.0f} images/s "
              f"({throughput['streamed'] / throughput['pass_alone']:.2f}× of it streamed): on {os.cpu_count()} "
              f"cores, decoding the PNG files with Pillow ({decoding_ms(throughput):.2f} ms per image, one at a "
              "time) takes CPU time the model would use."]
    if engines:
        lines += ["", f"The same pass over the {ray_pool:,}-file pool on Ray Data (`--engine ray`, a local Ray on "
                  "this machine; Ray's time includes starting its actors):", "",
                  "| engine | images/s | largest difference from the local arrays |", "| --- | --- | --- |"]
        lines += [f"| {label} | {rate:,.0f} | {difference:.1e} |" for label, rate, difference in engines]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
