"""examples/: each app's C++ compiles against the ESP-DL/ESP-IDF stand-ins (tests/host/stubs), and its files agree
with each other and with the component (no ESP-IDF here: what `idf.py build` would check, checked by hand)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO
from .firmware import partitions

EXAMPLES = sorted(p.parent for p in REPO.glob("examples/*/CMakeLists.txt"))
TARGETS = ("esp32p4", "esp32s3")
MB = 1 << 20
# Code and data besides the model: Espressif's own YOLO11n-pose example gives its app 2000 KB when the model lives in
# a partition of its own (esp-dl examples/yolo11_pose/partitions2.csv).
APP_WITHOUT_MODEL = 2000 * 1024
# One 640x640 inference, Espressif's figures for its YOLO11n-pose example (esp-dl models/coco_pose), in seconds.
INFERENCE_640_S = {"esp32p4": 2.73, "esp32s3": 27.83}
FLASH_SIZES = {f"CONFIG_ESPTOOLPY_FLASHSIZE_{n}MB": n * MB for n in (2, 4, 8, 16, 32, 64, 128)}


def test_there_is_a_get_started_example():
    assert REPO / "examples" / "get_started" in EXAMPLES


def _sdkconfig(path: Path) -> dict[str, str]:
    out = {}
    for ln in path.read_text().splitlines():
        if ln.strip() and not ln.lstrip().startswith("#"):
            k, _, v = ln.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


@pytest.mark.parametrize("app", EXAMPLES, ids=lambda p: p.name)
def test_layout_and_per_target_defaults(app):
    rules = yaml.safe_load((REPO / ".build-test-rules.yml").read_text())
    key = app.relative_to(REPO).as_posix()
    assert key in rules, f".build-test-rules.yml has no entry for {key}"
    assert 'IDF_TARGET in ["esp32p4", "esp32s3"]' in rules[key]["enable"][0]["if"]
    for f in ("README.md", "main/CMakeLists.txt", "main/idf_component.yml", "sdkconfig.defaults", "partitions.csv"):
        assert (app / f).is_file(), f"{key}/{f} missing"
    common = _sdkconfig(app / "sdkconfig.defaults")
    assert common.get("CONFIG_PARTITION_TABLE_CUSTOM") == "y"
    assert (app / common["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"]).is_file()
    # Every component option the defaults set must exist in the component's Kconfig (catches a rename).
    kconfig = (REPO / "Kconfig").read_text()
    for k in common:
        if k.startswith("CONFIG_YOLO11_POSE_"):
            assert re.search(rf"^\s*config {k[len('CONFIG_'):]}\s*$", kconfig, re.MULTILINE), f"{k} not in Kconfig"

    for target in TARGETS:
        cfg = {**common, **_sdkconfig(app / f"sdkconfig.defaults.{target}")}
        assert cfg.get("CONFIG_SPIRAM") == "y", f"{target}: ESP-DL needs PSRAM"
        assert int(cfg.get("CONFIG_ESP_MAIN_TASK_STACK_SIZE", 3584)) >= 8192
        # The task watchdog must outlast one inference at 640 (the S3's default model is 416: smaller still).
        assert int(cfg.get("CONFIG_ESP_TASK_WDT_TIMEOUT_S", 5)) > 2 * INFERENCE_640_S[target] or \
            cfg.get("CONFIG_ESP_TASK_WDT_EN") == "n", target
        if target == "esp32s3":
            assert cfg.get("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240") == "y"  # ESP-IDF's default is 160 MHz
        (flash_key,) = [k for k in cfg if k in FLASH_SIZES]
        flash = FLASH_SIZES[flash_key]

        parts = partitions(app / common["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"])
        assert max(p["offset"] + p["size"] for p in parts) <= flash, f"{target}: partitions exceed {flash_key}"
        (factory,) = [p for p in parts if p["type"] == "app"]
        # The model is embedded in the app (flash rodata): any shipped model for the target must fit with the code
        # and the embedded files.
        model = max(p.stat().st_size for p in REPO.glob(f"models/{target}/*.espdl"))
        embedded = sum(p.stat().st_size for p in (app / "main").iterdir() if p.suffix not in (".cpp", ".txt", ".yml",
                                                                                             ".md", ".h", ".hpp"))
        assert factory["size"] >= model + embedded + APP_WITHOUT_MODEL, (target, factory, model, embedded)


def test_get_started_frame_matches_its_source_code():
    app = REPO / "examples" / "get_started"
    src = (app / "main" / "get_started_main.cpp").read_text()
    w = int(re.search(r"kFrameWidth = (\d+);", src).group(1))
    h = int(re.search(r"kFrameHeight = (\d+);", src).group(1))
    embed = re.search(r'EMBED_FILES\s+"([^"]+)"', (app / "main" / "CMakeLists.txt").read_text()).group(1)
    frame = app / "main" / embed
    assert frame.stat().st_size == w * h * 2  # RGB565
    symbol = "_binary_" + re.sub(r"[^A-Za-z0-9]", "_", embed) + "_start"  # ESP-IDF's name for an embedded file
    assert f'asm("{symbol}")' in src
    assert "AGPL-3.0" in (app / "main" / "FRAME_LICENSE.md").read_text()


def test_get_started_frame_is_remade_from_its_source(tmp_path):
    """The committed frame is what tools/make_frame.py makes of the pose test app's committed picture."""
    src = REPO / "test_apps" / "pose" / "frames" / "bus.png"
    app = REPO / "examples" / "get_started"
    out = tmp_path / "frame.rgb565be"
    r = subprocess.run([sys.executable, str(app / "tools" / "make_frame.py"), str(src), "--out", str(out)],
                       capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (app / "main" / "frame_240x320.rgb565be").read_bytes()
    # People are in it: the frame decodes to the picture (RGB565 keeps 5-6 bits per channel).
    import numpy as np
    from PIL import Image
    from yolo11_pose.device.pixels import to_rgb888

    rgb = to_rgb888(out.read_bytes(), 240, 320, "rgb565be").astype(int)
    ref = np.asarray(Image.open(src).convert("RGB").resize((240, 320), Image.Resampling.BOX)).astype(int)
    assert np.abs(rgb - ref).mean() < 6


@pytest.mark.cpp
def test_example_sources_compile_against_the_stand_ins():
    from yolo11_pose.device import cpp

    out = cpp.build("asan")  # tests/host: its yolo11_pose_examples_check target compiles examples/*/main/*.cpp
    r = subprocess.run(["cmake", "--build", str(out), "--target", "yolo11_pose_examples_check"], capture_output=True,
                       text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    objs = {p.name for p in out.rglob("*.o")}
    for src in REPO.glob("examples/*/main/*.cpp"):
        assert f"{src.name}.o" in objs, f"{src} was not compiled"
