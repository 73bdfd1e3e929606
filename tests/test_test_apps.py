"""What CI can check of the ESP-IDF test apps without ESP-IDF or a board.

- pytest collects the board tests under test_apps/ with their target markers, and skips them without --target;
- idf-build-apps lists each app for the right targets and configurations (against tests/idf_stub as IDF_PATH);
- the core_unity test cases pass against the core, compiled with the host g++ and a Unity stand-in;
- the device-log parsing and golden comparison accept a good log and reject broken ones (tests/data/device_logs/);
- make_rgb.py writes the frames the firmware embeds, and golden generation runs the host twin on a real build.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from yolo11_pose.evaluation import devicelog
from yolo11_pose.util import UserError

from .conftest import ultralytics_asset

REPO = Path(__file__).resolve().parents[1]
LOGS = Path(__file__).parent / "data" / "device_logs"
MAKE_RGB = REPO / "test_apps" / "pose" / "tools" / "make_rgb.py"
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO, env=ENV,
                          check=False, capture_output=True, text=True, timeout=300)


def _collected(*args: str) -> set[str]:
    r = _pytest("test_apps", "--collect-only", "-q", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return {line.split("::", 1)[1] for line in r.stdout.splitlines() if "::" in line}


# ------------------------------------------------------------------------------------------------ collection
ALL_TESTS = {"test_core_unity", "test_core_unity_linux", "test_core_unity_qemu",
             "test_pose_matches_twin[default]", "test_pose_matches_twin[regenerate]"}


def test_board_tests_are_collected_with_markers():
    assert _collected() == ALL_TESTS
    # Markers, seen through -m selections (pytest.ini runs with --strict-markers, so unknown ones would error).
    assert _collected("-m", "esp32p4") == {"test_core_unity", "test_pose_matches_twin[default]",
                                           "test_pose_matches_twin[regenerate]"}
    assert _collected("-m", "esp32s3") == {"test_core_unity", "test_core_unity_qemu",
                                           "test_pose_matches_twin[default]", "test_pose_matches_twin[regenerate]"}
    assert _collected("-m", "linux") == {"test_core_unity_linux"}
    assert _collected("-m", "qemu") == {"test_core_unity_qemu"}
    assert _collected("-m", "generic") == {"test_core_unity", "test_pose_matches_twin[default]",
                                           "test_pose_matches_twin[regenerate]"}


def test_target_option_selects_the_target_and_service():
    assert _collected("--target", "linux") == {"test_core_unity_linux"}
    assert _collected("--target", "esp32p4") == {"test_core_unity", "test_pose_matches_twin[default]",
                                                 "test_pose_matches_twin[regenerate]"}
    assert _collected("--target", "esp32s3", "--embedded-services", "idf,qemu") == {"test_core_unity_qemu"}


def test_without_a_board_everything_is_skipped_cleanly():
    r = _pytest("test_apps", "-q", "-rs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\b5 skipped\b", r.stdout), r.stdout
    assert "needs a board" in r.stdout
    assert "passed" not in r.stdout and "error" not in r.stdout.lower()


# ------------------------------------------------------------------------------------------------ idf-build-apps
def test_idf_build_apps_lists_apps_for_their_targets(tmp_path):
    pytest.importorskip("idf_build_apps")
    out = tmp_path / "apps.json"
    env = {**ENV, "IDF_PATH": str(REPO / "tests" / "idf_stub")}
    r = subprocess.run([sys.executable, "-m", "idf_build_apps", "find", "--output", str(out)], cwd=REPO, env=env,
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    apps = json.loads(out.read_text())
    found = {(Path(a["app_dir"]).name, a["target"], a["config_name"], a["build_dir"]) for a in apps}

    def row(app, target, config):
        return (app, target, config, f"build_{target}_{config}")

    assert found == {row("pose", t, c) for t in ("esp32p4", "esp32s3") for c in ("default", "regenerate")} | \
        {row("core_unity", t, "default") for t in ("esp32p4", "esp32s3", "linux")} | \
        {row("get_started", t, "default") for t in ("esp32p4", "esp32s3")}


# ------------------------------------------------------------------------------------------------ Unity cases
@pytest.mark.cpp
def test_core_unity_cases_pass_on_the_host(tmp_path):
    cxx = os.environ.get("CXX", "g++")
    if not shutil.which(cxx):
        if os.environ.get("CI"):
            pytest.fail(f"{cxx} not found")
        pytest.skip(f"{cxx} not found")
    stub = REPO / "tests" / "idf_stub" / "unity"
    main = REPO / "test_apps" / "core_unity" / "main"
    srcs = [stub / "unity_stub_main.cpp", main / "test_preprocess.cpp", main / "test_postprocess.cpp",
            *sorted((REPO / "src").glob("*.cpp"))]
    srcs = [s for s in srcs if s.name != "yolo11_pose_espdl.cpp"]  # the ESP-DL adapter needs ESP-DL
    exe = tmp_path / "core_unity"
    cmd = [cxx, "-std=gnu++17", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", f"-I{stub}", f"-I{REPO / 'include'}",
           f"-I{REPO / 'src'}", *map(str, srcs), "-o", str(exe)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    n_cases = sum(len(re.findall(r"^TEST_CASE\(", (main / f).read_text(), re.MULTILINE))
                  for f in ("test_preprocess.cpp", "test_postprocess.cpp"))
    assert n_cases >= 10
    assert f"{n_cases} Tests 0 Failures" in r.stdout, r.stdout


# ------------------------------------------------------------------------------------------------ device logs
@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((LOGS / "golden.json").read_text())


def _log(name: str) -> devicelog.DeviceLog:
    return devicelog.parse_log((LOGS / name).read_text())


def test_parse_finds_tagged_lines_among_boot_noise_and_colour_codes():
    log = _log("pass.log")
    assert log.config["input"] == [320, 320] and log.config["target"] == "esp32p4"
    assert [len(log.images[n].poses) for n in ("bus", "zidane")] == [2, 1]
    assert log.images["bus"].summary["count"] == 2
    assert [m["stage"] for m in log.mem] == ["start", "model_loaded", "end"]  # "end" sits inside colour codes
    assert log.model_test == "skipped" and log.done == {"images": 2, "errors": 0}
    assert log.timings()["zidane"] == {"preprocess_ms": 4.88, "model_ms": 729.8, "postprocess_ms": 1.9}
    assert not log.malformed and not log.errors and log.restarts == 0


def test_good_log_matches_within_tolerance(golden):
    assert devicelog.compare(_log("pass.log"), golden) == []
    # The same log fails once the tolerance is tighter than its 1.2 px box difference.
    tight = devicelog.compare(_log("pass.log"), golden, devicelog.Tolerance(box_px=1.0))
    assert any("missing on the device" in p for p in tight)


@pytest.mark.parametrize("name, expected", [
    ("wrong_count.log", [r"zidane: expected pose 0 .* missing on the device"]),
    ("shifted_box.log", [r"bus: expected pose 0 .* missing .* 5\.0 px off", r"bus: unexpected device pose"]),
    ("missing_line.log", [r"bus: device announced 2 poses but printed 1", r"bus: expected pose 1 .* missing"]),
    ("crash.log", [r"no POSE_DONE line", r"zidane: no output from the device"]),
])
def test_broken_logs_are_rejected_with_reasons(golden, name, expected):
    problems = devicelog.compare(_log(name), golden)
    assert len(problems) == len(expected), problems
    for pattern, problem in zip(expected, problems):
        assert re.search(pattern, problem), (pattern, problem)


def test_config_mismatch_and_device_errors_are_reported(golden):
    text = (LOGS / "pass.log").read_text().replace('"conf": 0.250000', '"conf": 0.300000')
    text += 'POSE_ERROR: {"message": "bus: something broke"}\nPOSE_JSON: {"image": "bus", "cls": 0, "score": 0.9\n'
    problems = devicelog.compare(devicelog.parse_log(text), golden)
    assert any(p.startswith("config conf: device 0.3, golden 0.25") for p in problems)
    assert any("device reported an error: bus: something broke" in p for p in problems)
    # A cut line does not match the tag pattern (no closing brace) and is simply not a pose.
    assert len(problems) == 2, problems


def test_a_reboot_keeps_only_the_last_run():
    text = (LOGS / "crash.log").read_text() + (LOGS / "pass.log").read_text()
    log = devicelog.parse_log(text)
    assert log.restarts == 1 and log.done is not None and len(log.images["bus"].poses) == 2


def test_compare_command_exit_codes(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "yolo11_pose.evaluation.devicelog", "compare", *args], env=ENV,
                              check=False, capture_output=True, text=True, timeout=60)

    g = str(LOGS / "golden.json")
    assert run("--log", str(LOGS / "pass.log"), "--golden", g).returncode == 0
    r = run("--log", str(LOGS / "shifted_box.log"), "--golden", g)
    assert r.returncode == 1 and "2 difference(s)" in r.stdout
    r = run("--log", str(tmp_path / "nope.log"), "--golden", g)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


class _FakeDut:
    """dut.expect over a recorded log, like pexpect: each call consumes up to the match."""

    def __init__(self, text: str):
        self.buf = text.encode()
        self.timeouts = []

    def expect(self, pattern, timeout):
        self.timeouts.append(timeout)
        m = pattern.search(self.buf)
        if not m:
            raise TimeoutError("pattern not found")
        self.buf = self.buf[m.end():]
        return m


def test_collect_from_dut_reads_until_done(golden):
    dut = _FakeDut((LOGS / "pass.log").read_text().replace("\n", "\r\n"))
    lines = devicelog.collect_from_dut(dut.expect, timeout=7)
    assert lines[-1].startswith("POSE_DONE:") and set(dut.timeouts) == {7}
    assert devicelog.compare(devicelog.parse_lines(lines), golden) == []
    with pytest.raises(TimeoutError):  # a crash never prints POSE_DONE: the DUT's timeout ends the wait
        devicelog.collect_from_dut(_FakeDut((LOGS / "crash.log").read_text()).expect, timeout=1)


# ------------------------------------------------------------------------------------------------ frames
def _make_rgb(out: Path, *images, max_side=640) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MAKE_RGB), "--out-dir", str(out), "--header", str(out / "frames.h"),
                           "--max-side", str(max_side), *map(str, images)], env=ENV, check=False, capture_output=True,
                          text=True, timeout=120)


def test_make_rgb_frames_are_what_pil_decodes(tmp_path):
    from PIL import Image

    bus = ultralytics_asset("bus.jpg")
    r = _make_rgb(tmp_path, bus, ultralytics_asset("zidane.jpg"))
    assert r.returncode == 0, r.stderr
    frame = devicelog.read_rgb(tmp_path / "bus.rgb")
    with Image.open(bus) as im:  # 810x1080 -> 480x640
        ref = np.asarray(im.convert("RGB").resize((480, 640), Image.Resampling.BILINEAR))
    assert frame.shape == (640, 480, 3) and np.array_equal(frame, ref)
    assert devicelog.read_rgb(tmp_path / "zidane.rgb").shape == (360, 640, 3)
    header = (tmp_path / "frames.h").read_text()
    assert 'asm("_binary_bus_rgb_start")' in header and "#define TEST_FRAME_COUNT 2" in header
    # Full size when asked; errors are one line and exit code 2.
    assert _make_rgb(tmp_path / "full", bus, max_side=0).returncode == 0
    assert devicelog.read_rgb(tmp_path / "full" / "bus.rgb").shape == (1080, 810, 3)
    r = _make_rgb(tmp_path, tmp_path / "missing.jpg")
    assert r.returncode == 2 and "no such picture" in r.stderr


def test_app_frames_need_only_the_standard_library(tmp_path):
    """Configuring the pose app converts its committed frames with a bare Python: no site-packages at all."""
    frames = [devicelog.APP_FRAME_DIR / f for f in devicelog.APP_FRAMES.values()]
    r = subprocess.run([sys.executable, "-I", "-S", str(MAKE_RGB), "--out-dir", str(tmp_path), "--header",
                        str(tmp_path / "frames.h"), "--max-side", "640", *map(str, frames)], check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    for name, f in zip(devicelog.APP_FRAMES, frames):
        with Image.open(f) as im:
            assert np.array_equal(devicelog.read_rgb(tmp_path / f"{name}.rgb"), np.asarray(im.convert("RGB")))
    # Downscaling, or a JPEG, needs Pillow: said in one line, exit code 2.
    r = subprocess.run([sys.executable, "-I", "-S", str(MAKE_RGB), "--out-dir", str(tmp_path), "--header",
                        str(tmp_path / "frames.h"), "--max-side", "320", str(frames[0])], check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "needs Pillow" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # The app's build uses these frames, and nothing from Ultralytics.
    cmake = (REPO / "test_apps" / "pose" / "main" / "CMakeLists.txt").read_text()
    assert "../frames/${n}.png" in cmake and "ultralytics" not in cmake.lower()
    assert {n for n in devicelog.APP_FRAMES} == {"bus", "zidane"}
    assert re.search(r"^set\(frame_names bus zidane\)$", cmake, re.M)


def test_app_frames_are_ultralytics_pictures_downscaled(tmp_path):
    """Provenance (frames/README.md): Pillow's bilinear downscale of Ultralytics' own pictures, pixel for pixel."""
    for name, src in devicelog.APP_FRAME_SOURCES.items():
        r = _make_rgb(tmp_path, ultralytics_asset(Path(src).name), max_side=devicelog.APP_MAX_SIDE)
        assert r.returncode == 0, r.stderr
        from PIL import Image

        with Image.open(devicelog.APP_FRAME_DIR / devicelog.APP_FRAMES[name]) as im:
            assert np.array_equal(devicelog.read_rgb(tmp_path / f"{name}.rgb"), np.asarray(im.convert("RGB"))), name


def _png(path: Path, arr: np.ndarray, filter_type: int) -> None:
    """A PNG whose every row uses `filter_type` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth), written by hand."""
    import struct
    import zlib

    h, w = arr.shape[:2]
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    rows, prev = [], np.zeros(w * ch, np.int32)
    for y in range(h):
        cur = arr[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(ch, np.int32), cur[:-ch]])
        upleft = np.concatenate([np.zeros(ch, np.int32), prev[:-ch]])
        if filter_type == 4:
            pa, pb, pc = abs(prev - upleft), abs(left - upleft), abs(left + prev - 2 * upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        else:
            pred = [0 * cur, left, prev, (left + prev) >> 1][filter_type]
        rows.append(bytes([filter_type]) + ((cur - pred) & 255).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ctype = {1: 0, 3: 2, 4: 6}[ch]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) +
                     chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4, 1])
@pytest.mark.parametrize("filter_type", range(5))
def test_make_rgb_png_reader_matches_pillow(tmp_path, channels, filter_type):
    """The standard-library PNG reader of make_rgb.py against Pillow, for every row filter and colour type."""
    from PIL import Image

    rng = np.random.default_rng(filter_type)
    arr = rng.integers(0, 256, (23, 31, channels), dtype=np.uint8)
    arr[5:12, 3:20] = 200  # flat areas too, where the predictors tie
    arr = arr.squeeze(-1) if channels == 1 else arr
    png = tmp_path / "p.png"
    _png(png, arr, filter_type)
    r = _make_rgb(tmp_path, png)
    assert r.returncode == 0, r.stderr
    with Image.open(png) as im:
        assert np.array_equal(np.asarray(im), arr)  # the hand-written file is a valid PNG of `arr`
        assert np.array_equal(devicelog.read_rgb(tmp_path / "p.rgb"), np.asarray(im.convert("RGB")))
    # A damaged file (checksum) is refused in one line.
    data = bytearray(png.read_bytes())
    data[45] ^= 0xFF
    png.write_bytes(bytes(data))
    r = _make_rgb(tmp_path, png)
    assert r.returncode == 2 and "not a readable picture" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_read_rgb_rejects_damaged_frames(tmp_path):
    r = _make_rgb(tmp_path, ultralytics_asset("zidane.jpg"), max_side=64)
    assert r.returncode == 0, r.stderr
    good = (tmp_path / "zidane.rgb").read_bytes()
    for name, data in (("short", good[:-1]), ("magic", b"JPEG" + good[4:]), ("tiny", good[:8])):
        p = tmp_path / f"{name}.rgb"
        p.write_bytes(data)
        with pytest.raises(UserError, match="make_rgb.py"):
            devicelog.read_rgb(p)


# ------------------------------------------------------------------------------------------------ golden (real model)
def _info(tmp_path: Path, build: Path, espdl: Path) -> Path:
    r = _make_rgb(tmp_path, *(devicelog.APP_FRAME_DIR / f for f in devicelog.APP_FRAMES.values()))
    assert r.returncode == 0, r.stderr
    info = {"target": "esp32p4", "model_espdl": str(espdl),
            "images": {"bus": str(tmp_path / "bus.rgb"), "zidane": str(tmp_path / "zidane.rgb")},
            "conf": 0.25, "iou": 0.7, "kpt_thr": 0.5, "max_det": 20}
    p = tmp_path / "pose_test_info.json"
    p.write_text(json.dumps(info))
    return p


def _device_log(golden: dict) -> str:
    """What the firmware prints for these poses (its printf formats), to close the loop on real data."""
    c = golden["config"]
    n = golden["model"]["imgsz"]
    out = [(f'POSE_CONFIG: {{"target": "esp32p4", "input": [{n}, {n}], "conf": {c["conf"]:.6f}, '
            f'"iou": {c["iou"]:.6f}, "kpt_thr": {c["kpt_thr"]:.6f}, "max_det": {c["max_det"]}}}')]
    for name, img in golden["images"].items():
        for p in img["poses"]:
            kp = ", ".join(f"[{x:.3f}, {y:.3f}, {v:.6f}]" for x, y, v in p["keypoints"])
            b = ", ".join(f"{v:.3f}" for v in p["box"])
            out.append(f'POSE_JSON: {{"image": "{name}", "cls": {p["cls"]}, "score": {p["score"]:.6f}, "box": [{b}], '
                       f'"keypoints": [{kp}]}}')
        out.append(f'POSE_IMAGE: {{"image": "{name}", "width": {img["width"]}, "height": {img["height"]}, '
                   f'"count": {len(img["poses"])}, "status": "ok"}}')
    out.append('POSE_DONE: {"images": 2, "errors": 0}')
    return "\n".join(out) + "\n"


@pytest.mark.shared
@pytest.mark.slow
def test_golden_generation_on_a_real_build(build_p4_320, tmp_path):
    info = _info(tmp_path, build_p4_320, build_p4_320 / "model.espdl")
    out = tmp_path / "pose_golden.json"
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.evaluation.devicelog", "golden", "--info", str(info), "--out",
                        str(out)], env=ENV, check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    golden = json.loads(out.read_text())
    assert golden["model"]["imgsz"] == 320 and golden["model"]["target"] == "esp32p4"
    assert golden["config"] == {"conf": 0.25, "iou": 0.7, "kpt_thr": 0.5, "max_det": 20}
    # bus.jpg shows four people and zidane.jpg two: the twin must find people in both.
    for name, (w, h) in {"bus": (480, 640), "zidane": (640, 360)}.items():
        img = golden["images"][name]
        assert (img["width"], img["height"]) == (w, h)
        assert 1 <= len(img["poses"]) <= 20, name
        for p in img["poses"]:
            x1, y1, x2, y2 = p["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and p["score"] >= 0.25
            assert len(p["keypoints"]) == 17
    assert len(golden["images"]["bus"]["poses"]) >= 2

    # The firmware's own print format round-trips through parse + compare; a 3 px shift of one box does not.
    log = _device_log(golden)
    assert devicelog.compare(devicelog.parse_log(log), golden) == []
    first = golden["images"]["bus"]["poses"][0]["box"]
    shifted = log.replace(f'"box": [{first[0]:.3f},', f'"box": [{first[0] + 3:.3f},', 1)
    assert any("bus" in p for p in devicelog.compare(devicelog.parse_log(shifted), golden))

    # ensure_golden reuses a fresh golden for the same model, and remakes it when the info file changes.
    build = tmp_path
    out.rename(build / "pose_golden.json")
    stamp = (build / "pose_golden.json").stat().st_mtime_ns
    assert devicelog.ensure_golden(build) == golden
    assert (build / "pose_golden.json").stat().st_mtime_ns == stamp


@pytest.mark.shared
@pytest.mark.slow
def test_golden_needs_only_the_embedded_file(build_p4_320, tmp_path):
    """The twin runs the .espdl the firmware embeds (the executor): no build folder, no model.native."""
    alone = tmp_path / "embedded" / "yolo11_pose.espdl"
    alone.parent.mkdir()
    alone.write_bytes((build_p4_320 / "model.espdl").read_bytes())
    info = devicelog.load_info(_info(tmp_path, build_p4_320, alone))
    g = devicelog.golden_from_info(tmp_path / "pose_test_info.json")
    assert g["model"]["engine"] == "espdl" and g["model"]["target"] == info["target"]
    from_build = devicelog.make_golden(build_p4_320, {n: devicelog.read_rgb(f) for n, f in info["images"].items()},
                                       0.25, 0.7, 0.5, 20)
    assert g["images"] == from_build["images"]
    info["model_espdl"] = str(tmp_path / "not_built.espdl")
    (tmp_path / "pose_test_info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="build the test app first"):
        devicelog.golden_from_info(tmp_path / "pose_test_info.json")


# ------------------------------------------------------------------------------------------------ shipped goldens
MODELS = REPO / "models"
SHIPPED = sorted(MODELS.glob("*/yolo11n-pose-*-int8.espdl"))


def test_models_are_shipped():
    assert {(p.parent.name, p.name) for p in SHIPPED} >= {
        (t, f"yolo11n-pose-{s}-int8.espdl") for t in ("esp32p4", "esp32s3") for s in (640, 416)}


@pytest.fixture(scope="module")
def app_frames(tmp_path_factory) -> dict[str, Path]:
    """The frames the pose app embeds, made as its CMake makes them (make_rgb.py --max-side 640)."""
    out = tmp_path_factory.mktemp("app_frames")
    r = _make_rgb(out, *(devicelog.APP_FRAME_DIR / f for f in devicelog.APP_FRAMES.values()),
                  max_side=devicelog.APP_MAX_SIDE)
    assert r.returncode == 0, r.stderr
    return {n: out / f"{n}.rgb" for n in devicelog.APP_FRAMES}


@pytest.mark.parametrize("espdl", SHIPPED, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_shipped_model_has_a_golden_for_it(espdl, app_frames):
    from yolo11_pose.util import sha256_file

    gpath = espdl.with_suffix(".golden.json")
    assert gpath.is_file(), f"{gpath} missing: make it with `python -m yolo11_pose.evaluation.devicelog shipped-golden`"
    g = json.loads(gpath.read_text())
    imgsz = int(re.search(r"-(\d+)-int8", espdl.name).group(1))
    assert g["format"] == devicelog.GOLDEN_FORMAT
    assert g["model"]["espdl_sha256"] == sha256_file(espdl), f"{gpath} was made for another model; remake it"
    # input bits as the build's manifest records them (int16 where the recipe put the stem in int16)
    man = json.loads(espdl.with_name(espdl.name.replace(".espdl", ".manifest.json")).read_text())
    bits = int(man["input"]["dtype"][3:])
    assert (g["model"]["target"], g["model"]["imgsz"], g["model"]["bits"]) == (espdl.parent.name, imgsz, bits)
    assert g["config"] == devicelog.kconfig_defaults()  # what the default sdkconfig compiles in
    # The frames it was made for are those the app embeds today, pixel for pixel (else the app falls back to the twin).
    assert set(g["frames"]) == set(g["images"]) == set(devicelog.APP_FRAMES)
    for n, f in g["frames"].items():
        assert f["source"] == devicelog.APP_FRAME_SOURCES[n] and f["max_side"] == 640
        assert f["rgb_sha256"] == sha256_file(app_frames[n]), f"{n}: make_rgb.py now gives other pixels"
        rgb = devicelog.read_rgb(app_frames[n])
        assert (f["width"], f["height"]) == (g["images"][n]["width"], g["images"][n]["height"]) == rgb.shape[1::-1]
    for n, img in g["images"].items():
        w, h = img["width"], img["height"]
        assert 1 <= len(img["poses"]) <= g["config"]["max_det"], n
        for p in img["poses"]:
            x1, y1, x2, y2 = p["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, (n, p["box"])
            assert p["cls"] == 0 and g["config"]["conf"] <= p["score"] <= 1
            kp = np.asarray(p["keypoints"], dtype=float)
            assert kp.shape == (17, 3), n
            assert (kp[:, 0] >= 0).all() and (kp[:, 0] <= w).all() and (kp[:, 1] >= 0).all() and (kp[:, 1] <= h).all()
            assert ((kp[:, 2] >= 0) & (kp[:, 2] <= 1)).all()
    if (espdl.parent.name, imgsz) == ("esp32p4", 640):
        assert len(g["images"]["bus"]["poses"]) >= 3  # the most accurate model finds the people in bus.jpg


def _shipped_info(tmp_path: Path, espdl: Path, golden: Path, frames: dict[str, Path], target: str = "esp32p4",
                  **over) -> Path:
    info = {"target": target, "model_espdl": str(espdl), "golden_candidates": [str(golden)], "images": {n: str(p) for n, p in frames.items()},
            **devicelog.kconfig_defaults(), **over}
    (tmp_path / "pose_test_info.json").write_text(json.dumps(info))
    return tmp_path / "pose_test_info.json"


def test_shipped_golden_is_used_for_its_model(tmp_path, app_frames):
    espdl = MODELS / "esp32p4" / "yolo11n-pose-640-int8.espdl"
    shipped = json.loads(espdl.with_suffix(".golden.json").read_text())
    _shipped_info(tmp_path, espdl, espdl.with_suffix(".golden.json"), app_frames)
    assert devicelog.ensure_golden(tmp_path) == shipped
    assert json.loads((tmp_path / "pose_golden.json").read_text()) == shipped


@pytest.mark.parametrize("change", ["golden_sha", "model", "threshold", "frame"])
def test_shipped_golden_is_not_used_for_anything_else(tmp_path, app_frames, change):
    from yolo11_pose.util import sha256_file

    espdl = MODELS / "esp32p4" / "yolo11n-pose-640-int8.espdl"
    gpath, frames, over = espdl.with_suffix(".golden.json"), dict(app_frames), {}
    if change == "golden_sha":  # a golden made for another model, next to this one
        g = json.loads(gpath.read_text())
        g["model"]["espdl_sha256"] = "0" * 64
        gpath = tmp_path / "other.golden.json"
        gpath.write_text(json.dumps(g))
    elif change == "model":  # the firmware embeds another model than the golden's: the 416 one, a valid file (a
        # changed byte would be refused as corrupt by the file's own content SHA-256, before any golden is chosen)
        other = tmp_path / "other.espdl"
        other.write_bytes((MODELS / "esp32p4" / "yolo11n-pose-416-int8.espdl").read_bytes())
        espdl = other
    elif change == "threshold":
        over = {"conf": 0.3}
    else:  # other pixels (e.g. replaced frames)
        data = bytearray(app_frames["bus"].read_bytes())
        data[-1] ^= 1
        frames["bus"] = tmp_path / "bus.rgb"
        frames["bus"].write_bytes(bytes(data))
    info = devicelog.load_info(_shipped_info(tmp_path, espdl, gpath, frames, **over))
    assert devicelog.committed_golden(info)[0] is None
    # ... so the twin computes one from the embedded file itself.
    g = devicelog.ensure_golden(tmp_path)
    assert g["model"]["engine"] == "espdl" and g["model"]["espdl_sha256"] == sha256_file(espdl)
    assert g["config"]["conf"] == info["conf"] and json.loads((tmp_path / "pose_golden.json").read_text()) == g
