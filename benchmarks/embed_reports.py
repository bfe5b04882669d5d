"""Copy the committed benchmark reports into README.md, so every figure there comes from a generated file.

Run ``python benchmarks/embed_reports.py`` after a benchmark rewrote its report (``--check`` only says whether the
README is up to date, exit code 1 if not). The README marks each embedded block with ``<!-- embed:NAME -->`` …
``<!-- /embed:NAME -->``; the block is the report from its first ``## `` section on (or everything after its
title), headings moved down two levels so they nest under the README's section — or, for a ``report.md#Section``
entry, the body of that one section.
"""

from __future__ import annotations

import re
from pathlib import Path

from altoolkit.cli import ToolkitArgumentParser
from altoolkit.errors import ToolkitError, cli_entry
from altoolkit.files import write_text

REPOSITORY = Path(__file__).resolve().parents[1]
EMBEDDED_REPORTS = {"headline": "benchmarks/results/fashion-pipeline/report.md#Label efficiency against the design's "
                                "baseline",
                    "fashion-pipeline-benchmark": "benchmarks/results/fashion-pipeline/report.md",
                    "fashion-pipeline-scarce-benchmark": "benchmarks/results/fashion-pipeline-scarce/report.md",
                    "fashion-pipeline-spreading": "benchmarks/results/fashion-pipeline-spreading/report.md#Label "
                                                  "efficiency against the design's baseline",
                    "fashion-baseline-benchmark": "benchmarks/results/fashion-baseline/report.md",
                    "representations": "benchmarks/results/representations.md",
                    "pipeline-speed": "benchmarks/results/pipeline_speed.md",
                    "scale-32": "benchmarks/results/scale_32px.md",
                    "scale-128": "benchmarks/results/scale_128px.md",
                    "max-candidates": "benchmarks/results/max_candidates.md",
                    "fashion-benchmark": "benchmarks/results/fashion/report.md",
                    "fashion-scarce-benchmark": "benchmarks/results/fashion-scarce/report.md",
                    "strategy-speed": "benchmarks/results/strategy_speed.md",
                    "live-latency": "benchmarks/results/live_latency.md",
                    "live-simulation": "benchmarks/results/live_simulation.md"}
"""Embed name → report file, relative to the repository (``file#Section title`` for one section's body)."""


def report_block(report: str) -> str:
    """The report from its first second-level section on (or, without one, everything after its title), with
    ``#`` headings two levels deeper."""
    lines = report.splitlines()
    start = next((number for number, line in enumerate(lines) if line.startswith("## ")), None)
    if start is None:
        start = next((number + 1 for number, line in enumerate(lines) if line.startswith("# ")), None)
    if start is None:
        raise ToolkitError("the report has no '# ' title or '## ' section to embed after")
    return "\n".join("##" + line if line.startswith("#") else line for line in lines[start:]).strip() + "\n"


def section_body(report: str, title: str) -> str:
    """The lines under the ``## title`` section of a report, up to the next ``## `` section."""
    lines = report.splitlines()
    try:
        start = lines.index(f"## {title}") + 1
    except ValueError:
        raise ToolkitError(f"the report has no '## {title}' section") from None
    end = next((number for number in range(start, len(lines)) if lines[number].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


def embed(readme: str, name: str, block: str) -> str:
    """``readme`` with the text between the ``name`` markers replaced by ``block``."""
    pattern = re.compile(rf"(<!-- embed:{re.escape(name)} -->\n).*?(<!-- /embed:{re.escape(name)} -->)", re.S)
    if not pattern.search(readme):
        raise ToolkitError(f"README.md has no <!-- embed:{name} --> … <!-- /embed:{name} --> markers")
    return pattern.sub(lambda match: match.group(1) + block + match.group(2), readme, count=1)


def embedded_readme(readme: str, root: Path = REPOSITORY) -> str:
    for name, entry in EMBEDDED_REPORTS.items():
        report, _, section = entry.partition("#")
        file = root / report
        if not file.is_file():
            raise ToolkitError(f"{report} not found: run the benchmark the README gives for it first")
        text = file.read_text(encoding="utf-8")
        readme = embed(readme, name, section_body(text, section) if section else report_block(text))
    return readme


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = ToolkitArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args(argv)
    readme_file = REPOSITORY / "README.md"
    current = readme_file.read_text(encoding="utf-8")
    updated = embedded_readme(current)
    if args.check:
        print("README.md is up to date" if updated == current else "README.md differs from the reports: run "
              "python benchmarks/embed_reports.py")
        return 0 if updated == current else 1
    if updated != current:
        write_text(readme_file, updated)
    print(f"README.md: embedded {', '.join(EMBEDDED_REPORTS.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
