"""Defaults and limits have one owner, tools/yolo11_pose/cfg/default.yaml: every place that cannot read it (Kconfig,
the C++ fallbacks, the host stand-in sdkconfig.h, idf_component.yml, the package version) must say the same."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from yolo11_pose import __version__, cfg
from yolo11_pose.device import decode, preprocess
from yolo11_pose.make import export, quantize

REPO = Path(__file__).resolve().parents[1]
D = cfg.DEFAULTS


def kconfig_symbol(name: str) -> dict:
    """`default` (the unconditional one) and `range` of one Kconfig symbol."""
    text = (REPO / "Kconfig").read_text()
    m = re.search(rf"^\s*config {name}\n(.*?)(?=^\s*(?:config|menuconfig|choice|endchoice|menu|endmenu)\b)", text,
                  re.S | re.M)
    assert m, f"Kconfig has no symbol {name}"
    body = m.group(1)
    defaults = re.findall(r"^\s*default (\S+)\s*$", body, re.M)  # skips `default X if Y`
    rng = re.search(r"^\s*range (\d+) (\d+)\s*$", body, re.M)
    return {"default": defaults[-1].strip('"') if defaults else None,
            "range": (int(rng.group(1)), int(rng.group(2))) if rng else None}


def cpp_member_default(path: Path, struct: str, member: str) -> float:
    body = re.search(rf"^struct {struct} \{{\n(.*?)^\}};", path.read_text(), re.S | re.M)
    assert body, f"{path.name}: no struct {struct}"
    m = re.search(rf"\b{member} = ([0-9.]+)f?[,;]", body.group(1))
    assert m, f"{path.name}: no default for {struct}::{member}"
    return float(m.group(1))


def cpp_define(path: Path, name: str) -> int:
    m = re.search(rf"#define {name} (\d+)\b", path.read_text())
    assert m, f"{path.name}: no #define {name}"
    return int(m.group(1))


def test_pyyaml_reads_the_file_as_the_tools_do():
    yaml = pytest.importorskip("yaml")  # Ultralytics depends on it, so it is there wherever the tools run
    assert yaml.safe_load(cfg.DEFAULT_YAML.read_text()) == D


def test_the_parser_refuses_what_it_cannot_read():
    for bad in ("conf 0.25", "conf:", "conf: 1\nconf: 2", "a-b: 1"):
        with pytest.raises(ValueError, match="key: value"):
            cfg.parse(bad)


def test_version_everywhere():
    yml = (REPO / "idf_component.yml").read_text()
    assert re.search(r'^version: "([^"]+)"', yml, re.M).group(1) == cfg.VERSION
    assert __version__ == cfg.VERSION


def test_python_uses_the_defaults():
    assert (decode.DEFAULT_CONF, decode.DEFAULT_IOU, decode.DEFAULT_KPT_THR, decode.DEFAULT_MAX_DET) == \
        (D["conf"], D["iou"], D["kpt_thr"], D["max_det"])
    assert (export.IMGSZ_MIN, export.IMGSZ_MAX, export.IMGSZ_STEP) == \
        (D["imgsz_min"], D["imgsz_max"], D["imgsz_multiple"])
    assert preprocess.TARGET_ROUNDING == {"esp32p4": D["rounding_esp32p4"], "esp32s3": D["rounding_esp32s3"]}
    assert quantize.DEFAULT_CALIB_MODE == D["calib_mode"]


def test_cli_defaults_are_the_devices():
    from yolo11_pose.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "cmd").choices
    pred = {a.dest: a.default for a in sub["predict"]._actions}
    assert (pred["conf"], pred["iou"], pred["kpt_thr"], pred["max_det"]) == \
        (D["conf"], D["iou"], D["kpt_thr"], D["max_det"])
    for cmd in ("build", "quantize"):
        opts = {a.dest: a.default for a in sub[cmd]._actions}
        assert (opts["bits"], opts["num_calib"], opts["calib_mode"]) == (D["bits"], D["num_calib"], D["calib_mode"])
    for cmd in ("build", "export"):
        assert {a.dest: a.default for a in sub[cmd]._actions}["imgsz"] == D["imgsz"]


def test_kconfig_defaults_and_ranges():
    per_mille = {"YOLO11_POSE_SCORE_THRESHOLD": "conf", "YOLO11_POSE_NMS_THRESHOLD": "iou",
                 "YOLO11_POSE_KPT_THRESHOLD": "kpt_thr"}
    for sym, key in per_mille.items():
        assert int(kconfig_symbol(sym)["default"]) == round(D[key] * 1000), sym
    # Every value menuconfig offers must be one the C++ postprocessor accepts (decode.py/postprocess.cpp ranges):
    # the score threshold is an open interval, so 0 and 1000 per mille must be out of reach.
    lo, hi = kconfig_symbol("YOLO11_POSE_SCORE_THRESHOLD")["range"]
    assert 0 < lo and hi < 1000
    for sym in ("YOLO11_POSE_NMS_THRESHOLD", "YOLO11_POSE_KPT_THRESHOLD"):
        lo, hi = kconfig_symbol(sym)["range"]
        assert 0 <= lo and hi <= 1000, sym
    md = kconfig_symbol("YOLO11_POSE_MAX_DETECTIONS")
    assert int(md["default"]) == D["max_det"] and md["range"] == (1, D["max_det_limit"])
    imgsz = kconfig_symbol("YOLO11_POSE_IMGSZ")
    assert int(imgsz["default"]) == D["imgsz"] and imgsz["range"] == (D["imgsz_min"], D["imgsz_max"])
    assert int(kconfig_symbol("YOLO11_POSE_NUM_CALIB")["default"]) == D["num_calib"]
    assert int(kconfig_symbol("YOLO11_POSE_BITS")["default"]) == D["bits"]
    assert kconfig_symbol("YOLO11_POSE_CALIB_MODE")["default"] == D["calib_mode"]
    assert kconfig_symbol("YOLO11_POSE_WEIGHTS")["default"] == D["weights"]


def test_threshold_ranges_match_the_cpp_postprocessor():
    """cfg.check_thresholds (the CLI's check) refuses exactly what Postprocessor::init/set_* refuse."""
    src = (REPO / "src" / "postprocess.cpp").read_text()
    assert "!(conf > 0.0 && conf < 1.0)" in src and "!(iou >= 0.f && iou <= 1.f)" in src
    assert "!(kpt_thr >= 0.0 && kpt_thr <= 1.0)" in src
    from yolo11_pose.util import UserError

    for ok in ({"conf": 0.001}, {"conf": 0.999}, {"iou": 0.0}, {"iou": 1.0}, {"kpt_thr": 0.0}, {"kpt_thr": 1.0}):
        cfg.check_thresholds(**ok)
    for bad in ({"conf": 0.0}, {"conf": 1.0}, {"conf": float("nan")}, {"iou": 1.01}, {"kpt_thr": -0.1},
                {"max_det": 0}):
        with pytest.raises(UserError):
            cfg.check_thresholds(**bad)


def test_cpp_fallbacks():
    post = REPO / "include" / "yolo11_pose" / "postprocess.hpp"
    for member, key in (("conf", "conf"), ("iou", "iou"), ("kpt_thr", "kpt_thr"), ("max_det", "max_det"),
                        ("input_w", "imgsz"), ("input_h", "imgsz")):
        assert cpp_member_default(post, "PostprocessConfig", member) == D[key], member
    pre = REPO / "include" / "yolo11_pose" / "preprocess.hpp"
    for member in ("dst_w", "dst_h"):
        assert cpp_member_default(pre, "PreprocessConfig", member) == D["imgsz"], member
    # Menuconfig's values when the adapter is built without the component's Kconfig, and the host stand-in.
    for path in (REPO / "src" / "yolo11_pose_espdl.cpp", REPO / "tests" / "host" / "stubs" / "sdkconfig.h"):
        assert cpp_define(path, "CONFIG_YOLO11_POSE_SCORE_THRESHOLD") == round(D["conf"] * 1000), path.name
        assert cpp_define(path, "CONFIG_YOLO11_POSE_NMS_THRESHOLD") == round(D["iou"] * 1000), path.name
        assert cpp_define(path, "CONFIG_YOLO11_POSE_KPT_THRESHOLD") == round(D["kpt_thr"] * 1000), path.name
        assert cpp_define(path, "CONFIG_YOLO11_POSE_MAX_DETECTIONS") == D["max_det"], path.name


def test_cpp_rounding_per_target():
    """The adapter picks the rounding rule per chip; it must be the one the tools simulate for that chip."""
    src = (REPO / "src" / "yolo11_pose_espdl.cpp").read_text()
    m = re.search(r"#if CONFIG_IDF_TARGET_(\w+)\s*\n\s*pc\.rounding = Rounding::(\w+);.*?\n#else\s*\n\s*"
                  r"pc\.rounding = Rounding::(\w+);", src, re.S)
    assert m, "yolo11_pose_espdl.cpp: rounding choice not found"
    name = {"HalfEven": "half_even", "HalfUp": "half_up"}
    chosen, rule, other = m.group(1).lower(), name[m.group(2)], name[m.group(3)]
    assert cfg.TARGET_ROUNDING[chosen] == rule
    assert all(r == other for t, r in cfg.TARGET_ROUNDING.items() if t != chosen)


def test_cmake_repeats_no_setting():
    """The CMake hook neither holds nor parses defaults and limits: the regeneration settings are made, checked and
    written by the tools (cmake_helper.py, from cfg.SETTINGS), the CMake only passes menuconfig's values on."""
    text = (REPO / "cmake" / "yolo11_pose_model.cmake").read_text()
    assert "yolo11_pose.make.cmake_helper" in text and "default.yaml" not in text
    regen = re.search(r"^function\(_yolo11_pose_regenerate .*?^endfunction", text, re.S | re.M).group(0)
    for literal in ("imgsz", "num_calib", "calib_mode", "--bits", '"yolo11n-pose.pt"', " 1280", "% 32", "--weights"):
        assert literal not in regen, literal


def test_kconfig_agrees_with_the_settings():
    """Every setting menuconfig offers (cfg.SETTINGS' kconfig) has its symbol, the same default (empty: the setting's
    own default), and a range whose ends the tools accept."""
    offered = [s for s in cfg.SETTINGS if s.kconfig]
    assert {s.name for s in offered} >= {"weights", "imgsz", "bits", "calib", "num_calib", "calib_mode",
                                         "int16_layers", "export_test_values"}
    for s in offered:
        sym = kconfig_symbol(f"YOLO11_POSE_{s.kconfig}")
        kdefault = sym["default"]
        assert kdefault is not None, s.kconfig
        if kdefault in ("", "n"):
            assert s.default in (None, (), False, ""), s.name
        else:
            assert getattr(cfg.make_settings(source="cmake", **{s.name: kdefault}), s.name) == s.default, s.name
        if sym["range"]:
            for end in sym["range"]:
                cfg.make_settings(source="cmake", **{s.name: end})  # raises for a value the tools refuse
    body = (REPO / "Kconfig").read_text()
    for name in ("BITS", "CALIB_MODE"):  # menuconfig choices set these through `default X if ...`
        found = set(re.findall(r"^\s*default \"?(\w+)\"? if YOLO11_POSE_\w+\s*$",
                               re.search(rf"config YOLO11_POSE_{name}\n(.*?)\n\n", body, re.S).group(1), re.M))
        assert found and found <= {str(c) for c in cfg.setting(name.lower()).choices}, name
