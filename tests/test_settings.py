"""One owner for the build settings: cfg.SETTINGS. A setting added there, and nowhere else, reaches the command line
(flag, default, help), the settings object, the build key, the manifest's "settings" and CMake's settings file."""
from __future__ import annotations

import json

import pytest
from yolo11_pose.make import build, quantize
from yolo11_pose import cfg, cli
from yolo11_pose.util import UserError


@pytest.fixture
def calib(tmp_path):
    d = tmp_path / "calib"
    d.mkdir()
    for i in range(8):  # build_key hashes content only: no decodable image needed
        (d / f"{i}.jpg").write_bytes(b"\xff\xd8" + bytes([i]))
    return d


@pytest.fixture
def weights(tmp_path):
    w = tmp_path / "best.pt"
    w.write_bytes(b"weights")
    return w


@pytest.fixture
def dummy(monkeypatch):
    """A new setting, added in the one place settings are defined."""
    s = cfg.Setting("dummy_knob", int, 7, "a knob added in one place (default {default})", kconfig="DUMMY_KNOB")
    monkeypatch.setattr(cfg, "SETTINGS", cfg.SETTINGS + (s,))
    return s


def _build_args(weights, calib, tmp_path, *extra):
    return ["build", "--weights", str(weights), "--target", "esp32p4", "--calib", str(calib), "--num-calib", "8",
            "--out", str(tmp_path / "out"), *extra]


def test_a_new_setting_reaches_help_settings_build_key_and_manifest(dummy, weights, calib, tmp_path):
    sub = next(a for a in cli.parser()._actions if a.dest == "cmd").choices
    for cmd in ("quantize", "build", "qat"):
        text = " ".join(sub[cmd].format_help().split())
        assert "--dummy-knob DUMMY_KNOB a knob added in one place (default 7)" in text, cmd
    assert "--dummy-knob" not in sub["export"].format_help()  # commands that do not take it do not offer it

    a = cli._parse(_build_args(weights, calib, tmp_path, "--dummy-knob", "9"))
    s = cli._settings(a)
    assert s.dummy_knob == 9
    key = build.build_key(s)
    assert key["dummy_knob"] == 9
    assert build.build_key(cli._settings(cli._parse(_build_args(weights, calib, tmp_path))))["dummy_knob"] == 7
    man = quantize.manifest_settings(s, {"calibration": {"method": "percentile"}}, None)
    assert man["dummy_knob"] == 9
    assert s.cli_args("build")[-2:] == ["--dummy-knob", "9"]  # what CMake's settings.txt holds

    # Checked like every other setting.
    with pytest.raises(UserError, match="--dummy-knob 'x' is not an int"):
        cfg.make_settings(dummy_knob="x")
    # And from menuconfig, by its CONFIG_ symbol.
    from yolo11_pose.make.cmake_helper import config_values

    assert cfg.make_settings(source="cmake", **config_values({"CONFIG_YOLO11_POSE_DUMMY_KNOB": "3"})).dummy_knob == 3


def test_settings_are_frozen_and_checked_once(weights, calib):
    s = cfg.make_settings(weights=str(weights), target="esp32s3", calib=str(calib), num_calib=8)
    with pytest.raises(AttributeError, match="frozen"):
        s.imgsz = 320
    assert s.replace(imgsz=320).imgsz == 320 and s.imgsz == cfg.IMGSZ
    with pytest.raises(UserError, match="not a multiple of 32"):
        s.replace(imgsz=100)
    with pytest.raises(UserError, match="unknown build setting 'imgsize'"):
        cfg.make_settings(imgsize=320)
    with pytest.raises(UserError, match="--int16-layers only makes sense with --bits 8"):
        s.replace(bits=16, int16_layers="/model.0/conv/Conv")
    with pytest.raises(UserError, match="CONFIG_YOLO11_POSE_CALIB_MODE 'round'"):
        cfg.make_settings(source="cmake", calib_mode="round")
    assert cfg.make_settings(source="cmake", export_test_values="y").export_test_values is True


def test_same_settings_same_build_key(weights, calib, tmp_path):
    """A rebuild with identical settings is a no-op: the key survives the manifest's JSON and depends on content, not
    on how the settings were given (CLI, Python, defaults spelled out or not)."""
    s = cli._settings(cli._parse(_build_args(weights, calib, tmp_path)))
    key = build.build_key(s)
    assert json.loads(json.dumps(key)) == key
    same = cfg.make_settings(weights=str(weights), target="esp32p4", calib=str(calib), num_calib=8, branch=None,
                             int16_layers=[], imgsz=cfg.IMGSZ, device="cuda:0", force=True, error_report=True)
    assert build.build_key(same) == key  # device, force, error_report: not what the files are made of
    (calib / "0.jpg").touch()
    assert build.build_key(s) == key
    assert build.build_key(s.replace(seed=1)) != key
    assert build.build_key(s.replace(recipe="accurate")) != key
    weights.write_bytes(b"retrained")
    assert build.build_key(s)["weights_sha256"] != key["weights_sha256"]


def test_python_entry_points_take_the_settings_by_name():
    """build.build and quantize.quantize keep their documented signatures: the rest goes through make_settings."""
    import inspect

    assert list(inspect.signature(build.build).parameters)[:7] == ["weights", "imgsz", "target", "bits", "calib",
                                                                   "num_calib", "out_dir"]
    assert list(inspect.signature(quantize.quantize).parameters)[:6] == ["onnx_path", "target", "bits", "calib",
                                                                         "num_calib", "out_dir"]
    with pytest.raises(UserError, match="unknown build setting 'calib_mod'"):
        build.build("yolo11n-pose.pt", 640, "esp32p4", 8, "calib", 8, "out", calib_mod="square")
