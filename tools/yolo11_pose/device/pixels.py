"""Camera pixel formats <-> RGB888, with ESP-DL's exact integer formulas.

``to_rgb888`` is what the chip sees: the C++ preprocessor (and ESP-DL's ImageTransformer) convert each sampled pixel
with these formulas, so ``preprocess.device_input(to_rgb888(frame, ...), ...)`` is the device-exact model input for a
frame in any supported format. ``from_rgb888`` makes test frames (its RGB->YUV direction is a plain BT.601 choice;
only the decoding side has to match the chip).
"""
from __future__ import annotations

import numpy as np

#: Format names shared with the C++ core (``yolo11_pose::parse_pixel_format``) and the host CLI.
FORMATS = ("rgb888", "bgr888", "rgb565le", "rgb565be", "gray8", "yuyv")
BYTES_PER_PIXEL = {"rgb888": 3, "bgr888": 3, "rgb565le": 2, "rgb565be": 2, "gray8": 1, "yuyv": 2}


def _check_format(fmt: str) -> None:
    if fmt not in BYTES_PER_PIXEL:
        raise ValueError(f"unknown pixel format {fmt!r}; use one of {', '.join(FORMATS)}")


def _rows(buf, w: int, h: int, fmt: str, stride: int | None) -> np.ndarray:
    """The frame as an (h, w * bytes_per_pixel) uint8 array, honouring a row stride."""
    _check_format(fmt)
    if w <= 0 or h <= 0:
        raise ValueError(f"frame size must be positive, got {w}x{h}")
    if fmt == "yuyv" and w % 2:
        raise ValueError(f"a YUYV frame needs an even width, got {w}")
    bpp = BYTES_PER_PIXEL[fmt]
    stride = w * bpp if stride is None else int(stride)
    if stride < w * bpp:
        raise ValueError(f"stride {stride} is shorter than a row of {w} {fmt} pixels ({w * bpp} bytes)")
    a = np.frombuffer(bytes(buf) if not isinstance(buf, np.ndarray) else buf.tobytes(), np.uint8)
    if a.size < stride * h:
        raise ValueError(f"buffer has {a.size} bytes, a {w}x{h} {fmt} frame with stride {stride} needs {stride * h}")
    return a[: stride * h].reshape(h, stride)[:, : w * bpp]


def rgb565_to_rgb888(v: np.ndarray) -> np.ndarray:
    """ESP-DL expands RGB565 by shifting (the low bits stay zero): 0xFFFF -> (248, 252, 248)."""
    v = v.astype(np.uint32)
    return np.stack([(v & 0xF800) >> 8, (v & 0x07E0) >> 3, (v & 0x001F) << 3], -1).astype(np.uint8)


def yuv_to_rgb888(y, u, v) -> np.ndarray:
    """ESP-DL's yuv2rgb888: 14-bit fixed point, +0.5 then arithmetic shift (floor), clamped to 0..255."""
    y, u, v = (np.asarray(a, np.int64) for a in (y, u, v))
    u_, v_ = u - 128, v - 128
    r = y + ((22987 * v_ + 8192) >> 14)
    g = y + ((-5636 * u_ - 11698 * v_ + 8192) >> 14)
    b = y + ((29049 * u_ + 8192) >> 14)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def to_rgb888(buf, w: int, h: int, fmt: str, stride: int | None = None) -> np.ndarray:
    """Decode a frame to HxWx3 uint8 RGB exactly as the device does (gray is replicated to 3 channels)."""
    rows = _rows(buf, w, h, fmt, stride)
    if fmt == "rgb888":
        return rows.reshape(h, w, 3).copy()
    if fmt == "bgr888":
        return rows.reshape(h, w, 3)[..., ::-1].copy()
    if fmt in ("rgb565le", "rgb565be"):
        p = rows.reshape(h, w, 2).astype(np.uint16)
        v = p[..., 0] | (p[..., 1] << 8) if fmt == "rgb565le" else (p[..., 0] << 8) | p[..., 1]
        return rgb565_to_rgb888(v)
    if fmt == "gray8":
        return np.repeat(rows.reshape(h, w, 1), 3, axis=2)
    # yuyv: Y0 U Y1 V per pixel pair; both pixels of a pair share U and V
    q = rows.reshape(h, w // 2, 4)
    y = q[..., [0, 2]].reshape(h, w)
    u = np.repeat(q[..., 1], 2, axis=1)
    v = np.repeat(q[..., 3], 2, axis=1)
    return yuv_to_rgb888(y, u, v)


def rgb888_to_gray(rgb: np.ndarray) -> np.ndarray:
    """ESP-DL's rgb8882gray (15-bit coefficients, rounded)."""
    c = np.asarray(rgb, np.int64)
    return ((9798 * c[..., 0] + 19235 * c[..., 1] + 3735 * c[..., 2] + 16384) >> 15).astype(np.uint8)


def from_rgb888(rgb: np.ndarray, fmt: str, stride: int | None = None) -> bytes:
    """Encode an HxWx3 uint8 RGB image as a frame of ``fmt`` (for tests and fixtures); pad bytes are 0xA5."""
    _check_format(fmt)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    c = rgb.astype(np.int64)
    if fmt == "rgb888":
        body = rgb.reshape(h, w * 3)
    elif fmt == "bgr888":
        body = rgb[..., ::-1].reshape(h, w * 3)
    elif fmt in ("rgb565le", "rgb565be"):
        v = ((c[..., 0] >> 3) << 11) | ((c[..., 1] >> 2) << 5) | (c[..., 2] >> 3)  # ESP-DL rgb8882rgb565
        lo, hi = (v & 0xFF).astype(np.uint8), (v >> 8).astype(np.uint8)
        body = np.stack([lo, hi] if fmt == "rgb565le" else [hi, lo], -1).reshape(h, w * 2)
    elif fmt == "gray8":
        body = rgb888_to_gray(rgb)
    else:
        if w % 2:
            raise ValueError(f"a YUYV frame needs an even width, got {w}")
        r, g, b = c[..., 0], c[..., 1], c[..., 2]
        y = np.clip((19595 * r + 38470 * g + 7471 * b + 32768) >> 16, 0, 255)  # BT.601 full range
        u = np.clip(((-11059 * r - 21709 * g + 32768 * b + 32768) >> 16) + 128, 0, 255)
        v = np.clip(((32768 * r - 27439 * g - 5329 * b + 32768) >> 16) + 128, 0, 255)
        u2 = (u[:, 0::2] + u[:, 1::2] + 1) >> 1
        v2 = (v[:, 0::2] + v[:, 1::2] + 1) >> 1
        body = np.stack([y[:, 0::2], u2, y[:, 1::2], v2], -1).reshape(h, w * 2).astype(np.uint8)
    bpp = BYTES_PER_PIXEL[fmt]
    stride = w * bpp if stride is None else int(stride)
    if stride < w * bpp:
        raise ValueError(f"stride {stride} is shorter than a row of {w} {fmt} pixels ({w * bpp} bytes)")
    out = np.full((h, stride), 0xA5, np.uint8)
    out[:, : w * bpp] = body
    return out.tobytes()
