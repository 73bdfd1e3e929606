#!/usr/bin/env python3
"""The .espdl executor against ESP-PPQ's executor: seconds per image and peak memory. Not a test.

  python benchmarks/bench_executor.py BUILD_DIR [BUILD_DIR ...] [--images 10] [--threads 2] [--out FILE.md]

Each engine runs in its own child process (so that the peak resident memory, ``ru_maxrss`` from ``os.wait4``,
belongs to it alone) on the same device-exact int inputs of the first N val images of coco-pose-mini; the first
image is a warm-up and is not timed. Both engines compute the same model: the executor from the ``.espdl`` file
(ESP-DL's integer semantics), ESP-PPQ from the build's ``model.native`` graph.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import emit_table, git_commit  # noqa: E402

SHARED = Path(os.environ.get("YOLO11_POSE_SHARED") or REPO.parent / "shared")
IMAGES = SHARED / "data" / "coco-pose-mini" / "images"

CHILD = r"""
import json, sys, time
import numpy as np
import torch
sys.path.insert(0, {tools!r})
torch.set_num_threads({threads})
from yolo11_pose.device.twin import Twin
from yolo11_pose.device.preprocess import load_rgb
twin = Twin({build!r}, engine={engine!r})
times = []
for i, f in enumerate({images!r}):
    rgb = load_rgb(f)
    t = time.perf_counter()
    twin.quantized(rgb)
    if i:
        times.append(time.perf_counter() - t)
print(json.dumps({{"s_per_image": sum(times) / len(times), "imgsz": twin.imgsz}}))
"""


def run_child(build: str, engine: str, images: list[str], threads: int) -> dict:
    code = CHILD.format(tools=str(REPO / "tools"), threads=threads, build=build, engine=engine, images=images)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{engine} on {build} failed (status {status})")
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_gb"] = usage.ru_maxrss / 1024 ** 2
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="build folders (model.espdl, model.native, manifest.json)")
    ap.add_argument("--images", type=int, default=10, help="images per engine (the first is a warm-up)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for both engines")
    ap.add_argument("--out", default=None, help="also write the table here (Markdown)")
    a = ap.parse_args()
    images = [str(p) for p in sorted(IMAGES.glob("*.jpg"))[: a.images + 1]]
    lines = [f"Executor vs ESP-PPQ's executor ({a.images} images after one warm-up, {a.threads} threads, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, commit {git_commit()}, "
             f"{time.strftime('%Y-%m-%d')})", "",
             "| build | imgsz | executor s/img | ESP-PPQ s/img | speed-up | executor peak GB | ESP-PPQ peak GB |",
             "|---|---|---|---|---|---|---|"]
    for b in a.builds:
        ex = run_child(b, "espdl", images, a.threads)
        pq = run_child(b, "ppq", images, a.threads)
        lines.append(f"| {Path(b).name} | {ex['imgsz']} | {ex['s_per_image']:.2f} | {pq['s_per_image']:.2f} | "
                     f"{pq['s_per_image'] / ex['s_per_image']:.1f}x | {ex['peak_gb']:.2f} | {pq['peak_gb']:.2f} |")
        print(lines[-1], flush=True)
    emit_table(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
