#!/usr/bin/env python3
"""Turn a picture into the raw frame the get_started example embeds: RGB565, big-endian (the byte order camera
drivers such as esp32-camera deliver), no header, centre-cropped to the frame's aspect ratio and resized.

    python tools/make_frame.py my_photo.jpg --out main/frame_240x320.rgb565be     # then change the name in main/

The committed frame was made from the pose test app's committed picture (see main/FRAME_LICENSE.md) with
    python tools/make_frame.py ../../test_apps/pose/frames/bus.png --out main/frame_240x320.rgb565be
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def make_frame(src: Path, width: int, height: int) -> bytes:
    im = Image.open(src).convert("RGB")
    w, h = im.size
    if w * height > h * width:  # wider than the frame: crop the sides
        cw, ch = round(h * width / height), h
    else:
        cw, ch = w, round(w * height / width)
    left, top = (w - cw) // 2, (h - ch) // 2
    im = im.crop((left, top, left + cw, top + ch)).resize((width, height), Image.Resampling.BOX)
    c = np.asarray(im, np.uint16)
    v = ((c[..., 0] >> 3) << 11) | ((c[..., 1] >> 2) << 5) | (c[..., 2] >> 3)  # as ESP-DL packs RGB888 to RGB565
    return v.astype(">u2").tobytes()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--width", type=int, default=240)
    ap.add_argument("--height", type=int, default=320)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if not a.image.is_file():
        print(f"error: {a.image} not found", file=sys.stderr)
        return 2
    if not (16 <= a.width <= 4096 and 16 <= a.height <= 4096):
        print("error: --width and --height must be in 16..4096", file=sys.stderr)
        return 2
    a.out.write_bytes(make_frame(a.image, a.width, a.height))
    print(f"{a.out}: {a.width}x{a.height} RGB565 big-endian, {a.width * a.height * 2} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
