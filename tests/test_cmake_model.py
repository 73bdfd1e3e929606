"""cmake/yolo11_pose_model.cmake without ESP-IDF: tests/cmake_stub is a plain CMake project that stands in for the
few ESP-IDF functions the module calls. Checks which model lands in the build, how it is embedded or flashed, that
regeneration runs exactly when an input's content or a setting changed (and no Python at all otherwise), and the
configure-time errors."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CALIB_LIST, COCO, REPO, require_shared

STUB = REPO / "tests" / "cmake_stub"
MODELS = REPO / "models"
PREBUILT = [(t, s) for t in ("esp32p4", "esp32s3") for s in (640, 416)]


@pytest.fixture(autouse=True)
def _cmake_and_ninja():
    """Like ../shared: a laptop without the tools skips, CI fails."""
    missing = [t for t in ("cmake", "ninja") if shutil.which(t) is None]
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"needs {' and '.join(missing)} on PATH")


def _defs(config: dict) -> list[str]:
    return [f"-D{k}={v}" for k, v in config.items()]


def configure(project: Path, config: dict, target: str = "esp32p4", python: str | None = None,
              extra: dict | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Like `idf.py reconfigure` with an sdkconfig holding `config` (keys without the CONFIG_YOLO11_POSE_ prefix).

    Values are written into sdkconfig.cmake verbatim, as ESP-IDF does: a "${VAR}" in them is a CMake variable there.
    `env` replaces the YOLO11_POSE_* environment variables (the others are inherited)."""
    sdk = project / "sdkconfig.cmake"  # rewritten in full every time, as ESP-IDF does
    sdk.write_text("".join(f'set(CONFIG_YOLO11_POSE_{k} "{v}")\n' for k, v in config.items()))
    defs = {"STUB_SDKCONFIG": sdk, "IDF_TARGET": target, "STUB_PROJECT_DIR": project,
            "STUB_PYTHON": python or sys.executable, "STUB_PARTITIONS": "", "STUB_ESPDL_DIR": ""}
    defs.update(extra or {})
    environ = {k: v for k, v in os.environ.items() if not k.startswith("YOLO11_POSE_")}
    environ.update(env or {})
    return subprocess.run(["cmake", "-S", str(STUB), "-B", str(project / "build"), "-G", "Ninja", *_defs(defs)],
                          capture_output=True, text=True, check=False, env=environ)


def build(project: Path, *targets: str) -> subprocess.CompletedProcess:
    args = ["cmake", "--build", str(project / "build")]
    for t in targets:
        args += ["--target", t]
    # Random-init YAML models at 96 px can come out of ESP-PPQ with a Concat whose inputs have different exponents
    # (ESP-DL's Concat copies raw integers: the coverage gate refuses it); these tests are about CMake, not that.
    env = {**os.environ, "YOLO11_POSE_ALLOW_UNVERIFIED_OPS": "1"}
    r = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def configure_ok(project: Path, config: dict, **kw) -> subprocess.CompletedProcess:
    r = configure(project, config, **kw)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def config_error(r: subprocess.CompletedProcess) -> str:
    """The module's FATAL_ERROR text, with CMake's line wrapping undone."""
    assert r.returncode != 0, "configuration should have failed"
    text = " ".join(r.stderr.split())
    assert "yolo11_pose:" in text, r.stderr
    return text


def calls(project: Path) -> list[list[str]]:
    """ESP-IDF/ESP-DL functions the module called (recorded by the stand-ins)."""
    lines = (project / "build" / "idf_calls.txt").read_text().splitlines()
    return [ln.split("|") for ln in lines if ln]


def embedded_bytes(project: Path) -> bytes:
    """Runs the host program that reads the model back through _binary_yolo11_pose_espdl_start/_end."""
    build(project, "embed_check")
    out = project / "embedded.bin"
    r = subprocess.run([str(project / "build" / "embed_check"), str(out)], capture_output=True, text=True,
                       check=True)
    data = out.read_bytes()
    assert r.stdout.split() == ["align16=1", f"size={len(data)}", f"length={len(data)}"]
    return data


def logging_python(tmp_path: Path) -> tuple[str, Path]:
    """An interpreter that appends every command line it runs to a log: proof of when Python ran."""
    log = tmp_path / "python-calls.log"
    wrapper = tmp_path / "python-logged"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" | head -n 1 >> "{log}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    return str(wrapper), log


RODATA = {"MODEL_LOCATION_FLASH_RODATA": "y"}


# ------------------------------------------------------------------------------------------------------ prebuilt
@pytest.mark.parametrize("target,imgsz", PREBUILT)
def test_prebuilt_model_for_each_target_is_embedded(tmp_path, target, imgsz):
    src = MODELS / target / f"yolo11n-pose-{imgsz}-int8.espdl"
    assert src.is_file(), f"{src} missing: the component must ship it"
    py, log = logging_python(tmp_path)
    size = {640: "PREBUILT_640", 416: "PREBUILT_416"}[imgsz]
    configure_ok(tmp_path, {"MODEL_PREBUILT": "y", size: "y", "PREBUILT_IMGSZ": imgsz, **RODATA}, target=target,
                 python=py)
    build(tmp_path)
    model = tmp_path / "build" / "yolo11_pose" / "yolo11_pose.espdl"
    assert model.read_bytes() == src.read_bytes()
    assert embedded_bytes(tmp_path) == src.read_bytes()
    assert log.read_text() == "", "the prebuilt model needs no Python"
    # The shipped manifest describes this very file.
    man = json.loads(src.with_suffix(".manifest.json").read_text())
    assert man["espdl_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert man["settings"]["target"] == target and man["input"]["shape"][1:3] == [imgsz, imgsz]


def _file_paths(value):
    """Every string in a manifest that names a file (ONNX node names start with '/' too, so go by suffix)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _file_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _file_paths(v)]
    return [value] if isinstance(value, str) and value.endswith((".pt", ".txt", ".onnx", ".espdl", ".yaml")) else []


@pytest.mark.parametrize("target,imgsz", PREBUILT)
def test_prebuilt_manifest_paths_are_relative_to_the_repository(target, imgsz):
    """models/README: paths in a shipped manifest are relative to the repository root, so they name the same files on
    every checkout (the weights and calibration list in ../shared, the build's own ONNX by name)."""
    man = json.loads((MODELS / target / f"yolo11n-pose-{imgsz}-int8.manifest.json").read_text())
    paths = _file_paths(man)
    assert paths, "the manifest names no input file"
    assert [p for p in paths if os.path.isabs(p)] == []
    shared = [REPO / p for p in paths if p.startswith("../shared/")]
    require_shared(*shared)
    weights = REPO / man["export"]["weights"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == man["export"]["weights_sha256"]


def test_prebuilt_for_a_target_without_one_fails_clearly(tmp_path):
    text = config_error(configure(tmp_path, {"MODEL_PREBUILT": "y", **RODATA}, target="esp32c3"))
    assert "no prebuilt model for esp32c3" in text and "My own .espdl file" in text


def test_linux_target_gets_no_model(tmp_path):
    """ESP-DL does not run on ESP-IDF's linux target, which the component lists for host tests."""
    r = configure_ok(tmp_path, {"MODEL_PREBUILT": "y", **RODATA}, target="linux")
    assert "no model for the linux target" in r.stdout
    build(tmp_path)
    assert not (tmp_path / "build" / "yolo11_pose").exists() and calls(tmp_path) == []


def test_esp_dl_embedding_function_is_used_when_esp_dl_is_there(tmp_path):
    fake = STUB / "fake_esp_dl"
    configure_ok(tmp_path, {"MODEL_PREBUILT": "y", "PREBUILT_640": "y", "PREBUILT_IMGSZ": 640, **RODATA},
                 extra={"STUB_ESPDL_DIR": fake})
    model = tmp_path / "build" / "yolo11_pose" / "yolo11_pose.espdl"
    assert calls(tmp_path) == [["target_add_aligned_binary_data", "__idf_yolo11_pose", str(model), "BINARY",
                                str(fake / "fbs_loader" / "cmake")]]


# ------------------------------------------------------------------------------- own file, partition, SD card
def test_custom_file_to_partition(tmp_path):
    src = MODELS / "esp32s3" / "yolo11n-pose-416-int8.espdl"
    (tmp_path / "main").mkdir()
    shutil.copy(src, tmp_path / "main" / "mine.espdl")
    cfg = {"MODEL_CUSTOM_FILE": "y", "MODEL_FILE": "main/mine.espdl", "MODEL_LOCATION_FLASH_PARTITION": "y",
           "MODEL_PARTITION_LABEL": "nn"}
    configure_ok(tmp_path, cfg, target="esp32s3", extra={"STUB_PARTITIONS": "nvs=0x6000;nn=0x600000"})
    model = tmp_path / "build" / "yolo11_pose" / "yolo11_pose.espdl"
    assert calls(tmp_path) == [["esptool_py_flash_to_partition", "flash", "nn", str(model)]]
    build(tmp_path, "flash")  # `idf.py flash` must first produce the file it writes
    assert model.read_bytes() == src.read_bytes()
    assert not list((tmp_path / "build").rglob("*.espdl.S")), "a partition model must not also be embedded"

    # Partition missing, or too small: configuration says so instead of esptool failing later.
    text = config_error(configure(tmp_path, cfg, target="esp32s3", extra={"STUB_PARTITIONS": "nvs=0x6000"}))
    assert "no partition labelled 'nn'" in text
    text = config_error(configure(tmp_path, cfg, target="esp32s3", extra={"STUB_PARTITIONS": "nn=0x100000"}))
    assert "does not fit partition 'nn' (1048576 bytes)" in text


def test_custom_file_errors(tmp_path):
    cfg = {"MODEL_CUSTOM_FILE": "y", "MODEL_FILE": "nothere.espdl", **RODATA}
    # The whole message, semicolon included (the module's joining once dropped every ';').
    assert f"{tmp_path / 'nothere.espdl'} does not exist; fix the path in menuconfig" in \
        config_error(configure(tmp_path, cfg))
    (tmp_path / "bad.espdl").write_bytes(b"PK\x03\x04 not a model")
    cfg["MODEL_FILE"] = str(tmp_path / "bad.espdl")
    assert "is not an ESP-DL model" in config_error(configure(tmp_path, cfg))


def test_sdcard_leaves_the_file_and_embeds_nothing(tmp_path):
    cfg = {"MODEL_PREBUILT": "y", "PREBUILT_416": "y", "PREBUILT_IMGSZ": 416, "MODEL_LOCATION_SDCARD": "y",
           "MODEL_SDCARD_PATH": "/sdcard/m.espdl"}
    r = configure_ok(tmp_path, cfg)
    assert "copy it to the SD card as /sdcard/m.espdl" in r.stdout
    build(tmp_path)
    assert (tmp_path / "build" / "yolo11_pose" / "yolo11_pose.espdl").read_bytes() == \
        (MODELS / "esp32p4" / "yolo11n-pose-416-int8.espdl").read_bytes()
    assert calls(tmp_path) == [] and not list((tmp_path / "build").rglob("*.espdl.S"))


# ------------------------------------------------------------------------------------------------- regenerate
def _tiny_project(tmp_path: Path) -> Path:
    """Random-init YOLO11n-pose architecture (ships with Ultralytics: no download) and 8 calibration images."""
    require_shared(CALIB_LIST)
    import ultralytics

    proj = tmp_path / "proj"
    (proj / "calib").mkdir(parents=True)
    yaml = Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11-pose.yaml"
    shutil.copy(yaml, proj / "yolo11n-pose.yaml")  # the "n" in the name picks the nano scale
    names = [ln.strip() for ln in CALIB_LIST.read_text().splitlines() if ln.strip()][:8]
    for n in names:
        shutil.copy(COCO / "images" / n, proj / "calib" / n)
    return proj


def _regen_cfg(**over) -> dict:
    cfg = {"MODEL_REGENERATE": "y", "WEIGHTS": "yolo11n-pose.yaml", "IMGSZ": 96, "BITS": 8, "CALIB": "calib",
           "NUM_CALIB": 8, "CALIB_MODE": "square", **RODATA}
    cfg.update(over)
    return cfg


def _build_runs(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if "yolo11_pose.cli build" in ln]


@pytest.mark.slow
def test_regenerate_only_when_content_or_settings_change(tmp_path):
    proj = _tiny_project(tmp_path)
    py, log = logging_python(tmp_path)
    work = proj / "build" / "yolo11_pose"
    weights = proj / "yolo11n-pose.yaml"

    configure_ok(proj, _regen_cfg(), python=py)
    build(proj)
    assert len(_build_runs(log)) == 1
    man = json.loads((work / "manifest.json").read_text())
    assert man["input"]["shape"] == [1, 96, 96, 3] and man["settings"]["target"] == "esp32p4"
    assert man["build_key"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    model = work / "yolo11_pose.espdl"
    assert model.read_bytes()[:4] == b"EDL2"
    assert embedded_bytes(proj) == model.read_bytes()

    # Nothing changed: not a single Python process.
    log.write_text("")
    r = build(proj)
    assert log.read_text() == "" and "no work to do" in r.stdout

    # Timestamp only: the tool runs, finds the content unchanged, and the model (so the link) is left alone.
    stamp = model.stat().st_mtime_ns
    os.utime(weights)
    r = build(proj)
    assert len(_build_runs(log)) == 1 and "up to date" in r.stdout
    assert model.stat().st_mtime_ns == stamp
    log.write_text("")
    build(proj)
    assert log.read_text() == ""

    # New weights content: regenerated.
    with weights.open("a") as f:
        f.write("# retrained\n")
    build(proj)
    assert len(_build_runs(log)) == 1
    man = json.loads((work / "manifest.json").read_text())
    assert man["build_key"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert model.stat().st_mtime_ns != stamp

    # Another input size (a menuconfig change): regenerated at that size.
    log.write_text("")
    configure_ok(proj, _regen_cfg(IMGSZ=128), python=py)
    build(proj)
    assert len(_build_runs(log)) == 1
    man = json.loads((work / "manifest.json").read_text())
    assert man["input"]["shape"] == [1, 128, 128, 3]
    assert embedded_bytes(proj) == model.read_bytes()


def test_regenerate_embeds_test_values_when_asked(tmp_path):
    """CONFIG_YOLO11_POSE_TEST_VALUES (set by the pose test app's regenerate configuration) reaches the build
    command, so dl::Model::test() has values to check on the chip."""
    proj = _tiny_project(tmp_path)
    py, _ = logging_python(tmp_path)
    settings = proj / "build" / "yolo11_pose" / "settings.txt"
    configure_ok(proj, _regen_cfg(), python=py)
    assert "--export-test-values" not in settings.read_text().splitlines()
    configure_ok(proj, _regen_cfg(TEST_VALUES="y"), python=py)
    assert "--export-test-values" in settings.read_text().splitlines()


def test_regenerate_missing_weights_fails_clearly(tmp_path):
    proj = _tiny_project(tmp_path)
    text = config_error(configure(proj, _regen_cfg(WEIGHTS="weights/best.pt")))
    assert f"weights {proj / 'weights' / 'best.pt'} do not exist" in text and "CONFIG_YOLO11_POSE_WEIGHTS" in text


def test_regenerate_official_name_left_to_ultralytics(tmp_path):
    """The default weights name is not a file in the project: Ultralytics downloads it, in the build directory."""
    proj = _tiny_project(tmp_path)
    r = configure_ok(proj, _regen_cfg(WEIGHTS="yolo11n-pose.pt"))
    assert "Ultralytics will fetch it" in r.stdout
    settings = (proj / "build" / "yolo11_pose" / "settings.txt").read_text().splitlines()
    assert settings[settings.index("--weights") + 1] == "yolo11n-pose.pt"


def test_regenerate_settings_checked_at_configure(tmp_path):
    proj = _tiny_project(tmp_path)
    assert "not a multiple of 32" in config_error(configure(proj, _regen_cfg(IMGSZ=100)))
    assert "no calibration images set" in config_error(configure(proj, _regen_cfg(CALIB="")))
    assert "holds 8 calibration images but CONFIG_YOLO11_POSE_NUM_CALIB is 64" in \
        config_error(configure(proj, _regen_cfg(NUM_CALIB=64)))
    assert "Python interpreter 'no-such-python3' not found on PATH" in \
        config_error(configure(proj, _regen_cfg(PYTHON="no-such-python3")))


def test_regenerate_without_ml_packages_names_the_install_command(tmp_path):
    proj = _tiny_project(tmp_path)
    venv = tmp_path / "bare-venv"  # an interpreter without the packages, as ESP-IDF's own environment is
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bare = venv / "bin" / "python"
    text = config_error(configure(proj, _regen_cfg(PYTHON=bare)))
    assert "Python packages missing: numpy" in text
    assert f'Install them with: "{bare}" -m pip install "{REPO}"' in text
    # Same when it comes from ESP-IDF (no interpreter configured), after the better way: an environment of its own
    # set as the Python interpreter, rather than the ML stack inside ESP-IDF's environment.
    text = config_error(configure(proj, _regen_cfg(), python=str(bare)))
    assert f'"{bare}" -m pip install' in text
    assert "ESP-IDF's Python" in text and -1 < text.index("'Python interpreter'") < text.index("Install them with")


def test_regenerate_missing_ml_packages_listed(tmp_path):
    """numpy there, PyTorch & co. not: the message lists what the tool's own check (check_ml_stack) reports."""
    import numpy

    proj = _tiny_project(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "numpy").symlink_to(Path(numpy.__file__).parent, target_is_directory=True)
    text = config_error(configure(proj, _regen_cfg(PYTHON=venv / "bin" / "python")))
    assert "Python packages missing: torch, ultralytics, onnx, esp_ppq, onnxslim." in text
    assert f'"{venv / "bin" / "python"}" -m pip install "{REPO}"' in text


# ------------------------------------------------------------------------------- regenerate settings from the environment
def _fake_regen_project(tmp_path: Path) -> Path:
    """Just enough for configuration: CMake lists the files but does not read them."""
    proj = tmp_path / "proj"
    for d in ("w", "calib", "calib2"):
        (proj / d).mkdir(parents=True)
    (proj / "w" / "best.pt").write_bytes(b"weights")
    for d in ("calib", "calib2"):
        for i in range(64):
            (proj / d / f"{i:03d}.jpg").write_bytes(b"\xff\xd8")
    return proj


def _ci_regenerate_config() -> dict:
    """test_apps/pose/sdkconfig.ci.regenerate's component settings, as plain idf.py passes them (no expansion)."""
    cfg = {}
    for line in (REPO / "test_apps" / "pose" / "sdkconfig.ci.regenerate").read_text().splitlines():
        if line.startswith("CONFIG_YOLO11_POSE_"):
            key, _, value = line[len("CONFIG_YOLO11_POSE_"):].partition("=")
            cfg[key] = value.strip('"')
    return cfg


def _setting(project: Path, flag: str) -> str:
    settings = (project / "build" / "yolo11_pose" / "settings.txt").read_text().splitlines()
    return settings[settings.index(flag) + 1]


def test_regenerate_ci_config_takes_paths_from_the_environment(tmp_path):
    proj = _fake_regen_project(tmp_path)
    cfg = _ci_regenerate_config()
    assert cfg["MODEL_REGENERATE"] == "y" and "${" not in "".join(cfg.values())
    part = {"STUB_PARTITIONS": "model=0x400000"}
    env = {"YOLO11_POSE_WEIGHTS": "w/best.pt", "YOLO11_POSE_CALIB": "calib"}  # relative to the project, as menuconfig
    configure_ok(proj, cfg, extra=part, env=env)
    assert _setting(proj, "--weights") == str(proj / "w" / "best.pt")
    assert _setting(proj, "--calib") == str(proj / "calib")
    assert _setting(proj, "--imgsz") == "320" and _setting(proj, "--num-calib") == "32"

    # The older form of that file: "${VAR}" reaches CMake as an empty variable, so the environment still answers.
    configure_ok(proj, {**cfg, "WEIGHTS": "${YOLO11_POSE_WEIGHTS}", "CALIB": "${YOLO11_POSE_CALIB}"}, extra=part,
                 env=env)
    assert _setting(proj, "--calib") == str(proj / "calib")

    # A menuconfig value wins over the environment.
    configure_ok(proj, {**cfg, "CALIB": "calib2"}, extra=part, env=env)
    assert _setting(proj, "--calib") == str(proj / "calib2")

    # Nothing set: the default weights name, and calibration says where to set it (one whole message).
    r = configure(proj, cfg, extra=part, env={})
    text = config_error(r)
    assert "no calibration images set; set 'Calibration images' (CONFIG_YOLO11_POSE_CALIB) in menuconfig" in text
    assert "or the environment variable YOLO11_POSE_CALIB" in text
    r = configure_ok(proj, cfg, extra=part, env={"YOLO11_POSE_CALIB": str(proj / "calib")})
    assert _setting(proj, "--weights") == "yolo11n-pose.pt" and "Ultralytics will fetch it" in r.stdout


def test_regenerate_defaults_come_from_the_tools_defaults(tmp_path):
    """Settings missing from the sdkconfig take tools/yolo11_pose/cfg/default.yaml's values."""
    from yolo11_pose import cfg as defaults

    proj = _fake_regen_project(tmp_path)
    configure_ok(proj, {"MODEL_REGENERATE": "y", "WEIGHTS": "w/best.pt", "CALIB": "calib", **RODATA})
    assert _setting(proj, "--imgsz") == str(defaults.IMGSZ)
    assert _setting(proj, "--bits") == str(defaults.BITS)
    assert _setting(proj, "--num-calib") == str(defaults.NUM_CALIB)
    assert _setting(proj, "--calib-mode") == defaults.CALIB_MODE
    text = config_error(configure(proj, {"MODEL_REGENERATE": "y", "WEIGHTS": "w/best.pt", "CALIB": "calib",
                                         "IMGSZ": defaults.IMGSZ_MAX + defaults.IMGSZ_MULTIPLE, **RODATA}))
    assert f"is not a multiple of {defaults.IMGSZ_MULTIPLE} in {defaults.IMGSZ_MIN}..{defaults.IMGSZ_MAX}" in text
