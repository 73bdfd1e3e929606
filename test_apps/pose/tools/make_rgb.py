#!/usr/bin/env python3
"""Turn test pictures into raw RGB888 frames for the pose test app to embed, plus a C header listing them.

Decoding happens here, not on the chip, so the firmware and the host twin (which reads these same files to make the
expected poses) see identical pixels; a JPEG decoder on the chip rounds differently from PIL's.
Frame file: 16-byte little-endian header ``b"RGB8", width, height, stride`` (stride = width * 3), then the rows.

    make_rgb.py --out-dir DIR --header DIR/test_images.h [--max-side 640] ../frames/bus.png ../frames/zidane.png

Each frame is named after its picture's stem (``bus``) and written as ``DIR/<stem>.rgb``, which ESP-IDF embeds as
the symbol ``_binary_<stem>_rgb_start``. 8-bit PNGs that need no downscaling (the app's committed frames, see
../frames/README.md) are decoded with the standard library alone, so configuring the app needs no extra package;
other pictures (JPEG, or larger than --max-side) need Pillow. Writes every file atomically.
"""
from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path

HEADER = struct.Struct("<4sIII")
MAGIC = b"RGB8"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 6: 4}  # 8-bit gray, RGB, RGBA


class NeedsPillow(Exception):
    """The picture needs Pillow (not a PNG this module decodes, or it must be downscaled)."""


def read_png(path: Path) -> tuple[int, int, bytes]:
    """(width, height, RGB888 rows) of a non-interlaced 8-bit gray/RGB/RGBA PNG, as Pillow's convert("RGB") gives
    them (gray replicated, alpha dropped). Raises NeedsPillow for other PNG flavours, ValueError for damaged files."""
    data = path.read_bytes()
    if data[:8] != PNG_MAGIC:
        raise NeedsPillow(f"{path} is not a PNG")
    pos, idat, hdr = 8, [], None
    while pos + 12 <= len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or data[pos + 8 + n:pos + 12 + n] != struct.pack(">I", zlib.crc32(kind + body)):
            raise ValueError(f"damaged PNG ({kind.decode(errors='replace')} chunk)")
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    if hdr is None or not idat:
        raise ValueError("damaged PNG (no IHDR or IDAT chunk)")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in PNG_CHANNELS or interlace:
        raise NeedsPillow(f"{path}: {depth}-bit PNG of colour type {ctype}, interlace {interlace}")
    ch = PNG_CHANNELS[ctype]
    stride = w * ch
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ValueError(f"damaged PNG ({e})") from None
    if len(raw) != h * (stride + 1):
        raise ValueError("damaged PNG (pixel data of the wrong size)")
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:  # Sub
            for i in range(ch, stride):
                row[i] = (row[i] + row[i - ch]) & 255
        elif f == 2:  # Up
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif f == 3:  # Average
            for i in range(stride):
                row[i] = (row[i] + (((row[i - ch] if i >= ch else 0) + prev[i]) >> 1)) & 255
        elif f == 4:  # Paeth
            for i in range(stride):
                a = row[i - ch] if i >= ch else 0
                b, c = prev[i], (prev[i - ch] if i >= ch else 0)
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif f != 0:
            raise ValueError(f"damaged PNG (filter type {f})")
        rows.append(bytes(row))
        prev = row
    px = b"".join(rows)
    if ch == 1:
        px = bytes(v for v in px for _ in range(3))
    elif ch == 4:
        px = b"".join(px[i:i + 3] for i in range(0, len(px), 4))
    return w, h, px


def frame_bytes(path: Path, max_side: int) -> tuple[bytes, int, int]:
    try:
        w, h, px = read_png(path)
        if not max_side or max(w, h) <= max_side:
            return HEADER.pack(MAGIC, w, h, w * 3) + px, w, h
    except NeedsPillow:
        pass
    try:
        from PIL import Image
    except ImportError:
        raise NeedsPillow(f"{path}: decoding this picture{' or downscaling it' if max_side else ''} needs Pillow; "
                          "install it (python -m pip install pillow) or give an 8-bit PNG of at most --max-side "
                          "pixels") from None

    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            # Smaller frames keep the app inside 8 MB of flash (ESP32-S3 boards) with the model; the letterbox
            # from the frame to the model input is still a real downscale.
            s = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.BILINEAR)
        w, h = im.size
        return HEADER.pack(MAGIC, w, h, w * 3) + im.tobytes(), w, h


def write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def c_header(frames: list[tuple[str, int, int]]) -> str:
    lines = ["// Generated by test_apps/pose/tools/make_rgb.py: the embedded test frames. Do not edit.",
             "#pragma once", "#include <stdint.h>", ""]
    for name, _, _ in frames:
        lines.append(f'extern const uint8_t {name}_rgb_start[] asm("_binary_{name}_rgb_start");')
    lines += ["", "typedef struct {", "    const char *name;", "    const uint8_t *file; // header + RGB888 rows",
              "} test_frame_t;", "", "static const test_frame_t TEST_FRAMES[] = {"]
    lines += [f'    {{"{name}", {name}_rgb_start}},' for name, _, _ in frames]
    lines += ["};", f"#define TEST_FRAME_COUNT {len(frames)}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--header", required=True, help="C header to write (lists the frames)")
    ap.add_argument("--max-side", type=int, default=640, help="downscale larger pictures to this (0: keep size)")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args(argv)
    if a.max_side < 0:
        print(f"error: --max-side must be >= 0, got {a.max_side}", file=sys.stderr)
        return 2
    frames, seen = [], set()
    for img in a.images:
        p = Path(img)
        name = re.sub(r"[^A-Za-z0-9]", "_", p.stem)
        if name in seen:
            print(f"error: two pictures map to the frame name {name!r}; rename one", file=sys.stderr)
            return 2
        seen.add(name)
        try:
            data, w, h = frame_bytes(p, a.max_side)
        except FileNotFoundError:
            print(f"error: {p}: no such picture; check the path", file=sys.stderr)
            return 2
        except NeedsPillow as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (OSError, ValueError) as e:
            print(f"error: {p}: not a readable picture ({e}); give JPEG/PNG files", file=sys.stderr)
            return 2
        write_atomic(Path(a.out_dir) / f"{name}.rgb", data)
        frames.append((name, w, h))
    write_atomic(Path(a.header), c_header(frames).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
