"""Helpers shared by the benchmark scripts."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: ../shared (weights, COCO data, Espressif's files), or $YOLO11_POSE_SHARED
SHARED = Path(os.environ.get("YOLO11_POSE_SHARED") or REPO.parent / "shared")
DATA = SHARED / "data" / "coco-pose-mini"


def git_commit() -> str:
    """Short commit of the checkout the figures come from, flagged when the tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def emit_table(lines: list[str], out: str | None) -> None:
    """Print a Markdown table and, with ``out``, also write it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
