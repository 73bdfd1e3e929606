"""One image loader for predict, eval and calibration: every pixel format Pillow opens is converted correctly or
refused in one line; oversized pictures and decompression bombs stop before decoding (issue 18)."""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from yolo11_pose.device import preprocess
from yolo11_pose.cli import main
from yolo11_pose.device.preprocess import image_size, load_rgb

from .conftest import SHARED, require_shared

BUS = SHARED / "data" / "samples" / "esp-dl-bus.jpg"


def write_png(path: Path, arr: np.ndarray, color_type: int, depth: int = 16, size=None) -> Path:
    """A PNG written byte by byte (Pillow cannot write 16-bit RGB): 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA.
    ``size`` overrides the header's width and height (a decompression bomb's claim)."""
    a = np.asarray(arr)
    h, w = a.shape[:2]
    dt = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + a[y].astype(dt).tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    w, h = size or (w, h)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
                     chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bus():
    require_shared(BUS)
    from PIL import Image

    with Image.open(BUS) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def grey(bus):
    from PIL import Image

    return np.asarray(Image.fromarray(bus).convert("L"))


def test_16bit_grey_png_is_scaled_not_clipped_to_white(tmp_path, grey):
    """The newcomer's silent wrong result: convert("RGB") of an I;16 picture is all white (rc 0, no poses)."""
    f = write_png(tmp_path / "g16.png", grey.astype(np.uint16) * 257, 0)
    got = load_rgb(f)
    assert got.shape == (*grey.shape, 3) and got.dtype == np.uint8
    assert np.array_equal(got, np.repeat(grey[:, :, None], 3, axis=2))
    # a 16-bit value keeps its top 8 bits (what an 8-bit camera would have delivered)
    write_png(tmp_path / "ramp.png", np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16) + 255, 0)
    assert np.array_equal(load_rgb(tmp_path / "ramp.png")[..., 0].ravel(), np.arange(256))


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B"])
def test_16bit_grey_modes_in_memory(mode, grey):
    from PIL import Image

    v = grey.astype(np.uint16) * 257
    raw = v.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    im = Image.frombytes(mode, (v.shape[1], v.shape[0]), raw)
    assert np.array_equal(preprocess.to_rgb8(im)[..., 1], grey)


@pytest.mark.parametrize("ctype,channels", [(2, 3), (4, 2), (6, 4)])
def test_16bit_colour_and_alpha_pngs(tmp_path, bus, grey, ctype, channels):
    base = bus if channels in (3, 4) else grey[:, :, None]
    arr = base.astype(np.uint16) * 257
    if channels in (2, 4):
        arr = np.dstack([arr, np.full(arr.shape[:2], 30000, np.uint16)])  # half-transparent: alpha is dropped
    got = load_rgb(write_png(tmp_path / f"c{ctype}.png", arr, ctype))
    want = bus if channels in (3, 4) else np.repeat(grey[:, :, None], 3, axis=2)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mode,tol", [("RGB", 0), ("RGBA", 0), ("RGBX", 0), ("L", None), ("LA", None), ("La", None),
                                      ("P", 40), ("PA", 40), ("CMYK", 0), ("YCbCr", 3), ("1", None), ("HSV", 3),
                                      ("LAB", 3)])
def test_every_8bit_mode_gives_the_picture(mode, tol, bus, grey):
    from PIL import Image

    src = Image.fromarray(bus)
    im = src.convert("P").convert("PA") if mode == "PA" else src.convert(mode)
    got = preprocess.to_rgb8(im)
    assert got.shape == bus.shape and got.dtype == np.uint8
    if mode in ("L", "LA", "La"):
        assert np.array_equal(got[..., 0], grey)
    elif mode == "1":
        assert set(np.unique(got)) <= {0, 255}
    else:
        assert np.abs(got.astype(int) - bus).mean() <= tol + 0.5, mode


@pytest.mark.parametrize("mode", ["F", "I"])
def test_modes_without_a_defined_white_are_refused_in_one_line(mode, bus):
    from PIL import Image

    im = Image.fromarray(bus).convert("L").convert(mode)  # no file format: nothing says where white is
    with pytest.raises(ValueError) as e:
        preprocess.to_rgb8(im, "x.tif")
    assert "\n" not in str(e.value) and "no defined white" in str(e.value), str(e.value)


def test_bombs_and_huge_pictures_are_refused_before_decoding(tmp_path, recwarn):
    bomb = write_png(tmp_path / "bomb.png", np.zeros((4, 4, 3), np.uint8), 2, 8, size=(50000, 50000))
    big = write_png(tmp_path / "big.png", np.zeros((4, 4), np.uint8), 0, 8, size=(12000, 12000))
    for f, needle in ((bomb, "claims 2500 MP"), (big, "12000x12000 (144 MP)")):
        for fn in (load_rgb, image_size):
            with pytest.raises(ValueError) as e:
                fn(f)
            assert needle in str(e.value) and "downscale" in str(e.value) and "\n" not in str(e.value)
    assert not [w for w in recwarn.list if "DecompressionBomb" in type(w.message).__name__], recwarn.list


def test_unreadable_files_are_one_line(tmp_path):
    require_shared(BUS)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(BUS.read_bytes()[:4000])
    text = tmp_path / "text.png"
    text.write_text("hello")
    for f, needle in ((cut, "not a readable image"), (text, "not a readable image"), (tmp_path, "is a folder"),
                      (tmp_path / "gone.png", "no such image file")):
        with pytest.raises(ValueError) as e:
            load_rgb(f)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_calibration_reads_16bit_grey_like_8bit(tmp_path, grey):
    """The same loader feeds calibration: a 16-bit grey calibration image gives the 8-bit one's batch."""
    from PIL import Image
    from yolo11_pose.make.quantize import calibration_batches

    f16 = write_png(tmp_path / "a16.png", grey.astype(np.uint16) * 257, 0)
    f8 = tmp_path / "a8.png"
    Image.fromarray(grey).save(f8)
    a = calibration_batches([f16] * 8, 96, "letterbox", progress=False)
    b = calibration_batches([f8] * 8, 96, "letterbox", progress=False)
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b))
    assert float(a[0].mean()) < 0.9  # not the all-white picture


@pytest.mark.slow
def test_predict_finds_the_same_people_in_16bit_grey_as_in_8bit(tmp_path, grey, capsys):
    """End to end through the CLI with the shipped ESP32-P4 416 model (the host twin)."""
    import json

    from PIL import Image

    from .conftest import REPO

    model = REPO / "models" / "esp32p4" / "yolo11n-pose-416-int8.espdl"
    f8 = tmp_path / "bus8.png"
    Image.fromarray(grey).save(f8)
    f16 = write_png(tmp_path / "bus16.png", grey.astype(np.uint16) * 257, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw Pillow warnings either
        assert main(["predict", "--model", str(model), "--image", str(f8), str(f16), "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    by = {n: [{k: v for k, v in r.items() if k != "image"} for r in rows if r["image"] == str(f)]
          for n, f in (("8", f8), ("16", f16))}
    assert len(by["8"]) >= 3 and by["16"] == by["8"], by
