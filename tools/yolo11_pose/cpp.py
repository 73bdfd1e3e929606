"""Run the component's C++ core on the host: the cross-check of the device code against the Python reference.

The first call builds ``tests/host`` (CMake, host g++ with ESP-IDF's C++ flags plus ASan/UBSan) into a cache folder
(``$YOLO11_POSE_HOST_BUILD`` or ``~/.cache/yolo11_pose/host-build``) and rebuilds whenever a C++ source changes. Calls
then go to one long-lived ``yolo11_pose_host`` process (a batch: one request line plus raw bytes per call), so the
per-image cost is a pipe round trip, not a process start.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .decode import (
    DEFAULT_CONF,
    DEFAULT_IOU,
    DEFAULT_KPT_THR,
    DEFAULT_MAX_DET,
    OUTPUT_NAMES,
    Pose,
)
from .pixels import BYTES_PER_PIXEL
from .preprocess import PAD_VALUE, TARGET_ROUNDING, Letterbox

VARIANTS = {"asan": ["-DYOLO11_POSE_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
            "release": ["-DYOLO11_POSE_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"]}
_SOURCE_DIRS = ("include", "src", "tests/host")


class CppError(ValueError):
    """The C++ core refused the input; ``code`` is its status name (e.g. ``crop_out_of_bounds``)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"C++ core: {code}: {message}")
        self.code = code


def source_root() -> Path:
    """The component root holding include/, src/ and tests/host/ (``$YOLO11_POSE_SOURCE_DIR`` overrides)."""
    root = Path(os.environ.get("YOLO11_POSE_SOURCE_DIR") or Path(__file__).resolve().parents[2])
    if not (root / "tests/host/CMakeLists.txt").is_file() or not (root / "include/yolo11_pose").is_dir():
        raise RuntimeError(f"C++ sources not found under {root}; run from a checkout of the repository or set "
                           "YOLO11_POSE_SOURCE_DIR to it")
    return root


def build_dir(variant: str = "asan") -> Path:
    base = os.environ.get("YOLO11_POSE_HOST_BUILD")
    base = Path(base) if base else Path.home() / ".cache" / "yolo11_pose" / "host-build"
    return base if variant == "asan" else base.with_name(base.name + "-" + variant)


def _fingerprint(root: Path, variant: str) -> str:
    h = hashlib.sha256(variant.encode())
    h.update((shutil.which(os.environ.get("CXX", "g++")) or "").encode())
    for d in _SOURCE_DIRS:
        for p in sorted((root / d).rglob("*")):
            if p.is_file() and p.suffix in (".cpp", ".hpp", ".h", ".txt", ".cmake"):
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def build(variant: str = "asan", quiet: bool = True) -> Path:
    """Configure and build the host project if any source changed; returns the build folder."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown build variant {variant!r}; use one of {', '.join(VARIANTS)}")
    for tool in ("cmake", os.environ.get("CXX", "g++")):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found; install cmake and g++ to build the C++ core on the host")
    root = source_root()
    out = build_dir(variant)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / ".yolo11_pose_stamp"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build once
        fp = _fingerprint(root, variant)
        if stamp.is_file() and stamp.read_text() == fp and (out / "yolo11_pose_host").is_file():
            return out
        cache = out / "CMakeCache.txt"
        if cache.is_file() and str(root / "tests/host") not in cache.read_text(errors="replace"):
            cache.unlink()  # the cache belongs to another checkout
        cmds = [["cmake", "-S", str(root / "tests/host"), "-B", str(out), *VARIANTS[variant]],
                ["cmake", "--build", str(out), "-j", str(min(os.cpu_count() or 2, 8))]]
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode:
                tail = (r.stdout + r.stderr)[-4000:]
                raise RuntimeError(f"building the C++ host tools failed ({' '.join(cmd[:2])}):\n{tail}")
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(fp)
        tmp.replace(stamp)
    return out


def executable(name: str = "yolo11_pose_host", variant: str = "asan") -> Path:
    return build(variant) / name


class _Host:
    """One yolo11_pose_host process serving requests over pipes."""

    def __init__(self, exe: Path):
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the process
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                     env=env)
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _died(self) -> RuntimeError:
        self.proc.wait()
        self._err.seek(0)
        tail = self._err.read().decode(errors="replace")[-4000:]
        return RuntimeError(f"yolo11_pose_host exited with status {self.proc.returncode}:\n{tail}")

    def request(self, header: str, payload: bytes = b"") -> tuple[dict, bytes]:
        with self.lock:
            try:
                self.proc.stdin.write(f"{header} bytes={len(payload)}\n".encode() + payload)
                self.proc.stdin.flush()
            except BrokenPipeError:
                raise self._died() from None
            line = self.proc.stdout.readline()
            if not line:
                raise self._died()
            reply = json.loads(line)
            data = b""
            if reply.get("status") == "ok" and reply.get("bytes"):
                data = self.proc.stdout.read(reply["bytes"])
                if len(data) != reply["bytes"]:
                    raise self._died()
        if reply.get("status") != "ok":
            raise CppError(reply.get("code", "error"), reply.get("message", ""))
        return reply, data

    def close(self) -> None:
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._err.close()


_hosts: dict[str, _Host] = {}
_hosts_lock = threading.Lock()


def _host(variant: str = "asan") -> _Host:
    exe = executable(variant=variant)
    with _hosts_lock:
        h = _hosts.get(variant)
        if h is None or not h.alive() or h.proc.args[0] != str(exe):
            if h is not None:
                h.close()
            h = _hosts[variant] = _Host(exe)
        return h


@atexit.register
def close() -> None:
    """Stop the host processes (they also stop when Python exits)."""
    with _hosts_lock:
        for h in _hosts.values():
            h.close()
        _hosts.clear()


def _rounding(rounding: str) -> str:
    return TARGET_ROUNDING.get(rounding, rounding)


def _csv(values) -> str:
    return ",".join(repr(float(v)) if isinstance(v, float) else str(int(v)) for v in values)


def preprocess(frame, dst_w: int, dst_h: int, exponent: int, bits: int = 8, rounding: str = "half_even",
               fmt: str = "rgb888", width: int | None = None, height: int | None = None, stride: int | None = None,
               pad=PAD_VALUE, crop=None, mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), letterbox: bool = True,
               variant: str = "asan") -> tuple[np.ndarray, Letterbox]:
    """The C++ preprocessor's model input (dst_h x dst_w x 3, int8/int16) and letterbox for one frame.

    ``frame`` is an HxWx3 uint8 RGB array (fmt rgb888) or the raw bytes of a ``fmt`` frame with ``width``/``height``.
    ``rounding`` is half_even/half_up or a target name (esp32p4/esp32s3).
    """
    if isinstance(frame, np.ndarray) and frame.ndim == 3:
        height, width = frame.shape[:2] if width is None else (height, width)
        data = np.ascontiguousarray(frame).tobytes()
    elif frame is None:
        data = b""
    else:
        data = bytes(frame)
    if width is None or height is None:
        raise ValueError("give width and height for a raw frame")
    pads = (pad,) * 3 if np.isscalar(pad) else tuple(pad)
    parts = [f"pre w={int(width)} h={int(height)} fmt={fmt} dst={int(dst_w)}x{int(dst_h)} bits={int(bits)}",
             f"exp={int(exponent)} round={_rounding(rounding)} pad={_csv(pads)} mean={_csv(map(float, mean))}",
             f"std={_csv(map(float, std))} letterbox={int(bool(letterbox))} crop={_csv(crop) if crop else 'none'}"]
    if stride is not None:
        parts.append(f"stride={int(stride)}")
    reply, data = _host(variant).request(" ".join(parts), data)
    lbd = reply["letterbox"]
    arr = np.frombuffer(data, np.int8 if bits == 8 else np.int16).reshape(dst_h, dst_w, 3)
    lb = Letterbox(src_w=lbd["src_w"], src_h=lbd["src_h"], dst_w=lbd["dst_w"], dst_h=lbd["dst_h"],
                   new_w=lbd["new_w"], new_h=lbd["new_h"], left=lbd["left"], top=lbd["top"], right=lbd["right"],
                   bottom=lbd["bottom"], inv_scale_x=float(np.float32(lbd["inv_scale_x"])),
                   inv_scale_y=float(np.float32(lbd["inv_scale_y"])),
                   crop=tuple(lbd["crop"]) if lbd["crop"] else None)
    return arr, lb


def postprocess_raw(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
                    conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
                    max_det: int = DEFAULT_MAX_DET, kpt_shape=None, variant: str = "asan") -> dict:
    """The C++ postprocessor's reply: ``poses`` with cls, score, box, box_int and kpts [x, y, conf, ix, iy, visible]."""
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise ValueError(f"outputs lack {', '.join(missing)}; export the model with `yolo11-pose export`")
    specs, payload = [], bytearray()
    for i, name in enumerate(OUTPUT_NAMES):
        t = outputs[name]
        if not isinstance(t, tuple) or len(t) != 2:
            raise ValueError(f"{name}: the C++ postprocessor takes quantized (q_array, exponent) outputs")
        q, exp = np.asarray(t[0]), int(t[1])
        if q.dtype not in (np.int8, np.int16):
            raise ValueError(f"{name}: dtype {q.dtype} is not int8/int16")
        if q.ndim != 4 or q.shape[0] != 1:
            raise ValueError(f"{name}: expected a 1xHxWxC NHWC tensor, got shape {q.shape}")
        if len(payload) % 2:
            payload += b"\0"
        payload += np.ascontiguousarray(q).tobytes()
        specs.append(f"t{i}={q.dtype.name},{exp},{q.shape[1]},{q.shape[2]},{q.shape[3]}")
    head = [f"post input={int(input_w)}x{int(input_h)} conf={float(conf)!r} iou={float(iou)!r}",
            f"kpt_thr={float(kpt_thr)!r} max_det={int(max_det)}"]
    if kpt_shape is not None:
        head.append(f"kpt={int(kpt_shape[0])},{int(kpt_shape[1])}")
    if letterbox is not None:
        x0, y0, x1, y1 = letterbox.bounds
        head.append("lb=" + _csv([letterbox.src_w, letterbox.src_h, letterbox.left, letterbox.top, letterbox.right,
                                  letterbox.bottom, float(letterbox.inv_scale_x), float(letterbox.inv_scale_y),
                                  x0, y0, x1, y1]))
    reply, _ = _host(variant).request(" ".join(head + specs), bytes(payload))
    return reply


def postprocess(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
                conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
                max_det: int = DEFAULT_MAX_DET, kpt_shape=None, variant: str = "asan") -> list[Pose]:
    """Same signature and result type as ``decode.decode`` for quantized outputs, computed by the C++ core."""
    reply = postprocess_raw(outputs, input_w, input_h, letterbox, conf, iou, kpt_thr, max_det, kpt_shape, variant)
    bounds = letterbox.bounds if letterbox is not None else (0, 0, input_w, input_h)
    poses = []
    for p in reply["poses"]:
        k = np.array([row[:3] for row in p["kpts"]], np.float64).reshape(-1, 3)
        poses.append(Pose(int(p["cls"]), float(p["score"]), np.array(p["box"], np.float64), k, kpt_thr, bounds))
    return poses


__all__ = [
    "BYTES_PER_PIXEL",
    "CppError",
    "build",
    "build_dir",
    "close",
    "executable",
    "postprocess",
    "postprocess_raw",
    "preprocess",
    "source_root",
]
