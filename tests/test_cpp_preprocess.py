"""The C++ preprocessor (host build) against the Python device-exact preprocessing, byte for byte."""
from __future__ import annotations

import numpy as np
import pytest
from yolo11_pose.device import cpp, pixels
from yolo11_pose.device.preprocess import (
    device_input,
    input_lut,
    letterbox,
    load_rgb,
)

from .conftest import ultralytics_asset

pytestmark = pytest.mark.cpp


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_rgb(ultralytics_asset("bus.jpg"))  # 810x1080 RGB


def _frame(photo, w, h, x=37, y=101):
    return np.ascontiguousarray(photo[y:y + h, x:x + w])


SIZES = [(96, 61), (62, 97), (320, 240), (200, 200), (810, 1080)]  # odd, portrait, landscape, square, full photo
CROPS = {(96, 61): (3, 5, 91, 60), (62, 97): (1, 0, 62, 50), (320, 240): (17, 9, 250, 239), (200, 200): None,
         (810, 1080): (100, 200, 611, 901)}


@pytest.mark.parametrize("fmt", pixels.FORMATS)
@pytest.mark.parametrize("rounding", ["half_even", "half_up"])
def test_preprocess_matches_python(photo, fmt, rounding):
    for (w, h) in SIZES:
        if fmt == "yuyv" and w % 2:
            continue
        rgb_src = _frame(photo, w, h) if (w, h) != (810, 1080) else photo
        frame = pixels.from_rgb888(rgb_src, fmt)
        seen = pixels.to_rgb888(frame, w, h, fmt)  # what the chip decodes
        for crop in (None, CROPS[(w, h)]):
            for dst, bits, exp in (((64, 64), 8, -7), ((96, 64), 16, -14), ((320, 320), 8, -6)):
                want, lb_py = device_input(seen, dst[0], dst[1], exp, bits, rounding, crop=crop)
                got, lb_cpp = cpp.preprocess(frame, dst[0], dst[1], exp, bits, rounding, fmt=fmt, width=w, height=h,
                                             crop=crop)
                assert lb_cpp == lb_py, (fmt, w, h, crop, dst)
                assert got.dtype == want.dtype and got.shape == want.shape
                diff = np.argwhere(got != want)
                assert not len(diff), f"{fmt} {w}x{h} crop={crop} dst={dst}: first mismatch at {diff[0].tolist()}"


def test_full_size_and_geometry_cache(photo):
    """810x1080 -> 640x640, the benchmark case; a second frame of another size must rebuild the index maps."""
    want, lb = device_input(photo, 640, 640, -7, 8, "half_even")
    got, lb2 = cpp.preprocess(photo, 640, 640, -7, 8, "esp32p4")
    assert lb2 == lb and (lb.left, lb.right, lb.new_w) == (80, 80, 480)
    np.testing.assert_array_equal(got, want)
    small = photo[:300, :500]
    want, _ = device_input(small, 640, 640, -7, 8, "half_up")
    got, _ = cpp.preprocess(np.ascontiguousarray(small), 640, 640, -7, 8, "esp32s3")
    np.testing.assert_array_equal(got, want)


def test_rounding_rules_differ_on_ties(photo):
    """std=1, exponent 1: every odd pixel value is an exact .5 tie, so the two targets' tables must differ."""
    frame = _frame(photo, 64, 48)
    for rounding in ("half_even", "half_up"):
        lut = input_lut(1, 8, rounding, mean=0.0, std=1.0)
        boxed, _ = letterbox(frame, 48, 48, 114)
        got, _ = cpp.preprocess(frame, 48, 48, 1, 8, rounding, mean=(0, 0, 0), std=(1, 1, 1))
        np.testing.assert_array_equal(got, lut[boxed])
    a, _ = cpp.preprocess(frame, 48, 48, 1, 8, "half_even", std=(1, 1, 1))
    b, _ = cpp.preprocess(frame, 48, 48, 1, 8, "half_up", std=(1, 1, 1))
    assert (a != b).any() and ((b.astype(int) - a.astype(int)) >= 0).all()


def test_stride_pad_and_stretch(photo):
    frame = _frame(photo, 50, 30)
    raw = pixels.from_rgb888(frame, "rgb565be", stride=50 * 2 + 6)
    seen = pixels.to_rgb888(raw, 50, 30, "rgb565be", stride=106)
    want, _ = device_input(seen, 64, 64, -7, 8, "half_even", pad=0)
    got, _ = cpp.preprocess(raw, 64, 64, -7, 8, "half_even", fmt="rgb565be", width=50, height=30, stride=106, pad=0)
    np.testing.assert_array_equal(got, want)
    # letterbox off: the whole input is image, like ESP-DL without enable_letterbox()
    got, lb = cpp.preprocess(frame, 64, 64, -7, 8, "half_even", letterbox=False)
    assert (lb.left, lb.top, lb.new_w, lb.new_h) == (0, 0, 64, 64)
    lut = input_lut(-7, 8, "half_even")
    ys = (np.arange(64, dtype=np.float32) * np.float32(30 / np.float32(64))).astype(int)
    xs = (np.arange(64, dtype=np.float32) * (np.float32(50) / np.float32(64))).astype(int)
    np.testing.assert_array_equal(got, lut[frame[ys[:, None], xs[None, :]]])


def test_pixel_formats_match_espdl_formulas():
    """Anchor the Python decoder on values worked from ESP-DL's formulas (the C++ unit tests check the same)."""
    assert pixels.to_rgb888(bytes([0x00, 0xF8]), 1, 1, "rgb565le").tolist() == [[[248, 0, 0]]]
    assert pixels.to_rgb888(bytes([0xF8, 0x00]), 1, 1, "rgb565be").tolist() == [[[248, 0, 0]]]
    assert pixels.to_rgb888(bytes([0xFF, 0xFF]), 1, 1, "rgb565le").tolist() == [[[248, 252, 248]]]
    assert pixels.to_rgb888(bytes([100, 50, 7, 200]), 2, 1, "yuyv").tolist() == [[[201, 75, 0], [108, 0, 0]]]
    assert pixels.to_rgb888(bytes([9]), 1, 1, "gray8").tolist() == [[[9, 9, 9]]]
    with pytest.raises(ValueError, match="even width"):
        pixels.to_rgb888(bytes(6), 3, 1, "yuyv")
    with pytest.raises(ValueError, match="unknown pixel format"):
        pixels.from_rgb888(np.zeros((2, 2, 3), np.uint8), "nv12")


@pytest.mark.parametrize("kwargs, code", [
    ({"frame": b"", "width": 4, "height": 4}, "null_data"),
    ({"frame": bytes(48), "width": 0, "height": 4}, "bad_image_size"),
    ({"frame": bytes(48), "width": 4, "height": 4, "fmt": "nv12"}, "unsupported_format"),
    ({"frame": bytes(48), "width": 4, "height": 4, "crop": (0, 0, 5, 4)}, "crop_out_of_bounds"),
    ({"frame": bytes(48), "width": 4, "height": 4, "crop": (2, 2, 2, 4)}, "crop_out_of_bounds"),
    ({"frame": bytes(48), "width": 4, "height": 4, "crop": (-1, 0, 2, 2)}, "crop_out_of_bounds"),
    ({"frame": bytes(24), "width": 3, "height": 4, "fmt": "yuyv"}, "bad_image_size"),
    ({"frame": bytes(47), "width": 4, "height": 4}, "buffer_too_small"),
    ({"frame": bytes(48), "width": 4, "height": 4, "std": (255, 0, 255)}, "invalid_argument"),
    ({"frame": bytes(48), "width": 4, "height": 4, "stride": 5}, "bad_image_size"),
])
def test_bad_input_gives_error_codes(kwargs, code):
    kw = {"fmt": "rgb888"}
    kw.update(kwargs)
    frame = kw.pop("frame")
    with pytest.raises(cpp.CppError) as e:
        cpp.preprocess(frame, 32, 32, -7, 8, "half_even", **kw)
    assert e.value.code == code
    # the same process keeps serving after an error
    out, _ = cpp.preprocess(np.zeros((4, 4, 3), np.uint8), 8, 8, -7, 8, "half_even")
    assert out.shape == (8, 8, 3)


def test_degenerate_letterbox_is_an_error():
    """4000x1 into 64x64 leaves no image row: ESP-DL rejects that border, so does the C++ core."""
    with pytest.raises(cpp.CppError) as e:
        cpp.preprocess(bytes(3 * 4000), 64, 64, -7, 8, "half_even", width=4000, height=1)
    assert e.value.code == "bad_image_size"
