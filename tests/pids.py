"""Whether a process has ended, read from /proc (a zombie counts as ended)."""

from __future__ import annotations

from pathlib import Path


def ended(pid: int) -> bool:
    """Return True if process `pid` is gone or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return True
    return state == "Z"
