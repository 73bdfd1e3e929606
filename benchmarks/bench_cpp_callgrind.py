#!/usr/bin/env python3
"""Instruction counts of the C++ core on the host (valgrind callgrind), printed as a table. Not a test.

  python benchmarks/bench_cpp_callgrind.py [--weights ../shared/models/yolo11n-pose.pt]

preprocess: ultralytics' bus.jpg, 810x1080 RGB888 -> 640x640 int8 (letterbox, nearest resize, table quantization;
            includes building the index maps, which a camera loop does once).
postprocess: the official yolo11n-pose's 9 head outputs for bus.jpg at 640, each quantized to int8 at its own
            exponent, NMS 0.7, conf 0.25 with max_det 20 (the device's defaults) and conf 0.05 with max_det 300;
            and the same frame's detections in YOLO26-pose's head formats (one2many: direct boxes + NMS; one2one:
            direct boxes + top-k, no NMS), made from YOLO11's outputs as there are no trained YOLO26-pose weights
            here (see _heads_on_one_frame).
Counts are x86-64 instructions of an -O2 build (no sanitizers); they track algorithmic cost, not chip cycles.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from yolo11_pose.device import cpp
from yolo11_pose.device.preprocess import load_rgb, quantize


def callgrind(exe: Path, stdin: bytes, func: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
               f"--toggle-collect={func}", str(exe)]
        r = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
        if r.returncode:
            raise SystemExit(f"valgrind failed:\n{r.stderr.decode(errors='replace')[-2000:]}")
        m = re.search(rb"^(?:summary|totals):\s*(\d+)", out.read_bytes(), re.MULTILINE)
        return int(m.group(1)) if m else 0


def _int8(outs: dict) -> dict:
    """Each output quantized to int8 at its own exponent (what a calibrated output gets)."""
    res = {}
    for n, x in outs.items():
        e = math.ceil(math.log2(float(np.abs(x).max()) / 127))
        res[n] = (quantize(x, e, 8, "half_even"), e)
    return res


def _heads_on_one_frame(outs: dict, conf: float):
    """The official YOLO11's outputs for the frame, and the same detections in YOLO26's head formats.

    No trained YOLO26-pose weights exist here, so YOLO26's tensors are made from YOLO11's for the same frame: box
    = the 4 distances YOLO11's DFL decodes to (reg_max 1), keypoints rewritten so that (raw + grid + 0.5) equals
    YOLO11's (2 * raw + grid), scores unchanged (one2many: same candidates, then NMS) or, for the end-to-end branch,
    kept above the threshold only on the anchors YOLO11's NMS keeps (a trained one-to-one head fires once per
    person). Same frame, same poses: what differs is the decode (DFL or not, NMS or top-k)."""
    from yolo11_pose.device import head as heads
    from yolo11_pose.device.decode import candidates, logit, nms

    y11 = heads.LEGACY
    y26 = heads.make("yolo26", "one2many", nc=1, kpt_shape=(17, 3))
    e2e = heads.make("yolo26", "one2one", nc=1, kpt_shape=(17, 3))
    thr = logit(conf)
    boxes, scores, classes, _ = candidates(outs, 640, 640, thr, head=y11)
    keep = set(nms(boxes, scores, classes, 0.7, 300))
    conv, one2one, seen = {}, {}, 0
    for level in range(3):
        box, score, kpt = (outs[n] for n in y11.level_names(level))
        bins = box.reshape(*box.shape[:3], 4, 16).astype(np.float64)
        e = np.exp(bins - bins.max(-1, keepdims=True))
        conv[y26.box[level]] = ((e / e.sum(-1, keepdims=True)) @ np.arange(16)).astype(np.float32)
        k = kpt.reshape(*kpt.shape[:3], 17, 3).copy()
        k[..., :2] = 2 * k[..., :2] - 0.5
        conv[y26.kpt[level]] = k.reshape(kpt.shape)
        conv[y26.score[level]] = score
        flat = score.reshape(-1).copy()
        passing = np.nonzero(flat >= thr)[0]
        drop = [i for j, i in enumerate(passing) if seen + j not in keep]
        flat[drop] = thr - 1.0
        seen += len(passing)
        one2one[e2e.score[level]] = flat.reshape(score.shape)
    one2one = {**conv, **one2one}
    yield "YOLO11 (DFL + NMS)", y11, outs
    yield "YOLO26 one2many (NMS)", y26, conv
    yield "YOLO26 one2one (top-k)", e2e, one2one


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "models" / "yolo11n-pose.pt"))
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind not found; apt-get install valgrind", file=sys.stderr)
        return 2
    import ultralytics

    bus = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    exe = cpp.build("release") / "yolo11_pose_host"
    rgb = load_rgb(bus)
    h, w = rgb.shape[:2]
    pre_req = (f"pre w={w} h={h} fmt=rgb888 dst=640x640 bits=8 exp=-7 round=half_even bytes={rgb.nbytes}\n"
               ).encode() + rgb.tobytes()

    rows = [("preprocess 810x1080 RGB888 -> 640x640 int8", callgrind(exe, pre_req, "yolo11_pose::Preprocessor::run*"))]

    if Path(a.weights).is_file():
        from yolo11_pose.device.twin import TorchModel

        outs, lb = TorchModel(a.weights, 640).raw(rgb)
        for conf, max_det in ((0.25, 20), (0.05, 300)):  # the device's defaults; a low threshold, many candidates
            for name, head, o in _heads_on_one_frame(outs, conf):
                line, payload = cpp.post_request(_int8(o), 640, 640, lb, conf=conf, iou=0.7, max_det=max_det,
                                                 head=head)
                req = f"{line} bytes={len(payload)}\n".encode() + payload
                r = subprocess.run([str(exe)], input=req, capture_output=True, check=False)
                reply = json.loads(r.stdout.splitlines()[0])
                rows.append((f"postprocess {name}, conf {conf}, max_det {max_det} ({reply['candidates']} "
                             f"candidates, {len(reply['poses'])} poses)",
                             callgrind(exe, req, "yolo11_pose::Postprocessor::run(*")))
    else:
        print(f"(postprocess skipped: {a.weights} not found)", file=sys.stderr)

    w = max(len(r[0]) for r in rows) + 2
    print(f"{'operation':<{w}} {'instructions':>14}")
    print("-" * (w + 15))
    for name, n in rows:
        print(f"{name:<{w}} {n:>14,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
