"""The fault suite's figures: each test records one `FAULTS:` line, printed at the end of every run.

Tests call `record(name, **figures)`; tests/faults/conftest.py prints the lines in pytest's
terminal summary (so they show with or without `-s`) and keeps them in pytest's cache.
`python -m tests.faults.report` prints the lines of the last run again (for the README).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PREFIX = "FAULTS:"
CACHE_KEY = "faults/figures"
LINES: list[str] = []
ROOT = Path(__file__).resolve().parents[2]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def record(name: str, **figures: object) -> str:
    """Add (and print) one line of figures for test `name`; return the line."""
    line = f"{PREFIX} {name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
    LINES.append(line)
    print(line)
    return line


def main(root: Path = ROOT) -> int:
    """Print the figures the last run of the suite kept in .pytest_cache."""
    path = root / ".pytest_cache" / "v" / CACHE_KEY
    if not path.is_file():
        print("no figures yet: run `python -m pytest tests/faults`", file=sys.stderr)
        return 1
    for line in json.loads(path.read_text()):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
