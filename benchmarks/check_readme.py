"""Every table of figures in the READMEs names the committed file its figures come from.

    python benchmarks/check_readme.py                  # README.md and benchmarks/README.md
    python benchmarks/check_readme.py docs/page.md     # any markdown file

A table holds figures when one of its cells is a measurement alone (``94.3%``, ``0.956``, ``21.4``,
``3.8x``, ``1.12 ms``). Such a table must have, in the paragraph just above it, a path in backticks or a
link that names its source (a results file or folder of the repository), and that path must exist. Prints
each table's verdict; exits 1 when one lacks its source.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"^[~<>≈]?\s*[-+]?\d[\d,]*(\.\d+)?\s*(%|x|s|ms|us|GB/s|MB|KiB|MiB)?$")
SOURCE = re.compile(r"`([\w./-]+/[\w.-]*|[\w.-]+\.(?:jsonl?|csv|md|txt))`|\]\(([^)\s]+)\)")


def tables(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first line number, rows) of every markdown table."""
    found, start = [], None
    for number, line in enumerate(lines + [""]):
        if line.lstrip().startswith("|"):
            start = number if start is None else start
        elif start is not None:
            found.append((start, lines[start:number]))
            start = None
    return found


def has_figures(rows: list[str]) -> bool:
    for row in rows[2:]:  # past the header and its rule
        for cell in row.strip().strip("|").split("|"):
            if FIGURE.match(cell.strip().strip("*`").strip()):
                return True
    return False


def sources_above(lines: list[str], start: int) -> list[str]:
    """Paths named in the paragraph right above a table (up to the previous blank line or heading)."""
    paragraph = []
    number = start - 1
    while number >= 0 and not lines[number].strip():
        number -= 1
    while number >= 0 and lines[number].strip() and not lines[number].startswith("#"):
        paragraph.append(lines[number])
        number -= 1
    named = []
    for match in SOURCE.finditer(" ".join(reversed(paragraph))):
        named.append(match.group(1) or match.group(2))
    return named


def check(path: Path) -> list[str]:
    """Problems with ``path``'s tables of figures (empty when every one names an existing source)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    for start, rows in tables(lines):
        if not has_figures(rows):
            continue
        named = sources_above(lines, start)
        existing = [n for n in named if (path.parent / n).exists() or (ROOT / n).exists()]
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{start + 1}"
        if not existing:
            missing = f" (named but missing: {', '.join(named)})" if named else ""
            problems.append(f"{where}: a table of figures names no committed results file above it{missing}")
        else:
            print(f"{where}: figures from {', '.join(dict.fromkeys(existing))}")
    return problems


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    problems = [problem for path in paths for problem in check(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
