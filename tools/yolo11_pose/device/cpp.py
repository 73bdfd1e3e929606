"""Run the component's C++ core on the host: the twin's postprocessor and the cross-check of the device code.

The first call builds the ``yolo11_pose_host`` bridge with CMake and the host compiler into a cache folder
(``$YOLO11_POSE_HOST_BUILD`` for the release build, other variants beside it with a ``-<variant>`` suffix; else
``~/.cache/yolo11_pose/host-build``, one sibling per variant) and rebuilds whenever a
C++ source changes. The sources ship with this package (``host/``: the bridge; ``host/component/``: the component's
``include/`` and ``src/``, copied in when the wheel is built; in a checkout they are read from the checkout). Two
variants: ``release`` (optimized; what the tools use) and ``asan`` (ASan/UBSan, built from ``tests/host`` with the
unit tests; what the test suite uses, through ``$YOLO11_POSE_HOST_VARIANT``). Calls then go to one long-lived
process (a batch: one request line plus raw bytes per call), so the per-image cost is a pipe round trip.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from yolo11_pose.device.decode import (
    DEFAULT_CONF,
    DEFAULT_IOU,
    DEFAULT_KPT_THR,
    DEFAULT_MAX_DET,
    OUTPUT_NAMES,
    Pose,
)
from yolo11_pose.device.head import HeadContract
from yolo11_pose.device.pixels import BYTES_PER_PIXEL
from yolo11_pose.device.preprocess import PAD_VALUE, TARGET_ROUNDING, Letterbox
from yolo11_pose.util import UserError

VARIANTS = {"asan": ["-DYOLO11_POSE_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
            "release": ["-DYOLO11_POSE_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"]}
HOST_DIR = Path(__file__).resolve().parent / "host"  # the bridge's CMake project, shipped in the package
_CHECKOUT = Path(__file__).resolve().parents[3]
_SUFFIXES = (".cpp", ".hpp", ".h", ".txt", ".cmake")


class CppError(ValueError):
    """The C++ core refused the input; ``code`` is its status name (e.g. ``crop_out_of_bounds``)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"C++ core: {code}: {message}")
        self.code = code


class HostBuildError(UserError):
    """The host cannot build the C++ core (no compiler, no CMake, a failed build): one line for the CLI."""


def default_variant() -> str:
    """``$YOLO11_POSE_HOST_VARIANT`` (the tests set ``asan``), else ``release``."""
    return os.environ.get("YOLO11_POSE_HOST_VARIANT") or "release"


def source_root() -> Path:
    """The component root holding include/ and src/: ``$YOLO11_POSE_SOURCE_DIR``, else the copy bundled in the
    installed package, else the checkout this module runs from."""
    env = os.environ.get("YOLO11_POSE_SOURCE_DIR")
    for root in [Path(env)] if env else [HOST_DIR / "component", _CHECKOUT]:
        if (root / "include/yolo11_pose/postprocess.hpp").is_file() and (root / "src/postprocess.cpp").is_file():
            return root
    where = env or f"{HOST_DIR / 'component'} or {_CHECKOUT}"
    raise HostBuildError(f"the component's C++ sources (include/, src/) are not in {where}; reinstall "
                         "yolo11-pose-esp, or set YOLO11_POSE_SOURCE_DIR to a checkout of the component")


def _project(root: Path, variant: str) -> Path:
    """CMake project for a variant: the tests' superset (tests/host) for asan in a checkout, else the bridge alone."""
    tests = root / "tests/host/CMakeLists.txt"
    return tests.parent if variant == "asan" and tests.is_file() else HOST_DIR


def build_dir(variant: str | None = None) -> Path:
    variant = variant or default_variant()
    base = os.environ.get("YOLO11_POSE_HOST_BUILD")
    if base:  # the tools' build (release) goes exactly there; another variant beside it
        return Path(base) if variant == "release" else Path(base + "-" + variant)
    base = Path.home() / ".cache" / "yolo11_pose" / "host-build"
    return base if variant == "asan" else base.with_name(base.name + "-" + variant)


def _toolchain() -> list[str]:
    """CMake arguments choosing the compiler and generator; one-line errors for what is missing."""
    if not shutil.which("cmake"):
        raise HostBuildError("cmake not found: the twin compiles the component's C++ postprocessor for this computer; "
                             "install CMake 3.16+ (e.g. `pip install cmake` or `apt install cmake`)")
    cxx_env = os.environ.get("CXX")
    if cxx_env:  # CMake reads $CXX itself (it may be a launcher plus a compiler)
        if not shutil.which(cxx_env.split()[0]):
            raise HostBuildError(f"CXX={cxx_env} not found: set CXX to a C++ compiler (g++ 11+ or clang 14+)")
        args = []
    else:
        cxx = next((shutil.which(n) for n in ("c++", "g++", "clang++") if shutil.which(n)), None)
        if not cxx:
            raise HostBuildError("no C++ compiler found (c++, g++, clang++): the twin compiles the component's C++ "
                                 "postprocessor for this computer; install g++ 11+ or clang 14+ (e.g. `apt install "
                                 "g++`), or set CXX")
        args = [f"-DCMAKE_CXX_COMPILER={cxx}"]
    if shutil.which("ninja"):
        return ["-G", "Ninja", *args]
    if shutil.which("make"):
        return ["-G", "Unix Makefiles", *args]
    raise HostBuildError("neither ninja nor make found: CMake needs one to build the twin's C++ postprocessor; "
                         "install one (e.g. `pip install ninja` or `apt install make`)")


def _sources(base: Path):
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base).parts
        # skip build folders someone made inside the tree, and the bundled component (hashed as the source root)
        if p.is_file() and p.suffix in _SUFFIXES and not any(x.startswith("build") or x in ("CMakeFiles", "component")
                                                              for x in rel[:-1]):
            yield p


def _fingerprint(config: str, project: Path, root: Path) -> str:
    h = hashlib.sha256(config.encode())
    for base in (root / "include", root / "src", project, HOST_DIR):
        for p in _sources(base):
            h.update(str(p.relative_to(base)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def build(variant: str | None = None, quiet: bool = True) -> Path:
    """Configure and build the host project if any source changed; returns the build folder."""
    variant = variant or default_variant()
    if variant not in VARIANTS:
        raise ValueError(f"unknown build variant {variant!r}; use one of {', '.join(VARIANTS)}")
    root = source_root()
    project = _project(root, variant)
    out = build_dir(variant)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / ".yolo11_pose_stamp"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build once
        fp = _fingerprint("\n".join([str(project), str(root), variant, os.environ.get("CXX", "")]), project, root)
        if stamp.is_file() and stamp.read_text() == fp and (out / "yolo11_pose_host").is_file():
            return out  # up to date: no compiler needed
        toolchain = _toolchain()
        print(f"compiling the component's C++ postprocessor for this computer into {out} (once per version; about a "
              "minute)", file=sys.stderr, flush=True)
        config = "\n".join([str(project), str(root), *toolchain])
        seen = out / ".yolo11_pose_config"
        if not seen.is_file() or seen.read_text() != config:
            # Another checkout, project, compiler or generator: CMake would refuse (or half-reuse) the old cache.
            (out / "CMakeCache.txt").unlink(missing_ok=True)
            shutil.rmtree(out / "CMakeFiles", ignore_errors=True)
        cmds = [["cmake", "-S", str(project), "-B", str(out), *toolchain, f"-DYOLO11_POSE_COMPONENT_DIR={root}",
                 *VARIANTS[variant]],
                ["cmake", "--build", str(out), "-j", str(min(os.cpu_count() or 2, 8))]]
        log = out / "build.log"
        with open(log, "w") as f:
            for cmd in cmds:
                r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, check=False)
                if r.returncode:
                    f.flush()
                    first = next((ln.strip() for ln in log.read_text(errors="replace").splitlines()
                                  if "error" in ln.lower()), "no error line")
                    raise HostBuildError(f"building the C++ postprocessor for the host failed ({first[:200]}); "
                                         f"full log: {log}")
        seen.write_text(config)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(fp)
        tmp.replace(stamp)
    return out


def executable(name: str = "yolo11_pose_host", variant: str | None = None) -> Path:
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


def _host(variant: str | None = None) -> _Host:
    variant = variant or default_variant()
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
               variant: str | None = None) -> tuple[np.ndarray, Letterbox]:
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


def _tensor_specs(outputs: dict, names, payload: bytearray | None) -> list[str]:
    specs = []
    for i, name in enumerate(names):
        t = outputs[name]
        if not isinstance(t, tuple) or len(t) != 2:
            raise ValueError(f"{name}: the C++ postprocessor takes quantized (q_array, exponent) outputs")
        q, exp = np.asarray(t[0]), int(t[1])
        if q.dtype not in (np.int8, np.int16):
            raise ValueError(f"{name}: dtype {q.dtype} is not int8/int16")
        if q.ndim != 4 or q.shape[0] != 1:
            raise ValueError(f"{name}: expected a 1xHxWxC NHWC tensor, got shape {q.shape}")
        if payload is not None:
            if len(payload) % 2:
                payload += b"\0"
            payload += np.ascontiguousarray(q).tobytes()
        specs.append(f"t{i}={q.dtype.name},{exp},{q.shape[1]},{q.shape[2]},{q.shape[3]}")
    return specs


def post_request(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
                 conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
                 max_det: int = DEFAULT_MAX_DET, kpt_shape=None, head: HeadContract | None = None) -> tuple[str, bytes]:
    """The bridge's `post` request (header line without `bytes=`, payload) for these outputs (see postprocess_raw)."""
    names = head.output_names if head is not None else OUTPUT_NAMES
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ValueError(f"outputs lack {', '.join(missing)}; export the model with `yolo11-pose export`")
    payload = bytearray()
    specs = _tensor_specs(outputs, names, payload)
    if head is not None:
        specs.insert(0, f"head={head.to_text()}")
    head_line = [f"post input={int(input_w)}x{int(input_h)} conf={float(conf)!r} iou={float(iou)!r}",
                 f"kpt_thr={float(kpt_thr)!r} max_det={int(max_det)}"]
    if kpt_shape is not None:
        head_line.append(f"kpt={int(kpt_shape[0])},{int(kpt_shape[1])}")
    if letterbox is not None:
        x0, y0, x1, y1 = letterbox.bounds
        head_line.append("lb=" + _csv([letterbox.src_w, letterbox.src_h, letterbox.left, letterbox.top,
                                       letterbox.right, letterbox.bottom, float(letterbox.inv_scale_x),
                                       float(letterbox.inv_scale_y), x0, y0, x1, y1]))
    return " ".join(head_line + specs), bytes(payload)


def postprocess_raw(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
                    conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
                    max_det: int = DEFAULT_MAX_DET, kpt_shape=None, variant: str | None = None,
                    head: HeadContract | None = None) -> dict:
    """The C++ postprocessor's reply: ``poses`` with cls, score, box, box_int and kpts [x, y, conf, ix, iy, visible].

    ``head``: the head contract the C++ core parses (None: none sent, so the legacy YOLO11 one, as for old files)."""
    line, payload = post_request(outputs, input_w, input_h, letterbox, conf, iou, kpt_thr, max_det, kpt_shape, head)
    reply, _ = _host(variant).request(line, payload)
    return reply


def head_contract(text: str | None = None, outputs: dict | None = None, input_w: int = 0, input_h: int = 0,
                  variant: str | None = None) -> dict:
    """The head contract as the C++ core sees it: ``text`` parsed (parse_head_contract), and with ``outputs``
    (name -> (q, exponent), only shapes and dtypes are read) resolved against the tensors as Postprocessor::init
    does at model load; without ``text``, the legacy contract of a file that has none. Also ``limits``."""
    parts = ["head"]
    if text is not None:
        parts.append(f"text={text}")
    if outputs is not None:
        from yolo11_pose.device import head as heads

        names = heads.from_text(text).output_names if text is not None else OUTPUT_NAMES
        parts.append(f"input={int(input_w)}x{int(input_h)}")
        parts += _tensor_specs(outputs, names, None)
    reply, _ = _host(variant).request(" ".join(parts))
    return reply


def postprocess(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
                conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
                max_det: int = DEFAULT_MAX_DET, kpt_shape=None, variant: str | None = None,
                head: HeadContract | None = None) -> list[Pose]:
    """Same signature and result type as ``decode.decode`` for quantized outputs, computed by the C++ core."""
    reply = postprocess_raw(outputs, input_w, input_h, letterbox, conf, iou, kpt_thr, max_det, kpt_shape, variant,
                            head)
    bounds = letterbox.bounds if letterbox is not None else (0, 0, input_w, input_h)
    poses = []
    for p in reply["poses"]:
        k = np.array([row[:3] for row in p["kpts"]], np.float64).reshape(-1, 3)
        poses.append(Pose(int(p["cls"]), float(p["score"]), np.array(p["box"], np.float64), k, kpt_thr, bounds))
    return poses


__all__ = [
    "BYTES_PER_PIXEL",
    "CppError",
    "HostBuildError",
    "build",
    "build_dir",
    "close",
    "default_variant",
    "executable",
    "head_contract",
    "postprocess",
    "post_request",
    "postprocess_raw",
    "preprocess",
    "source_root",
]
