"""Fixtures shared by the host tests: where ../shared is, and models built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests drive the C++ core built with ASan/UBSan (tests/host); the installed tools use the optimized build.
os.environ.setdefault("YOLO11_POSE_HOST_VARIANT", "asan")
SHARED = Path(os.environ.get("YOLO11_POSE_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "models" / "yolo11n-pose.pt"
COCO = SHARED / "data" / "coco-pose-mini"
CALIB_LIST = COCO / "calibration.txt"
VAL_ANN = COCO / "annotations" / "person_keypoints_val.json"
REFERENCE_ESPDL = SHARED / "models" / "espdl-reference"


def require_shared(*paths: Path) -> None:
    """Tests on real data must never pass silently without it: fail in CI, skip on a laptop without ../shared."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        msg = f"needs {missing[0]} (../shared beside the checkout, or YOLO11_POSE_SHARED)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def ultralytics_asset(name: str) -> Path:
    import ultralytics

    p = Path(ultralytics.__file__).parent / "assets" / name
    assert p.is_file(), f"ultralytics no longer ships {name}"
    return p


@pytest.fixture(scope="session")
def shared() -> Path:
    require_shared(WEIGHTS, CALIB_LIST, VAL_ANN)
    return SHARED


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    return ultralytics_asset("bus.jpg")


@pytest.fixture(scope="session")
def official_onnx_320(shared, tmp_path_factory) -> Path:
    from yolo11_pose.make.export import export_onnx

    out = tmp_path_factory.mktemp("onnx320")
    export_onnx(str(WEIGHTS), 320, out)
    return out / "model.onnx"


def _build(tmp_path_factory, target: str, imgsz: int = 320, num_calib: int = 32) -> Path:
    from yolo11_pose.make.build import build

    out = tmp_path_factory.mktemp(f"build-{target}-{imgsz}")
    build(str(WEIGHTS), imgsz, target, 8, str(CALIB_LIST), num_calib, out, progress=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def build_p4_320(shared, tmp_path_factory) -> Path:
    """Official weights, esp32p4 int8, 320, 32 calibration images: a build folder (model.espdl, model.native, ...)."""
    return _build(tmp_path_factory, "esp32p4")


@pytest.fixture(scope="session")
def build_s3_320(shared, tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "esp32s3")
