"""The device's input pipeline, written once.

Everything that simulates what the chip feeds the model (calibration, the host twin, evaluation, golden files for the
test apps) goes through this module, and the C++ preprocessor is tested byte for byte against it. The arithmetic
follows ESP-DL's ImagePreprocessor / ImageTransformer / NormQuant in float32, because that is what the chip computes:
the letterbox border comes from ``int(float32 scale * src)``, nearest-neighbour sampling from
``min(int(i * float32(src/dst)), src-1)``, and the input table from ``round(float32(v - mean) * (1/std) * 2^-exp)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo11_pose import cfg

F32 = np.float32

#: ESP-DL rounds half-to-even where the chip's SIMD unit does (ESP32-P4) and half-up elsewhere (ESP32-S3).
TARGET_ROUNDING = dict(cfg.TARGET_ROUNDING)  # {"esp32p4": "half_even", "esp32s3": "half_up"}
TARGETS = tuple(TARGET_ROUNDING)
PAD_VALUE = 114  # Ultralytics' letterbox grey, also what the reference firmware pads with
MEAN = 0.0
STD = 255.0  # the model takes RGB / 255


@dataclass(frozen=True)
class Letterbox:
    """Where the (cropped) source image lands inside the model input, and how to map back."""

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    new_w: int
    new_h: int
    left: int
    top: int
    right: int
    bottom: int
    inv_scale_x: float  # float32(src / new), as ESP-DL computes it; maps model-input px back to source px
    inv_scale_y: float
    crop: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) in the source image, x1/y1 exclusive

    @property
    def origin(self) -> tuple[int, int]:
        return (self.crop[0], self.crop[1]) if self.crop else (0, 0)

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """Region results are clipped to, in source-image pixels."""
        if self.crop:
            return self.crop
        return (0, 0, self.src_w, self.src_h)

    def to_source(self, x, y):
        """Model-input coordinates -> source-image coordinates (float64 arrays)."""
        ox, oy = self.origin
        x = (np.asarray(x, np.float64) - self.left) * float(self.inv_scale_x) + ox
        y = (np.asarray(y, np.float64) - self.top) * float(self.inv_scale_y) + oy
        return x, y

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_crop(src_w: int, src_h: int, crop) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in crop)
    if not (0 <= x0 < x1 <= src_w and 0 <= y0 < y1 <= src_h):
        raise ValueError(f"crop {crop} is outside the {src_w}x{src_h} image; give x0<x1<=width, y0<y1<=height")
    return (x0, y0, x1, y1)


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int, crop=None) -> Letterbox:
    """ESP-DL's letterbox: scale to fit, pad only the limiting axis, half the padding before (rounded down)."""
    if src_w <= 0 or src_h <= 0 or dst_w <= 0 or dst_h <= 0:
        raise ValueError(f"image sizes must be positive, got source {src_w}x{src_h} and model input {dst_w}x{dst_h}")
    crop = _check_crop(src_w, src_h, crop)
    w = crop[2] - crop[0] if crop else src_w
    h = crop[3] - crop[1] if crop else src_h
    sx = F32(dst_w) / F32(w)
    sy = F32(dst_h) / F32(h)
    scale = min(sx, sy)
    left = right = top = bottom = 0
    if sx < sy:
        pad = dst_h - int(F32(scale * F32(h)))
        top, bottom = pad // 2, pad - pad // 2
    else:
        pad = dst_w - int(F32(scale * F32(w)))
        left, right = pad // 2, pad - pad // 2
    new_w, new_h = dst_w - left - right, dst_h - top - bottom
    if new_w <= 0 or new_h <= 0:
        raise ValueError(f"a {w}x{h} image does not fit a {dst_w}x{dst_h} input (it would be scaled to zero "
                         "pixels); crop it to a less extreme aspect ratio")
    inv_x = F32(w) / F32(new_w)
    inv_y = F32(h) / F32(new_h)
    return Letterbox(src_w, src_h, dst_w, dst_h, new_w, new_h, left, top, right, bottom,
                     float(inv_x), float(inv_y), crop)


def nearest_index(src_len: int, dst_len: int, offset: int = 0) -> np.ndarray:
    """ESP-DL's nearest-neighbour source index for each destination index (float32 math, clamped)."""
    inv = F32(src_len) / F32(dst_len)
    idx = (np.arange(dst_len, dtype=F32) * inv).astype(np.int64)  # float32 product, truncated like static_cast<int>
    return np.minimum(idx + offset, offset + src_len - 1)


def letterbox(rgb: np.ndarray, dst_w: int, dst_h: int, pad: int = PAD_VALUE, crop=None) -> tuple[np.ndarray, Letterbox]:
    """Device-exact letterbox of an HxWx3 uint8 image (nearest-neighbour resize, constant border)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.dtype != np.uint8 or rgb.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    lb = letterbox_geometry(w, h, dst_w, dst_h, crop)
    x0, y0, x1, y1 = lb.crop if lb.crop else (0, 0, w, h)
    out = np.full((dst_h, dst_w, rgb.shape[2]), pad, dtype=np.uint8)
    if (x1 - x0, y1 - y0) == (lb.new_w, lb.new_h):
        inner = rgb[y0:y1, x0:x1]  # ESP-DL skips the index maps when no resize is needed
    else:
        ys = nearest_index(y1 - y0, lb.new_h, y0)
        xs = nearest_index(x1 - x0, lb.new_w, x0)
        inner = rgb[ys[:, None], xs[None, :]]
    out[lb.top:lb.top + lb.new_h, lb.left:lb.left + lb.new_w] = inner
    return out, lb


def square_resize(rgb: np.ndarray, dst_w: int, dst_h: int) -> np.ndarray:
    """The reference recipe's calibration preprocessing: a bilinear squash to the model size (aspect not kept)."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((dst_w, dst_h), Image.BILINEAR))


def _round(x: np.ndarray, rounding: str) -> np.ndarray:
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "half_up":
        return np.floor(np.asarray(x, F32) + F32(0.5))  # floorf(x + 0.5f): the sum rounds to float32 first
    raise ValueError(f"unknown rounding {rounding!r}; use one of half_even (esp32p4), half_up (esp32s3)")


def quantize(x, exponent: int, bits: int, rounding: str) -> np.ndarray:
    """ESP-DL's quantize(): clip(round(float32(x) * 2^-exponent)) to the signed range of ``bits``."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    inv_scale = F32(2.0 ** -exponent)
    v = _round(np.asarray(x, F32) * inv_scale, rounding)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(v, lo, hi).astype(np.int8 if bits == 8 else np.int16)


def dequantize(q, exponent: int) -> np.ndarray:
    return np.asarray(q, np.float64) * (2.0 ** exponent)


def input_lut(exponent: int, bits: int, rounding: str, mean: float = MEAN, std: float = STD) -> np.ndarray:
    """The 256-entry table ESP-DL's NormQuant builds per channel: pixel value -> quantized model input."""
    v = (np.arange(256, dtype=F32) - F32(mean)) * (F32(1.0) / F32(std))
    return quantize(v, exponent, bits, rounding)


def device_input(rgb: np.ndarray, dst_w: int, dst_h: int, exponent: int, bits: int, rounding: str,
                 pad: int = PAD_VALUE, crop=None) -> tuple[np.ndarray, Letterbox]:
    """What the chip writes into the model's input tensor (HxWx3, NHWC without N) for an RGB888 frame."""
    boxed, lb = letterbox(rgb, dst_w, dst_h, pad, crop)
    return input_lut(exponent, bits, rounding)[boxed], lb


def float_input(rgb: np.ndarray, dst_w: int, dst_h: int, pad: int = PAD_VALUE, crop=None,
                mode: str = "letterbox") -> tuple[np.ndarray, Letterbox | None]:
    """Float model input (1x3xHxW in [0, 1]) for ONNX/torch/ESP-PPQ; ``mode`` 'letterbox' (device) or 'square'."""
    if mode == "letterbox":
        boxed, lb = letterbox(rgb, dst_w, dst_h, pad, crop)
    elif mode == "square":
        boxed, lb = square_resize(rgb, dst_w, dst_h), None
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}; use letterbox or square")
    x = boxed.astype(F32).transpose(2, 0, 1)[None] / F32(STD)
    return np.ascontiguousarray(x), lb


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _pil_open():
    """PIL's own Image.open: Ultralytics, once imported, replaces it with one that pip-installs a HEIF plugin on
    unknown files (not imported here: that alone takes seconds)."""
    import sys

    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open) if patches is not None else Image.open


#: Largest picture decoded (8192x8192): a 12000x12000 file would take GBs; the model sees at most 1312x1312 anyway.
MAX_PIXELS = 8192 * 8192
_READ_ERRORS = "give a JPEG, PNG or BMP file"


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} MP"


def open_image(path: str | Path):
    """Open a picture (header only) and check its size; ValueError (one line) for anything the tools cannot read.

    Pillow's own decompression-bomb warning and error become this one line, at a lower limit (MAX_PIXELS)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{path} is a folder, not an image; {_READ_ERRORS}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = _pil_open()(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image file; check the path") from None
    except Image.DecompressionBombError as e:
        import re

        n = re.search(r"\((\d+) pixels\)", str(e))
        claims = f" claims {_mp(int(n.group(1)))}" if n else " is too large"
        raise ValueError(f"{path}{claims}, over the {_mp(MAX_PIXELS)} ({int(MAX_PIXELS ** .5)}x"
                         f"{int(MAX_PIXELS ** .5)}) this tool decodes; downscale it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e.__class__.__name__}); {_READ_ERRORS}") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ValueError(f"{path} is {w}x{h} ({_mp(w * h)}), over the {_mp(MAX_PIXELS)} ({int(MAX_PIXELS ** .5)}x"
                         f"{int(MAX_PIXELS ** .5)}) this tool decodes; downscale it")
    if w <= 0 or h <= 0:
        im.close()
        raise ValueError(f"{path}: the image is {w}x{h}; {_READ_ERRORS}")
    return im


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header, with open_image's checks; no pixels decoded."""
    with open_image(path) as im:
        return im.size


def to_rgb8(im, name: str = "image") -> np.ndarray:
    """HxWx3 uint8 RGB of a Pillow image in any mode, or ValueError (one line) for one that has no such meaning.

    16-bit grey (I;16, I;16B, I;16L, I;16N; I with values 0..65535) keeps its top 8 bits, as an 8-bit camera would
    have seen it; alpha is dropped (as OpenCV and Ultralytics do); 32-bit float pictures (F) are refused, since
    nothing says whether 1.0 or 255 is white."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode.startswith("I;16") or mode == "I" and im.format in ("PNG", "PPM"):  # "I": 16-bit files, older Pillow
        v = np.asarray(im)
        lo, hi = (int(v.min()), int(v.max())) if v.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"{name}: a 16-bit image with values {lo}..{hi}; re-save it")
        g = (v.astype(np.uint16, copy=False) >> 8).astype(np.uint8)  # uint16 throughout: memory stays ~3 B/px
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode in ("I", "F") or mode.startswith(("I;32", "F;")):
        raise ValueError(f"{name}: a 32-bit {'float' if mode[0] == 'F' else 'integer'} image (Pillow mode {mode}) has "
                         "no defined white; save it as an 8-bit or 16-bit PNG")
    try:
        if mode == "PA" or mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")  # the palette's colours; alpha dropped below
        elif mode == "La":
            im = im.convert("LA")
        return np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as e:
        raise ValueError(f"{name}: pixel format {mode} cannot be converted to RGB ({e.__class__.__name__}); save it as "
                         "an 8-bit RGB PNG or JPEG") from None


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (EXIF orientation ignored, like a camera frame).

    The one loader of predict, eval and calibration: every pixel format Pillow opens is converted correctly
    (to_rgb8) or refused; ValueError (one line) for anything unreadable, too large or truncated."""
    im = open_image(path)
    try:
        with im:
            im.load()
            return to_rgb8(im, str(path))
    except ValueError:
        raise
    except (OSError, SyntaxError, EOFError) as e:
        detail = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ValueError(f"{path}: not a readable image ({detail}); {_READ_ERRORS}") from None
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to decode it; downscale it") from None
