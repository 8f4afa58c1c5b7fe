"""Summarize a py-spy raw profile (`py-spy record --format raw`): where the samples went.

    python bench/profile_top.py profile.txt [--top 25]

Prints, per thread kind (the loop's main thread, the `call` pool threads), the share of
samples by function: inclusive (on the stack) and self (innermost frame).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def summarize(path: str, top: int) -> str:
    inclusive: dict[str, Counter[str]] = {}
    selfs: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    with open(path) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [_name(x) for x in stack.split(";")]
            kind = (
                "call threads"
                if any("Dispatcher._run" in x for x in frames)
                else ("loop thread" if any("Scheduler.run " in x for x in frames) else "other")
            )
            totals[kind] += count
            for name in set(frames):
                inclusive.setdefault(kind, Counter())[name] += count
            selfs.setdefault(kind, Counter())[frames[-1]] += count
    out = []
    for kind, total in totals.most_common():
        out.append(f"## {kind}: {total} samples")
        out.append("inclusive:")
        for name, n in inclusive[kind].most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {name}")
        out.append("self:")
        for name, n in selfs[kind].most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarize(args.path, args.top))


if __name__ == "__main__":
    main()
