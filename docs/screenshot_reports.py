"""Screenshots of the HTML reports for the README: docs/benchmark_report.png (the committed fashion-pipeline run's
galleries of what each strategy picked) and docs/cycle_report.png (the demo cycle's accuracy heat map and verdict).

Opens each report.html in headless Chromium (Playwright) at 1280×900, scrolled to the section shown, and refuses a
page that logged a console error.

    .venv/bin/python docs/screenshot_reports.py [--output-dir docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

from pathlib import Path

from altoolkit.cli import ToolkitArgumentParser
from altoolkit.errors import ToolkitError, cli_entry

REPOSITORY = Path(__file__).resolve().parents[1]
SHOTS = {"benchmark_report.png": (REPOSITORY / "benchmarks/results/fashion-pipeline/report.html", "#picks",
                                  "python -m Evaluation.Benchmark.report benchmarks/results/fashion-pipeline"),
         "cycle_report.png": (REPOSITORY / "results/demo/report.html", "h2:nth-of-type(2)", "make demo")}
"""Screenshot file → (report page, the section scrolled to the top, the command that writes the page)."""


def take_screenshots(output_dir: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    for page_file, _, command in SHOTS.values():
        if not page_file.is_file():
            raise ToolkitError(f"{page_file} is missing: run `{command}` first")
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for name, (page_file, section, _) in SHOTS.items():
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors = []
                page.on("console", lambda message: message.type == "error" and errors.append(message.text))
                page.goto(page_file.as_uri())
                page.locator(section).first.evaluate("element => element.scrollIntoView()")
                if errors:
                    raise ToolkitError(f"{page_file} logged console errors: {errors[0]}")
                page.screenshot(path=str(output_dir / name))
                written.append(output_dir / name)
                page.close()
        finally:
            browser.close()
    return written


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable for Playwright")
    args = parser.parse_args(argv)
    print("wrote " + " and ".join(map(str, take_screenshots(args.output_dir, args.chromium))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
