"""Device test logs: parse the pose test app's output and compare it with the host twin's expected poses.

The test app (test_apps/pose) prints one tagged line per fact, anywhere inside ESP-IDF's log decoration::

    POSE_CONFIG: {"target": "esp32p4", "input": [320, 320], "conf": 0.25, "iou": 0.7, "kpt_thr": 0.5, "max_det": 20}
    POSE_JSON: {"image": "bus", "cls": 0, "score": 0.91, "box": [x1, y1, x2, y2], "keypoints": [[x, y, conf], ...]}
    POSE_IMAGE: {"image": "bus", "width": 480, "height": 640, "count": 4, "preprocess_ms": ..., "model_ms": ...}
    POSE_MEM: {"internal_free": ..., "psram_free": ..., ...}
    POSE_MODEL_TEST: {"result": "pass" | "fail" | "skipped"}
    POSE_DONE: {"images": 2, "errors": 0}

An image's POSE_JSON lines come before its POSE_IMAGE line, whose ``count`` lets a lost line be detected.

The expected results ("golden") come from ``twin.Twin`` on the *same* raw RGB888 frames the firmware embeds
(``read_rgb`` reads the files test_apps/pose/tools/make_rgb.py writes), with the thresholds the firmware was built
with. ``compare`` returns the list of differences beyond the tolerances; an empty list is a pass.

Command line (used by the test app's CMake and by the pytest)::

    python -m yolo11_pose.evaluation.devicelog golden --info BUILD/pose_test_info.json --out BUILD/pose_golden.json
    python -m yolo11_pose.evaluation.devicelog compare --log device.log --golden BUILD/pose_golden.json
    python -m yolo11_pose.evaluation.devicelog shipped-golden --model models/esp32p4/yolo11n-pose-640-int8.espdl

A prebuilt model's golden is shipped next to it (``shipped-golden`` writes it) and used when the firmware embeds that
exact model with the same frame pixels and thresholds; otherwise the twin computes one.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo11_pose.util import UserError, write_json

GOLDEN_FORMAT = 1
TAGS = ("POSE_CONFIG", "POSE_JSON", "POSE_IMAGE", "POSE_MEM", "POSE_MODEL_TEST", "POSE_DONE", "POSE_ERROR")
# A tag anywhere in the line (after "I (1234) tag: " or colour codes), then a JSON object to the end of the line.
LINE_RE = re.compile(r"\b(POSE_[A-Z_]+): (\{.*\})")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

RGB_MAGIC = b"RGB8"
RGB_HEADER = struct.Struct("<4sIII")  # magic, width, height, row stride in bytes (= width * 3)


# ------------------------------------------------------------------------------------------------ frames
def read_rgb(path: str | Path) -> np.ndarray:
    """Read a raw frame written by test_apps/pose/tools/make_rgb.py: 16-byte header, then RGB888 rows."""
    data = Path(path).read_bytes()
    if len(data) < RGB_HEADER.size:
        raise UserError(f"{path}: too short for an RGB888 frame header; regenerate it with make_rgb.py")
    magic, w, h, stride = RGB_HEADER.unpack_from(data)
    if magic != RGB_MAGIC or w <= 0 or h <= 0 or stride != w * 3:
        raise UserError(f"{path}: not a make_rgb.py RGB888 frame (bad header); regenerate it with make_rgb.py")
    need = RGB_HEADER.size + stride * h
    if len(data) != need:
        raise UserError(f"{path}: {len(data)} bytes, a {w}x{h} frame needs {need}; regenerate it with make_rgb.py")
    return np.frombuffer(data, np.uint8, offset=RGB_HEADER.size).reshape(h, w, 3)


# ------------------------------------------------------------------------------------------------ parsing
@dataclass
class ImageRun:
    name: str
    poses: list[dict] = field(default_factory=list)
    summary: dict | None = None  # the POSE_IMAGE line; None when it never came


@dataclass
class DeviceLog:
    config: dict | None = None
    images: dict[str, ImageRun] = field(default_factory=dict)
    mem: list[dict] = field(default_factory=list)
    model_test: str | None = None
    done: dict | None = None
    errors: list[str] = field(default_factory=list)  # POSE_ERROR lines from the device
    malformed: list[str] = field(default_factory=list)  # tagged lines whose JSON did not parse
    restarts: int = 0  # POSE_CONFIG seen again: the board rebooted; only the last run is kept

    def timings(self) -> dict[str, dict]:
        keys = ("preprocess_ms", "model_ms", "postprocess_ms")
        return {n: {k: r.summary[k] for k in keys if k in r.summary} for n, r in self.images.items() if r.summary}


def parse_lines(lines) -> DeviceLog:
    log = DeviceLog()
    for raw in lines:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        line = ANSI_RE.sub("", raw).rstrip("\r\n")
        m = LINE_RE.search(line)
        if not m:
            continue
        tag, body = m.group(1), m.group(2)
        if tag not in TAGS:
            continue
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            log.malformed.append(line)
            continue
        if not isinstance(obj, dict):
            log.malformed.append(line)
            continue
        if tag == "POSE_CONFIG":
            if log.config is not None:
                restarts = log.restarts + 1
                log = DeviceLog(restarts=restarts)
            log.config = obj
        elif tag == "POSE_JSON":
            name = str(obj.get("image"))
            log.images.setdefault(name, ImageRun(name)).poses.append(obj)
        elif tag == "POSE_IMAGE":
            name = str(obj.get("image"))
            log.images.setdefault(name, ImageRun(name)).summary = obj
        elif tag == "POSE_MEM":
            log.mem.append(obj)
        elif tag == "POSE_MODEL_TEST":
            log.model_test = str(obj.get("result"))
        elif tag == "POSE_DONE":
            log.done = obj
        elif tag == "POSE_ERROR":
            log.errors.append(str(obj.get("message", body)))
    return log


def parse_log(text: str) -> DeviceLog:
    return parse_lines(text.splitlines())


def collect_from_dut(expect, timeout: float) -> list[str]:
    """Read tagged lines from a pytest-embedded DUT until POSE_DONE. ``expect`` is ``dut.expect``.

    One expect per line, so ``timeout`` bounds the wait for the *next* line (one model run), not the whole test.
    """
    pattern = re.compile(rb"(POSE_[A-Z_]+): ([^\r\n]*)")
    lines = []
    while True:
        m = expect(pattern, timeout=timeout)
        tag = m.group(1).decode()
        lines.append(f"{tag}: {m.group(2).decode('utf-8', 'replace')}")
        if tag == "POSE_DONE":
            return lines


# ------------------------------------------------------------------------------------------------ comparing
@dataclass(frozen=True)
class Tolerance:
    """How far the device may be from the twin. The two should agree bit for bit (same integer model outputs, same
    C++ postprocessor); the margins only absorb the printed decimals and last-ulp differences of the chip's libm.
    A real preprocessing or decoding bug moves boxes by more than 2 px or changes the pose count."""

    box_px: float = 2.0
    kpt_px: float = 2.0
    score: float = 0.02
    kpt_conf: float = 0.02
    config: float = 1e-6


def _box_err(a, b) -> float:
    return max(abs(float(x) - float(y)) for x, y in zip(a, b))


def _fmt_box(b) -> str:
    return "[" + ", ".join(f"{float(v):.1f}" for v in b) + "]"


def compare(log: DeviceLog, golden: dict, tol: Tolerance = Tolerance()) -> list[str]:
    """Differences between a parsed device log and a golden dict (see make_golden); [] means they agree."""
    problems: list[str] = []
    if log.malformed:
        problems += [f"malformed device line: {line[:120]}" for line in log.malformed]
    problems += [f"device reported an error: {e}" for e in log.errors]
    if log.config is None:
        problems.append("no POSE_CONFIG line: the app did not start (or its output was not captured)")
    else:
        for k, v in golden.get("config", {}).items():
            dv = log.config.get(k)
            if dv is None or abs(float(dv) - float(v)) > tol.config:
                problems.append(f"config {k}: device {dv}, golden {v}; the golden was made for other settings, "
                                "rebuild the app so both use the same sdkconfig")
        g_in = golden.get("model", {}).get("imgsz")
        if g_in is not None and list(log.config.get("input", [])) != [g_in, g_in]:
            problems.append(f"model input: device {log.config.get('input')}, golden {g_in}x{g_in}; the firmware "
                            "embeds another model than the golden was made from")
    if log.done is None:
        problems.append("no POSE_DONE line: the app stopped early (crash, reset or timeout)")
    if log.model_test == "fail":
        problems.append("dl::Model::test() failed: the chip's raw outputs differ from ESP-PPQ's test values")
    conf = float(golden.get("config", {}).get("conf", 0.25))
    for name, g in golden["images"].items():
        run = log.images.get(name)
        if run is None:
            problems.append(f"{name}: no output from the device for this image")
            continue
        if run.summary is None:
            problems.append(f"{name}: no POSE_IMAGE summary line (output cut short)")
        else:
            if run.summary.get("status", "ok") != "ok":
                problems.append(f"{name}: device status {run.summary.get('status')}")
            if (run.summary.get("width"), run.summary.get("height")) != (g["width"], g["height"]):
                problems.append(f"{name}: device frame {run.summary.get('width')}x{run.summary.get('height')}, "
                                f"golden {g['width']}x{g['height']}")
            if run.summary.get("count") != len(run.poses):
                problems.append(f"{name}: device announced {run.summary.get('count')} poses but printed "
                                f"{len(run.poses)} POSE_JSON lines (lines lost)")
        problems += _compare_poses(name, run.poses, g["poses"], conf, tol)
    extra = sorted(set(log.images) - set(golden["images"]))
    problems += [f"{n}: device printed an image the golden does not have" for n in extra]
    return problems


def _compare_poses(name: str, dev: list[dict], gold: list[dict], conf: float, tol: Tolerance) -> list[str]:
    problems = []
    free = list(range(len(dev)))
    unmatched_gold = []
    for gi, g in enumerate(gold):
        same_cls = [di for di in free if int(dev[di].get("cls", -1)) == int(g["cls"])]
        if not same_cls:
            unmatched_gold.append(gi)
            continue
        di = min(same_cls, key=lambda i: _box_err(dev[i]["box"], g["box"]))
        err = _box_err(dev[di]["box"], g["box"])
        if err > tol.box_px:
            unmatched_gold.append(gi)
            continue
        free.remove(di)
        d = dev[di]
        tag = f"{name} pose {gi} (score {g['score']:.3f}, box {_fmt_box(g['box'])})"
        if abs(float(d["score"]) - float(g["score"])) > tol.score:
            problems.append(f"{tag}: score {float(d['score']):.4f} vs {float(g['score']):.4f} (tolerance {tol.score})")
        dk, gk = d.get("keypoints", []), g["keypoints"]
        if len(dk) != len(gk):
            problems.append(f"{tag}: {len(dk)} keypoints vs {len(gk)}")
            continue
        for k, (a, b) in enumerate(zip(dk, gk)):
            dxy = max(abs(float(a[0]) - float(b[0])), abs(float(a[1]) - float(b[1])))
            if dxy > tol.kpt_px:
                problems.append(f"{tag}: keypoint {k} at ({float(a[0]):.1f}, {float(a[1]):.1f}) vs "
                                f"({float(b[0]):.1f}, {float(b[1]):.1f}) (tolerance {tol.kpt_px} px)")
            if abs(float(a[2]) - float(b[2])) > tol.kpt_conf:
                problems.append(f"{tag}: keypoint {k} confidence {float(a[2]):.3f} vs {float(b[2]):.3f}")

    # A pose whose score sits within the score tolerance of the threshold may legitimately be kept on one side only.
    def borderline(p) -> bool:
        return float(p["score"]) < conf + tol.score

    for gi in unmatched_gold:
        g = gold[gi]
        if not borderline(g):
            best = min((_box_err(dev[i]["box"], g["box"]) for i in free), default=math.inf)
            near = f"; nearest device box is {best:.1f} px off" if best < math.inf else ""
            problems.append(f"{name}: expected pose {gi} (score {g['score']:.3f}, box {_fmt_box(g['box'])}) "
                            f"missing on the device{near}")
    for di in free:
        if not borderline(dev[di]):
            d = dev[di]
            problems.append(f"{name}: unexpected device pose (score {float(d['score']):.3f}, box "
                            f"{_fmt_box(d['box'])})")
    return problems


# ------------------------------------------------------------------------------------------------ golden
def make_golden(model: str | Path, images: dict[str, np.ndarray], conf: float, iou: float, kpt_thr: float,
                max_det: int, target: str | None = None) -> dict:
    """Expected device output: the host twin of ``model`` (an .espdl file, or a `yolo11-pose build` folder) on each
    frame: the file run with ESP-DL's semantics (executor) and the component's C++ postprocessor."""
    from yolo11_pose.device.twin import Twin
    from yolo11_pose.util import sha256_file

    model = Path(model)
    twin = Twin(model, target=target)
    espdl = model / "model.espdl" if model.is_dir() else model
    out = {"format": GOLDEN_FORMAT,
           "model": {"dir": str(model), "imgsz": twin.imgsz, "target": twin.target, "bits": twin.bits,
                     "espdl_sha256": sha256_file(espdl), "engine": twin.engine},
           "config": {"conf": conf, "iou": iou, "kpt_thr": kpt_thr, "max_det": max_det},
           "images": {}}
    for name, rgb in images.items():
        poses = twin.predict(rgb, conf=conf, iou=iou, kpt_thr=kpt_thr, max_det=max_det)
        out["images"][name] = {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                               "poses": [p.to_dict() for p in poses]}
    return out


def load_info(path: str | Path) -> dict:
    """pose_test_info.json, written by the test app's CMake: frames, thresholds and model of one build."""
    p = Path(path)
    try:
        info = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p} not found; build the test app first (idf.py build / idf-build-apps build)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON ({e.msg}); rebuild the test app") from None
    for k in ("model_espdl", "images", "conf", "iou", "kpt_thr", "max_det"):
        if k not in info:
            raise UserError(f"{p} lacks '{k}'; rebuild the test app")
    return info


# ------------------------------------------------------------------------------------------------ shipped goldens
# The prebuilt models ship with their golden (models/<target>/<stem>.golden.json), because their build folders (the
# twin needs model.native, ~23 MB) are not shipped. It is valid only for the exact .espdl (espdl_sha256), frames
# (rgb_sha256: the committed frames, as make_rgb.py converts them) and thresholds it was made for.
REPO_ROOT = Path(__file__).resolve().parents[3]
MAKE_RGB = REPO_ROOT / "test_apps" / "pose" / "tools" / "make_rgb.py"
# What test_apps/pose/main/CMakeLists.txt embeds: these committed frames, through make_rgb.py --max-side 640.
# They are Ultralytics' pictures (APP_FRAME_SOURCES) downscaled (test_apps/pose/frames/README.md).
APP_FRAME_DIR = REPO_ROOT / "test_apps" / "pose" / "frames"
APP_FRAMES = {"bus": "bus.png", "zidane": "zidane.png"}
APP_FRAME_SOURCES = {"bus": "ultralytics/assets/bus.jpg", "zidane": "ultralytics/assets/zidane.jpg"}
APP_MAX_SIDE = 640
# Kconfig symbol and divisor (per mille -> fraction; the same value JSON gives for the info file's "250e-3").
KCONFIG_THRESHOLDS = {"conf": ("YOLO11_POSE_SCORE_THRESHOLD", 1000), "iou": ("YOLO11_POSE_NMS_THRESHOLD", 1000),
                      "kpt_thr": ("YOLO11_POSE_KPT_THRESHOLD", 1000), "max_det": ("YOLO11_POSE_MAX_DETECTIONS", 1)}


def kconfig_defaults(kconfig: str | Path = REPO_ROOT / "Kconfig") -> dict:
    """The component's default thresholds (conf, iou, kpt_thr, max_det), as the app's info file writes them."""
    text = Path(kconfig).read_text()
    out = {}
    for key, (sym, scale) in KCONFIG_THRESHOLDS.items():
        m = re.search(rf"^\s*config {sym}\b.*?^\s*default (\d+)", text, re.S | re.M)
        if not m:
            raise UserError(f"{kconfig}: no default for {sym}; check the component's Kconfig")
        out[key] = int(m.group(1)) if scale == 1 else int(m.group(1)) / scale
    return out


def _frame_sha(path: str | Path) -> str:
    from yolo11_pose.util import sha256_file

    return sha256_file(path)


def make_shipped_golden(espdl: str | Path) -> dict:
    """The golden of a shipped model: its twin (the .espdl run with ESP-DL's semantics; our files record their chip)
    on the frames the pose app embeds (made by make_rgb.py itself), with the Kconfig default thresholds."""
    import subprocess
    import tempfile

    espdl = Path(espdl)
    if not espdl.is_file():
        raise UserError(f"{espdl} does not exist; check the path")
    if not MAKE_RGB.is_file() or not APP_FRAME_DIR.is_dir():
        raise UserError(f"{MAKE_RGB} or {APP_FRAME_DIR} not found; run this from a source checkout of the component")
    cfg = kconfig_defaults()
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, str(MAKE_RGB), "--out-dir", tmp, "--header", f"{tmp}/test_images.h",
                            "--max-side", str(APP_MAX_SIDE), *(str(APP_FRAME_DIR / f) for f in APP_FRAMES.values())],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise UserError(f"make_rgb.py failed: {r.stderr.strip()}")
        paths = {n: Path(tmp) / f"{n}.rgb" for n in APP_FRAMES}
        golden = make_golden(espdl, {n: read_rgb(p) for n, p in paths.items()}, **cfg)
        frames = {n: {"source": APP_FRAME_SOURCES[n], "max_side": APP_MAX_SIDE,
                      "width": golden["images"][n]["width"], "height": golden["images"][n]["height"],
                      "rgb_sha256": _frame_sha(p)} for n, p in paths.items()}
    try:
        rel = str(espdl.resolve().relative_to(REPO_ROOT))
    except ValueError:
        rel = espdl.name
    golden["model"].pop("dir", None)  # the build folder is not shipped; name the model file instead
    golden["model"]["espdl"] = rel
    golden["frames"] = frames
    golden["made_with"] = {"frames": str(APP_FRAME_DIR.relative_to(REPO_ROOT)),
                           "tool": "python -m yolo11_pose.evaluation.devicelog shipped-golden"}
    return golden


def committed_golden(info: dict) -> tuple[dict | None, list[str]]:
    """A shipped golden (info["golden_candidates"]) valid for this build, and why each candidate was not."""
    espdl = Path(info["model_espdl"])
    if not espdl.is_file():
        return None, []
    from yolo11_pose.util import sha256_file

    want, why = sha256_file(espdl), []
    for c in info.get("golden_candidates", []):
        p = Path(c)
        try:
            g = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            why.append(f"{p} (missing or not JSON)")
            continue
        if g.get("format") != GOLDEN_FORMAT or g.get("model", {}).get("espdl_sha256") != want:
            why.append(f"{p} (made for another model)")
            continue
        cfg = g.get("config", {})
        if any(abs(float(cfg.get(k, math.nan)) - float(info[k])) > 1e-9 for k in ("conf", "iou", "kpt_thr", "max_det")):
            why.append(f"{p} (made for other thresholds)")
            continue
        frames = g.get("frames", {})
        if set(frames) != set(info["images"]) or any(
                not Path(f).is_file() or _frame_sha(f) != frames[n].get("rgb_sha256") for n, f in info["images"].items()):
            why.append(f"{p} (made for other frame pixels, e.g. replaced frames)")
            continue
        return g, why
    return None, why


def golden_from_info(info_path: str | Path) -> dict:
    """The shipped golden when one matches the embedded model, frames and thresholds; else the twin's."""
    info = load_info(info_path)
    shipped, why = committed_golden(info)
    if shipped is not None:
        return shipped
    frames = {name: read_rgb(path) for name, path in info["images"].items()}
    espdl = Path(info["model_espdl"])
    if not espdl.is_file():
        raise UserError(f"{espdl} (the model the firmware embeds) does not exist; build the test app first")
    # The twin needs nothing but the embedded file: the executor runs it as ESP-DL does.
    return make_golden(espdl, frames, float(info["conf"]), float(info["iou"]), float(info["kpt_thr"]),
                       int(info["max_det"]), target=info.get("target"))


def ensure_golden(build_dir: str | Path) -> dict:
    """The golden of a test app build folder: pose_golden.json, (re)made from pose_test_info.json unless it is for
    the same embedded model and newer than the frames and the info file."""
    from yolo11_pose.util import sha256_file

    b = Path(build_dir)
    gpath, ipath = b / "pose_golden.json", b / "pose_test_info.json"
    info = load_info(ipath)
    if gpath.is_file():
        try:
            old = json.loads(gpath.read_text())
        except json.JSONDecodeError:
            old = {}
        inputs = [ipath] + [Path(f) for f in info["images"].values()]
        fresh = all(f.is_file() and f.stat().st_mtime <= gpath.stat().st_mtime for f in inputs)
        espdl = Path(info["model_espdl"])
        same_model = espdl.is_file() and old.get("model", {}).get("espdl_sha256") == sha256_file(espdl)
        if fresh and same_model and old.get("format") == GOLDEN_FORMAT:
            return old
    golden = golden_from_info(ipath)
    write_json(gpath, golden)
    return golden


# ------------------------------------------------------------------------------------------------ memory
# The board's PSRAM for the loaded model may differ from memory.plan() by this much (relative) plus MEMORY_SLACK:
# ESP-DL's own objects of 16 KB and more also land in PSRAM (CONFIG_SPIRAM_MALLOC_ALWAYSINTERNAL), and the heap adds
# a header per allocation.
MEMORY_TOLERANCE = 0.05
MEMORY_SLACK = 256 * 1024


def memory_figures(log: DeviceLog) -> dict[str, int]:
    """PSRAM and internal RAM the app's model took (POSE_MEM "start" -> "model_loaded"), and the peak in between
    (the minimum-free watermark: dl::Model::test() runs a second model before YOLO11Pose loads its own)."""
    stages = {m.get("stage"): m for m in log.mem}
    if "start" not in stages or "model_loaded" not in stages:
        raise UserError("the log has no POSE_MEM lines for 'start' and 'model_loaded'; capture the whole boot")
    a, b = stages["start"], stages["model_loaded"]
    return {"psram": int(a["psram_free"]) - int(b["psram_free"]),
            "internal": int(a["internal_free"]) - int(b["internal_free"]),
            "psram_peak": int(a["psram_free"]) - int(b["psram_min_free"])}


def compare_memory(log: DeviceLog, plan, tolerance: float = MEMORY_TOLERANCE,
                   slack: int = MEMORY_SLACK) -> list[str]:
    """The board's PSRAM for the loaded model against the prediction (memory.MemoryPlan); [] when they agree."""
    got = memory_figures(log)
    want = plan.psram_bytes
    problems = []
    if abs(got["psram"] - want) > tolerance * want + slack:
        problems.append(f"model PSRAM: the board used {got['psram']:,} B, memory.plan() predicts {want:,} B "
                        f"(activations {plan.activation_bytes:,} + parameters {plan.parameter_bytes:,})")
    if got["psram_peak"] < want:
        problems.append(f"PSRAM peak {got['psram_peak']:,} B is below the steady state predicted, {want:,} B")
    return problems


# ------------------------------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yolo11_pose.evaluation.devicelog", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("golden", help="expected poses for the test app's frames (host twin)")
    p.add_argument("--info", required=True, help="pose_test_info.json from the test app's build folder")
    p.add_argument("--out", required=True, help="where to write the golden JSON")
    p = sub.add_parser("shipped-golden", help="golden of a prebuilt model, written next to it (.golden.json)")
    p.add_argument("--model", required=True, help="the shipped .espdl (models/<target>/<stem>.espdl)")
    p.add_argument("--out", help="default: the model's path with .golden.json")
    p = sub.add_parser("compare", help="check a captured device log against a golden JSON")
    p.add_argument("--log", required=True, help="serial output of the pose test app")
    p.add_argument("--golden", required=True)
    p.add_argument("--box-px", type=float, default=Tolerance.box_px)
    p.add_argument("--score", type=float, default=Tolerance.score)
    p = sub.add_parser("memory", help="check a captured device log's memory figures against `inspect --memory`")
    p.add_argument("--log", required=True, help="serial output of the pose test app")
    p.add_argument("--model", required=True, help="the .espdl the firmware carries")
    p.add_argument("--target", choices=["esp32p4", "esp32s3"], help="default: the one the log names")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "memory":
            from yolo11_pose.espdl.memory import plan

            try:
                log = parse_log(Path(a.log).read_text(errors="replace"))
            except FileNotFoundError:
                raise UserError(f"{a.log} not found; check the path") from None
            target = a.target or (log.config or {}).get("target")
            p = plan(a.model, target)
            got = memory_figures(log)
            print(f"board: model PSRAM {got['psram']:,} B (peak {got['psram_peak']:,} B), internal RAM "
                  f"{got['internal']:,} B; predicted PSRAM {p.psram_bytes:,} B")
            problems = compare_memory(log, p)
            for pr in problems:
                print(pr)
            return 0 if not problems else 1
        if a.cmd == "golden":
            g = golden_from_info(a.info)
            write_json(a.out, g)
            n = sum(len(v["poses"]) for v in g["images"].values())
            print(f"wrote {a.out}: {n} pose(s) over {len(g['images'])} image(s)")
            return 0
        if a.cmd == "shipped-golden":
            g = make_shipped_golden(a.model)
            out = a.out or str(Path(a.model).with_suffix(".golden.json"))
            write_json(out, g)
            print(f"wrote {out}: " + ", ".join(f"{n} {len(v['poses'])} pose(s)" for n, v in g["images"].items()))
            return 0
        try:
            text = Path(a.log).read_text(errors="replace")
            golden = json.loads(Path(a.golden).read_text())
        except FileNotFoundError as e:
            raise UserError(f"{e.filename} not found; check the path") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{a.golden} is not valid JSON ({e.msg}); regenerate it with `golden`") from None
        problems = compare(parse_log(text), golden, Tolerance(box_px=a.box_px, score=a.score))
        for pr in problems:
            print(pr)
        print("device output matches the golden" if not problems else f"{len(problems)} difference(s)")
        return 0 if not problems else 1
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
