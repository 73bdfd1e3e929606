"""Rerun a newcomer's bad inputs (issue 18) and count tracebacks and silent wrong results.

Every try is a command line a new user could type with a mistake in it: a damaged or missing file, a folder where a
file belongs, a picture the tools cannot decode, a chip that does not match, a second build into a busy folder. Each
must end with exit code 2 and one line `error: ...` on stderr, before any slow work, leaving no output behind.
A *silent wrong result* is a try that exits 0 although it should have refused (a damaged model, a mismatched chip),
or, for the 16-bit picture, poses other than the 8-bit picture's. `tests/test_newcomer.py` runs the same tries
in-process; this script runs each as a subprocess, as a user would:

    python benchmarks/newcomer_tries.py              # every try, one `yolo11-pose` process each
    python benchmarks/newcomer_tries.py --in-process # faster: main() in this process
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLO11_POSE_SHARED", REPO.parent / "shared"))


@dataclass
class Try:
    id: str
    argv: list[str]
    needle: str = ""  # a word the error line must hold
    setup: object = None  # a context manager factory run around the try (e.g. holding the --out lock)


def _png(path: Path, arr, color_type: int, depth: int = 8, size=None) -> Path:
    import numpy as np

    a = np.asarray(arr)
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].astype(">u2" if depth == 16 else "u1").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    w, h = size or (w, h)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def prepare(tmp: Path) -> dict[str, Path]:
    """The files the tries use, made in ``tmp`` (nothing written anywhere else)."""
    import numpy as np
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    f = {}
    imgs = tmp / "imgs"
    imgs.mkdir(exist_ok=True)
    for i in range(8):
        Image.new("RGB", (64 + 8 * i, 48), (30 * i, 90, 160)).save(imgs / f"{i}.jpg")
    f["jpg"] = imgs / "0.jpg"
    f["imgs"] = imgs
    f["bomb"] = _png(tmp / "bomb.png", np.zeros((2, 2, 3), np.uint8), 2, size=(50000, 50000))
    f["huge"] = _png(tmp / "huge.png", np.zeros((2, 2), np.uint8), 0, size=(12000, 12000))
    f["trunc_jpg"] = tmp / "cut.jpg"
    f["trunc_jpg"].write_bytes(f["jpg"].read_bytes()[:300])
    f["text_jpg"] = tmp / "notes.jpg"
    f["text_jpg"].write_text("not a picture")
    f["empty_png"] = tmp / "empty.png"
    f["empty_png"].write_bytes(b"")
    f["float_tif"] = tmp / "float.tif"
    Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)).save(f["float_tif"])
    f["dir"] = tmp / "a-folder"
    f["dir"].mkdir(exist_ok=True)
    f["file"] = tmp / "a-file.txt"
    f["file"].write_text("x")
    f["empty_pt"] = tmp / "empty.pt"
    f["empty_pt"].write_bytes(b"")
    f["trunc_pt"] = tmp / "cut.pt"
    weights = SHARED / "models" / "yolo11n-pose.pt"
    f["trunc_pt"].write_bytes(weights.read_bytes()[:200_000] if weights.is_file() else b"PK\x03\x04" + b"\0" * 999)
    f["text_pt"] = tmp / "text.pt"
    f["text_pt"].write_text("hello")
    f["empty_onnx"] = tmp / "empty.onnx"
    f["empty_onnx"].write_bytes(b"")
    f["junk_onnx"] = tmp / "junk.onnx"
    f["junk_onnx"].write_bytes(b"\x00\xff" * 100)
    f["junk_espdl"] = tmp / "junk.espdl"
    f["junk_espdl"].write_bytes(b"PK\x03\x04 not a model")
    f["empty_espdl"] = tmp / "empty.espdl"
    f["empty_espdl"].write_bytes(b"")

    # Damaged copies of a shipped model: 4,000 bytes flipped mid-file, beside its manifest / a .sha256 / alone.
    src = REPO / "models" / "esp32p4" / "yolo11n-pose-416-int8.espdl"
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4000] = bytes(b ^ 0x5A for b in data[mid:mid + 4000])
    dm = tmp / "manifest-case"
    dm.mkdir(exist_ok=True)
    f["damaged_manifest"] = dm / src.name
    f["damaged_manifest"].write_bytes(bytes(data))
    shutil.copy(src.with_name(src.stem + ".manifest.json"), dm / (src.stem + ".manifest.json"))
    db = tmp / "build-case"
    db.mkdir(exist_ok=True)
    (db / "model.espdl").write_bytes(bytes(data))
    shutil.copy(src.with_name(src.stem + ".manifest.json"), db / "manifest.json")
    f["damaged_build"] = db
    ds = tmp / "sidecar-case"
    ds.mkdir(exist_ok=True)
    f["damaged_sidecar"] = ds / "m.espdl"
    f["damaged_sidecar"].write_bytes(bytes(data))
    import hashlib

    (ds / "m.espdl.sha256").write_text(f"{hashlib.sha256(src.read_bytes()).hexdigest()}  m.espdl\n")
    f["bad_sidecar"] = ds / "g.espdl"
    shutil.copy(src, f["bad_sidecar"])
    (ds / "g.espdl.sha256").write_text("not a digest\n")
    f["trunc_espdl"] = tmp / "cut.espdl"
    f["trunc_espdl"].write_bytes(src.read_bytes()[:100_000])
    f["s3_416"] = REPO / "models" / "esp32s3" / "yolo11n-pose-416-int8.espdl"
    f["p4_416"] = src

    # COCO annotation mistakes
    f["ann_png"] = f["bomb"]
    f["ann_bin"] = tmp / "ann.json"
    f["ann_bin"].write_bytes(b"\xff\xfe\x00garbage\x80")
    f["ann_noimages"] = tmp / "noimages.json"
    f["ann_noimages"].write_text(json.dumps({"annotations": []}))
    f["ann_missing_img"] = tmp / "missing-img.json"
    f["ann_missing_img"].write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.jpg", "width": 8,
                                                            "height": 8}], "annotations": []}))
    calib_list = tmp / "calib.txt"
    calib_list.write_text("0.jpg\ngone.jpg\n")
    shutil.copy(f["jpg"], tmp / "0.jpg")
    f["calib_list"] = calib_list
    junk = tmp / "junk-calib"
    junk.mkdir(exist_ok=True)
    for i in range(8):
        shutil.copy(f["jpg"], junk / f"{i}.jpg")
    (junk / "3.jpg").write_bytes(b"\xff\xd8 truncated")
    f["junk_calib"] = junk
    bombs = tmp / "bomb-calib"
    bombs.mkdir(exist_ok=True)
    for i in range(8):
        shutil.copy(f["jpg"], bombs / f"{i}.jpg")
    shutil.copy(f["bomb"], bombs / "5.png")
    f["bomb_calib"] = bombs
    f["out"] = tmp / "out"  # every output goes here (or under runs/): must stay absent
    f["runs"] = tmp / "runs"
    f["busy"] = tmp / "busy"
    return f


def tries(f: dict[str, Path]) -> list[Try]:
    s = {k: str(v) for k, v in f.items()}
    out, img = s["out"], s["jpg"]
    pred = ["predict", "--model", s["p4_416"], "--image"]
    ev = ["eval", "--model", s["p4_416"], "--images", s["imgs"], "--annotations"]
    bld = ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4", "--num-calib", "8",
           "--out", out, "--calib"]
    qnt = ["quantize", "--target", "esp32p4", "--calib", s["imgs"], "--num-calib", "8", "--out", out, "--onnx"]

    @contextlib.contextmanager
    def busy():
        from yolo11_pose.util import out_lock

        with out_lock(f["busy"]):
            yield
        shutil.rmtree(f["busy"], ignore_errors=True)

    t = [
        # predict: pictures
        Try("predict-bomb-png", pred + [s["bomb"]], "2500 MP"),
        Try("predict-12000x12000", pred + [s["huge"]], "12000x12000"),
        Try("predict-truncated-jpg", pred + [s["trunc_jpg"]], "not a readable image"),
        Try("predict-text-as-jpg", pred + [s["text_jpg"]], "not a readable image"),
        Try("predict-empty-png", pred + [s["empty_png"]], "not a readable image"),
        Try("predict-float-tiff", pred + [s["float_tif"]], "no defined white"),
        Try("predict-folder-as-image", pred + [s["dir"]], "is a folder"),
        Try("predict-missing-image", pred + [str(f["dir"] / "gone.jpg")], "not found"),
        Try("predict-second-image-bad", pred + [img, s["bomb"], "--save-dir", s["runs"]], "2500 MP"),
        # predict: models
        Try("predict-missing-model", ["predict", "--model", str(f["dir"] / "m.espdl"), "--image", img], "not found"),
        Try("predict-missing-pt-path", ["predict", "--model", str(f["dir"] / "best.pt"), "--image", img], "not found"),
        Try("predict-folder-without-model", ["predict", "--model", s["dir"], "--image", img], "without model.espdl"),
        Try("predict-h5-model", ["predict", "--model", str(f["file"].with_suffix(".h5")), "--image", img], ".pt"),
        Try("predict-damaged-espdl-manifest", pred + [img], ""),  # replaced below
        Try("predict-damaged-build-folder", ["predict", "--model", s["damaged_build"], "--image", img], "corrupt"),
        Try("predict-damaged-espdl-sidecar", ["predict", "--model", s["damaged_sidecar"], "--image", img],
            "m.espdl.sha256"),
        Try("predict-truncated-espdl", ["predict", "--model", s["trunc_espdl"], "--image", img], "truncated"),
        Try("predict-junk-espdl", ["predict", "--model", s["junk_espdl"], "--image", img], "espdl"),
        Try("predict-empty-espdl", ["predict", "--model", s["empty_espdl"], "--image", img], "espdl"),
        Try("predict-empty-onnx", ["predict", "--model", s["empty_onnx"], "--image", img], "no ONNX graph"),
        Try("predict-junk-onnx", ["predict", "--model", s["junk_onnx"], "--image", img], "ONNX"),
        Try("predict-truncated-pt", ["predict", "--model", s["trunc_pt"], "--image", img], "cannot load weights"),
        Try("eval-against-truncated-pt", ["eval", "--model", s["p4_416"], "--images", s["imgs"], "--against-float",
                                          s["trunc_pt"]], "cannot load weights"),
        Try("predict-target-mismatch", ["predict", "--model", s["s3_416"], "--target", "esp32p4", "--image", img],
            "esp32s3"),
        Try("predict-imgsz-33", ["predict", "--model", "yolo11n-pose.pt", "--imgsz", "33", "--image", img], "33"),
        Try("predict-imgsz-100000", ["predict", "--model", "yolo11n-pose.pt", "--imgsz", "100000", "--image", img],
            "100000"),
        Try("predict-imgsz-for-espdl", pred + [img, "--imgsz", "640"], "drop --imgsz"),
        Try("predict-conf-2", pred + [img, "--conf", "2"], "--conf"),
        Try("predict-iou-neg", pred + [img, "--iou", "-1"], "--iou"),
        Try("predict-max-det-0", pred + [img, "--max-det", "0"], "--max-det"),
        Try("predict-save-dir-file", pred + [img, "--save-dir", s["file"]], "is a file"),
        Try("predict-device-tpu", pred + [img, "--device", "tpu"], "--device"),
        Try("predict-engine-ppq-bare-file", pred + [img, "--engine", "ppq"], "model.native"),
        Try("predict-no-image", ["predict", "--model", s["p4_416"]], "--image"),
        Try("predict-unknown-flag", pred + [img, "--colour"], "unrecognized"),
        # inspect
        Try("inspect-damaged-manifest", ["inspect", s["damaged_manifest"]], "manifest"),
        Try("inspect-damaged-build", ["inspect", str(f["damaged_build"] / "model.espdl")], "manifest.json"),
        Try("inspect-damaged-sidecar", ["inspect", s["damaged_sidecar"]], ".sha256"),
        Try("inspect-garbage-sidecar", ["inspect", s["bad_sidecar"]], "no SHA-256"),
        Try("inspect-missing", ["inspect", str(f["dir"] / "x.espdl")], "does not exist"),
        Try("inspect-folder", ["inspect", s["dir"]], "not a file"),
        Try("inspect-checkpoint", ["inspect", s["trunc_pt"]], "not an .espdl"),
        Try("inspect-truncated", ["inspect", s["trunc_espdl"]], "truncated"),
        Try("inspect-empty", ["inspect", s["empty_espdl"]], "it is empty"),
        Try("inspect-png", ["inspect", s["bomb"]], "not an .espdl"),
        Try("inspect-no-file", ["inspect"], "file"),
        # eval
        Try("eval-annotations-png", ev + [s["ann_png"]], "not a COCO keypoints json"),
        Try("eval-annotations-binary", ev + [s["ann_bin"]], "not a COCO keypoints json"),
        Try("eval-annotations-no-images", ev + [s["ann_noimages"]], "not a COCO keypoints json"),
        Try("eval-annotations-missing", ev + [str(f["dir"] / "a.json")], "not found"),
        Try("eval-annotations-folder", ev + [s["dir"]], "is a folder"),
        Try("eval-listed-image-missing", ev + [s["ann_missing_img"]], "gone.jpg"),
        Try("eval-images-file", ["eval", "--model", s["p4_416"], "--images", img, "--annotations", s["ann_noimages"]],
            "is a file"),
        Try("eval-images-missing", ["eval", "--model", s["p4_416"], "--images", str(f["dir"] / "nope"),
                                    "--annotations", s["ann_missing_img"]], "not found"),
        Try("eval-bad-chip-suffix", ["eval", "--model", s["p4_416"] + "@esp32", "--images", s["imgs"],
                                     "--annotations", s["ann_missing_img"]], "'esp32'"),
        Try("eval-missing-model", ["eval", "--model", str(f["dir"] / "m.espdl"), "--images", s["imgs"],
                                   "--annotations", s["ann_missing_img"]], "not found"),
        Try("eval-damaged-model", ["eval", "--model", s["damaged_manifest"], "--images", s["imgs"],
                                   "--annotations", s["ann_missing_img"]], "corrupt"),
        Try("eval-target-mismatch", ["eval", "--model", s["s3_416"] + "@esp32p4", "--images", s["imgs"],
                                     "--annotations", s["ann_missing_img"]], "esp32s3"),
        Try("eval-imgsz-33", ev + [s["ann_missing_img"], "--imgsz", "33"], "33"),
        Try("eval-max-images-0", ev + [s["ann_missing_img"], "--max-images", "0"], "--max-images"),
        Try("eval-report-file", ev + [s["ann_missing_img"], "--report", s["file"]], "is a file"),
        Try("eval-no-labels", ["eval", "--model", s["p4_416"], "--images", s["imgs"]], "--annotations"),
        Try("eval-against-missing", ["eval", "--model", s["p4_416"], "--images", s["imgs"], "--against-float",
                                     str(f["dir"] / "best.pt")], "not found"),
        Try("eval-against-float-not-float", ["eval", "--model", s["p4_416"], "--images", s["bomb_calib"],
                                              "--against-float", s["p4_416"]], "float model"),
        # export
        Try("export-weights-folder", ["export", "--weights", s["dir"], "--out", out], "is a folder"),
        Try("export-weights-missing", ["export", "--weights", str(f["dir"] / "w.pt"), "--out", out], "not found"),
        Try("export-weights-bare-unknown", ["export", "--weights", "best.pt", "--out", out], "not found"),
        Try("export-weights-truncated", ["export", "--weights", s["trunc_pt"], "--out", out], "cannot load weights"),
        Try("export-weights-empty", ["export", "--weights", s["empty_pt"], "--out", out], "empty"),
        Try("export-weights-text", ["export", "--weights", s["text_pt"], "--out", out], "cannot load weights"),
        Try("export-weights-h5", ["export", "--weights", str(f["dir"] / "w.h5"), "--out", out], ".pt"),
        Try("export-imgsz-100000", ["export", "--weights", "yolo11n-pose.yaml", "--imgsz", "100000", "--out", out],
            "100000"),
        Try("export-imgsz-33", ["export", "--weights", "yolo11n-pose.yaml", "--imgsz", "33", "--out", out], "33"),
        Try("export-out-is-file", ["export", "--weights", "yolo11n-pose.yaml", "--out", s["file"]], "is a file"),
        Try("export-branch-bogus", ["export", "--weights", "yolo11n-pose.yaml", "--branch", "x", "--out", out],
            "--branch"),
        # quantize
        Try("quantize-onnx-missing", qnt + [str(f["dir"] / "m.onnx")], "not found"),
        Try("quantize-onnx-folder", qnt + [s["dir"]], "is a folder"),
        Try("quantize-onnx-empty", qnt + [s["empty_onnx"]], "no ONNX graph"),
        Try("quantize-onnx-junk", qnt + [s["junk_onnx"]], "not an ONNX model"),
        Try("quantize-onnx-checkpoint", qnt + [s["trunc_pt"]], "PyTorch checkpoint"),
        Try("quantize-target-esp32", ["quantize", "--onnx", s["empty_onnx"], "--target", "esp32", "--calib",
                                      s["imgs"], "--out", out], "esp32"),
        # build / qat
        Try("build-weights-folder", ["build", "--weights", s["dir"], "--imgsz", "96", "--target", "esp32p4",
                                     "--calib", s["imgs"], "--num-calib", "8", "--out", out], "is a folder"),
        Try("build-weights-missing", ["build", "--weights", str(f["dir"] / "w.pt"), "--target", "esp32p4",
                                      "--calib", s["imgs"], "--num-calib", "8", "--out", out], "not found"),
        Try("build-weights-truncated", ["build", "--weights", s["trunc_pt"], "--target", "esp32p4",
                                        "--calib", s["imgs"], "--num-calib", "8", "--out", out], "cannot load"),
        Try("build-imgsz-100000", ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "100000", "--target",
                                   "esp32p4", "--calib", s["imgs"], "--out", out], "100000"),
        Try("build-calib-unreadable", bld + [s["junk_calib"]], "3.jpg"),
        Try("build-calib-bomb", bld + [s["bomb_calib"]], "2500 MP"),
        Try("build-calib-missing", bld + [str(f["dir"] / "nope")], "does not exist"),
        Try("build-calib-single-image", bld + [img], "single image"),
        Try("build-calib-list-gone", bld + [s["calib_list"]], "gone.jpg"),
        Try("build-calib-too-few", ["build", "--weights", "yolo11n-pose.yaml", "--target", "esp32p4", "--num-calib",
                                    "2", "--out", out, "--calib", s["imgs"]], "too few"),
        Try("build-out-is-file", ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4",
                                  "--calib", s["imgs"], "--num-calib", "8", "--out", s["file"]], "is a file"),
        Try("build-out-busy", ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4",
                               "--calib", s["imgs"], "--num-calib", "8", "--out", s["busy"]], "another", busy),
        Try("build-device-tpu", bld + [s["imgs"], "--device", "tpu"], "--device"),
        Try("qat-epochs-negative", ["qat", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4",
                                    "--calib", s["imgs"], "--num-calib", "8", "--out", out, "--epochs", "-1"],
            "--epochs"),
        Try("qat-calib-unreadable", ["qat", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4",
                                     "--calib", s["junk_calib"], "--num-calib", "8", "--out", out], "3.jpg"),
        # the command line itself
        Try("no-command", [], "required"),
        Try("unknown-command", ["train"], "invalid choice"),
    ]
    for i, x in enumerate(t):
        if x.id == "predict-damaged-espdl-manifest":
            t[i] = Try(x.id, ["predict", "--model", s["damaged_manifest"], "--image", img], "manifest.json")
    return t


def run_in_process(argv: list[str]) -> tuple[int, str, str]:
    """main() in this process; an escaping exception counts as a traceback (printed to the captured stderr)."""
    import warnings

    from yolo11_pose.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda m, c, *a, **k: err.write(f"{c.__name__}: {m}\n")
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001
            traceback.print_exc(file=err)
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", *argv], capture_output=True, text=True, env=env,
                       timeout=600, check=False)
    return r.returncode, r.stdout, r.stderr


def _files(f: dict[str, Path]) -> set[str]:
    out = set()
    for k in ("out", "runs", "busy"):
        if f[k].exists():
            out |= {str(p) for p in f[k].rglob("*")} | {str(f[k])}
    out |= {str(p) for p in f["dir"].rglob("*")}
    return out


def judge(t: Try, rc: int, stdout: str, stderr: str, before: set[str], after: set[str]) -> list[str]:
    """What is wrong with a try's outcome: [] when it refused properly."""
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()
             and "it/s]" not in ln and "img/s]" not in ln and not ln.startswith(("W1", "WARNING"))]
    problems = []
    if "Traceback (most recent call last)" in stderr:
        problems.append("traceback")
    if rc == 0:
        problems.append("silent: exit 0")
    elif rc != 2:
        problems.append(f"exit {rc}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines")
    elif t.needle and t.needle not in lines[0]:
        problems.append(f"message lacks {t.needle!r}")
    if "Warning" in stderr:
        problems.append("raw warning")
    if after - before:
        problems.append(f"left behind {sorted(after - before)[:2]}")
    return problems


def run_all(tmp: Path, in_process: bool = True, only: str | None = None, log=print) -> dict:
    f = prepare(tmp)
    results = []
    run = run_in_process if in_process else run_subprocess
    for t in tries(f):
        if only and only not in t.id:
            continue
        before = _files(f)
        t0 = time.time()
        with (t.setup() if t.setup else contextlib.nullcontext()):
            rc, out, err = run(t.argv)
        after = _files(f)
        problems = judge(t, rc, out, err, before, after)
        results.append({"id": t.id, "rc": rc, "seconds": round(time.time() - t0, 1), "problems": problems,
                        "stderr": err.strip().splitlines()[-1] if err.strip() else ""})
        log(f"{t.id:<34} rc {rc} {time.time() - t0:5.1f} s  {'; '.join(problems) or 'ok'}")
    return {"tries": results,
            "tracebacks": sum("traceback" in r["problems"] for r in results),
            "silent_wrong": sum(any(p.startswith("silent") for p in r["problems"]) for r in results),
            "bad": sum(bool(r["problems"]) for r in results)}


def sixteen_bit_check(tmp: Path, log=print) -> bool:
    """The newcomer's first silent wrong result: a 16-bit grey PNG must give the 8-bit grey picture's poses."""
    import numpy as np
    from PIL import Image

    bus = SHARED / "data" / "samples" / "esp-dl-bus.jpg"
    grey = np.asarray(Image.open(bus).convert("L"))
    f8 = tmp / "bus8.png"
    Image.fromarray(grey).save(f8)
    f16 = _png(tmp / "bus16.png", grey.astype(np.uint16) * 257, 0, depth=16)
    model = str(REPO / "models" / "esp32p4" / "yolo11n-pose-416-int8.espdl")
    poses = {}
    for f in (f8, f16):
        rc, out, err = run_subprocess(["predict", "--model", model, "--image", str(f), "--json"])
        poses[f.name] = [{k: v for k, v in json.loads(ln).items() if k != "image"} for ln in out.splitlines()
                         if ln.startswith("{")]
    ok = len(poses["bus8.png"]) >= 1 and poses["bus8.png"] == poses["bus16.png"]
    log(f"16-bit grey PNG: {len(poses['bus16.png'])} poses, 8-bit: {len(poses['bus8.png'])} -> "
        f"{'same' if ok else 'DIFFERENT (silent wrong result)'}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-process", action="store_true", help="call main() here instead of one process per try")
    ap.add_argument("--only", default=None, help="run only the tries whose id contains this")
    ap.add_argument("--work", default="/tmp/yolo11_pose_newcomer", help="scratch folder (emptied first)")
    a = ap.parse_args(argv)
    tmp = Path(a.work)
    shutil.rmtree(tmp, ignore_errors=True)
    if not a.in_process:
        sys.path.insert(0, str(REPO / "tools"))
    r = run_all(tmp, in_process=a.in_process, only=a.only)
    same = True if a.only else sixteen_bit_check(tmp)
    silent = r["silent_wrong"] + (0 if same else 1)
    print(f"\n{len(r['tries'])} bad inputs (+1 16-bit picture): {r['tracebacks']} tracebacks, {silent} silent wrong "
          f"results, {r['bad']} not a clean one-line refusal")
    return 0 if not r["bad"] and same else 1


if __name__ == "__main__":
    sys.exit(main())
