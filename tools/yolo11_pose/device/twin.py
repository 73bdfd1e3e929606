"""Models behind one interface, and the host twin of the device.

``Twin`` is what the chip computes for an ``.espdl`` file: the device-exact preprocessing (preprocess.device_input),
the file run with ESP-DL's integer semantics (executor.Executor; ESP-PPQ's simulation with ``engine="ppq"``), and
the *same C++ postprocessor* that ships in the component, built for the host (yolo11_pose.device.cpp). Float models (.pt
through torch, .onnx through ONNX Runtime) share the letterbox and the Python reference decode, so that comparing
them with the twin measures quantization alone.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from yolo11_pose.device import head as heads
from yolo11_pose.device.decode import (COCO_SKELETON, DEFAULT_CONF, DEFAULT_IOU, DEFAULT_KPT_THR, DEFAULT_MAX_DET, Pose,
                     decode, nchw_to_nhwc)
from yolo11_pose.device.preprocess import TARGET_ROUNDING, Letterbox, device_input, float_input, load_rgb
from yolo11_pose.util import UserError


class Model:
    """predict(rgb) -> poses in source pixels; raw(rgb) -> NHWC head outputs (float) and the letterbox."""

    name: str
    imgsz: int
    kind: str
    kpt_shape = None
    head: heads.HeadContract | None = None  # the head contract (None: the legacy one for the outputs' shapes)

    def raw(self, rgb: np.ndarray) -> tuple[dict, Letterbox]:
        raise NotImplementedError

    def predict(self, rgb: np.ndarray, conf=DEFAULT_CONF, iou=DEFAULT_IOU, kpt_thr=DEFAULT_KPT_THR,
                max_det=DEFAULT_MAX_DET) -> list[Pose]:
        outs, lb = self.raw(rgb)
        return decode(outs, self.imgsz, self.imgsz, lb, conf, iou, kpt_thr, max_det, self.kpt_shape, self.head)


class TorchModel(Model):
    kind = "float .pt"

    def __init__(self, weights: str, imgsz: int, branch: str | None = None, device: str = "cpu"):
        import torch

        from yolo11_pose.make.export import check_imgsz, load_pose_model, prepare_for_export

        self.imgsz = check_imgsz(imgsz)
        self.name = Path(weights).name
        self.model, kpt_shape, _ = prepare_for_export(load_pose_model(weights, branch))
        self.head = self.model.pose_head
        self.model.to(device)
        self.device = device
        self.kpt_shape = kpt_shape
        self._torch = torch

    def raw(self, rgb):
        x, lb = float_input(rgb, self.imgsz, self.imgsz)
        with self._torch.no_grad():
            ys = self.model(self._torch.from_numpy(x).to(self.device))
        return nchw_to_nhwc({n: y.cpu().numpy() for n, y in zip(self.head.output_names, ys)}), lb


class OnnxModel(Model):
    kind = "float .onnx"

    def __init__(self, path: str):
        import onnxruntime as ort

        from yolo11_pose.make.export import onnx_meta

        meta = onnx_meta(path)
        self.name = Path(path).name
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shape = self.sess.get_inputs()[0].shape
        self.imgsz = int(meta.get("imgsz") or shape[2])
        self.head = meta["head"]
        self.kpt_shape = self.head.kpt_shape
        self.names = [o.name for o in self.sess.get_outputs()]

    def raw(self, rgb):
        x, lb = float_input(rgb, self.imgsz, self.imgsz)
        return nchw_to_nhwc(dict(zip(self.names, self.sess.run(self.names, {"images": x})))), lb


ENGINES = ("espdl", "ppq")


class Twin(Model):
    """The device, simulated: what `YOLO11Pose::run()` returns for an ``.espdl`` file.

    ``engine="espdl"`` (default) runs the file itself through ``executor.Executor``: ESP-DL 3.3.9's integer
    semantics, checked against ESP-DL's own kernels. ``engine="ppq"`` runs ESP-PPQ's simulation of the quantized
    graph (a build folder's ``model.native``), kept as a cross-check: it models ESP-PPQ's export, not ESP-DL.
    ``spec`` is a build folder, an ``.espdl`` inside one, or any ``.espdl`` (Espressif's, a user's); a file that does
    not record its chip takes ``target``, which decides the rounding rule.
    """

    kind = "int twin"

    def __init__(self, spec: str | Path, post: str = "cpp", engine: str = "espdl", target: str | None = None,
                 matmul_layout: str = "espdl-3.3.9", device: str = "cpu"):
        if post not in ("cpp", "python"):
            raise ValueError("post must be 'cpp' or 'python'")
        if engine not in ENGINES:
            raise UserError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        if target is not None and target not in TARGET_ROUNDING:
            raise UserError(f"unknown --target {target!r}; use one of {', '.join(TARGET_ROUNDING)}")
        p = Path(spec)
        build = p if p.is_dir() else p.parent if (p.parent / "manifest.json").is_file() else None
        espdl = p / "model.espdl" if p.is_dir() else p
        self.post = post
        self.engine = engine
        self.manifest = None
        if espdl.is_file():  # a damaged or changed file fails here, in one line, instead of computing wrong poses
            from yolo11_pose.espdl.integrity import verify

            self.integrity = verify(espdl)
        if build is not None:
            man = build / "manifest.json"
            if not man.is_file():
                raise UserError(f"{build} is not a build folder (no manifest.json); run `yolo11-pose build` into it "
                                "or give an .espdl file")
            self.manifest = json.loads(man.read_text())
            built_for = self.manifest["settings"]["target"]
            if target and target != built_for:
                raise UserError(f"{build} was built for {built_for}, not {target}; drop --target")
            target = built_for
        if engine == "ppq":
            if build is None or not (build / "model.native").is_file():
                raise UserError(f"--engine ppq needs a build folder with model.native; {spec} has none (the default "
                                "engine, espdl, runs any .espdl file)")
            from yolo11_pose.make.quantize import QuantizedModel

            self.q = QuantizedModel(build)
            self.imgsz, self.kpt_shape, target = self.q.imgsz, self.q.kpt_shape, self.q.target
            text = self.q.manifest.get("head")
            self.head = heads.from_text(text) if text else heads.legacy(kpt_shape=self.kpt_shape).with_(
                nc=int(self.q.manifest.get("nc") or 1))
            self.in_exponent, self.bits = self.q.input["exponent"], int(self.q.input["dtype"][3:])
        else:
            from yolo11_pose.espdl.executor import Executor, load_graph

            if not espdl.is_file():
                raise UserError(f"{espdl} not found; give a build folder or an .espdl file")
            graph = load_graph(espdl)
            if target and graph.target and target != graph.target:
                raise UserError(f"{espdl} was built for {graph.target} (its metadata says so), not {target}; drop "
                                "--target (it is for files that record no chip)")
            target = target or graph.target
            if target is None:
                raise UserError(f"{espdl} does not record its chip; give --target esp32p4 or --target esp32s3 (it "
                                "decides the rounding rule)")
            self.ex = Executor(graph, target, matmul_layout, gemm_device=None if device == "cpu" else device)
            inp = graph.inputs[0]
            if len(inp.shape) != 4 or inp.shape[0] != 1 or inp.shape[3] != 3 or inp.shape[1] != inp.shape[2]:
                raise UserError(f"{espdl}: input {inp.name} is {inp.shape}; a pose model takes 1xNxNx3 (NHWC)")
            if inp.dtype not in ("int8", "int16") or len(inp.exponents) != 1:
                raise UserError(f"{espdl}: input {inp.name} is {inp.dtype} with exponents {inp.exponents}; "
                                "expected one int8/int16 exponent")
            shapes = {o.name: tuple(o.shape) for o in graph.outputs}
            try:  # the file's head contract, else (files made before it, Espressif's) YOLO11's for its shapes
                meta = dict(graph.metadata)
                if heads.METADATA_KEY not in meta:
                    kpt = (self.manifest or {}).get("kpt_shape") or _parse_kpt(meta.get("kpt_shape"))
                    meta["kpt_shape"] = str(kpt) if kpt else None
                self.head = heads.from_metadata(meta, shapes)
            except ValueError as e:
                raise UserError(f"{espdl}: {e}") from None
            missing = [n for n in self.head.output_names if n not in shapes]
            if missing:
                raise UserError(f"{espdl} has no output {missing[0]!r}: not a pose model in this project's head "
                                f"contract (outputs {', '.join(self.head.output_names)})")
            self.imgsz, self.in_exponent, self.bits = int(inp.shape[1]), int(inp.exponents[0]), int(inp.dtype[3:])
            self.kpt_shape = self.head.kpt_shape
        self.target = target
        self.rounding = TARGET_ROUNDING[target]
        bits = f" {self.manifest['settings']['bits']}-bit" if self.manifest else ""
        self.name = f"{build.name if build else p.name} ({target}{bits}, {engine})"
        self.last_input = None

    def quantized(self, rgb) -> tuple[dict, Letterbox]:
        """NHWC (q, exponent) outputs exactly as the device's output tensors hold them."""
        q, lb = device_input(rgb, self.imgsz, self.imgsz, self.in_exponent, self.bits, self.rounding)
        self.last_input = q
        if self.engine == "ppq":
            return self.q.run_device_input(q), lb
        outs = self.ex.run(q[None])
        return {n: outs[n] for n in self.head.output_names}, lb

    def raw(self, rgb):
        outs, lb = self.quantized(rgb)
        return {k: (q.astype(np.float64) * 2.0 ** e) for k, (q, e) in outs.items()}, lb

    def predict(self, rgb, conf=DEFAULT_CONF, iou=DEFAULT_IOU, kpt_thr=DEFAULT_KPT_THR, max_det=DEFAULT_MAX_DET):
        outs, lb = self.quantized(rgb)
        self.last_outputs = outs
        if self.post == "python":
            return decode(outs, self.imgsz, self.imgsz, lb, conf, iou, kpt_thr, max_det, self.kpt_shape, self.head)
        from yolo11_pose.device import cpp

        return cpp.postprocess(outs, self.imgsz, self.imgsz, lb, conf=conf, iou=iou, kpt_thr=kpt_thr,
                               max_det=max_det, kpt_shape=self.kpt_shape, head=self.head)

    def save_outputs(self, path: str | Path) -> None:
        """The last frame's input and raw outputs as ``.npz`` (int arrays, ``<name>_exponent``): the layout of
        ``shared/data/espdl-outputs``, to diff against a device dump."""
        from yolo11_pose.util import atomic_path

        arrays = {"input": self.last_input[None], "input_exponent": np.int32(self.in_exponent)}
        for n, (q, e) in self.last_outputs.items():
            arrays[n], arrays[f"{n}_exponent"] = q, np.int32(e)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)


def _parse_kpt(text):
    """kpt_shape as our exports write it into the file's metadata ("[17, 3]"); None when absent."""
    if not text:
        return None
    try:
        v = [int(x) for x in str(text).strip("[]() ").split(",")]
    except ValueError:
        return None
    return v if len(v) == 2 else None


def load_model(spec: str, imgsz: int | None = None, post: str = "cpp", engine: str = "espdl",
               target: str | None = None, device: str = "cpu") -> Model:
    """``device`` (cpu, cuda[:N]) runs a .pt and the executor's convolutions there; ONNX Runtime and ESP-PPQ's
    executor (engine ppq) stay on the CPU."""
    p = Path(spec)
    if p.is_dir() or p.suffix == ".espdl":
        if not p.exists():
            raise UserError(f"model {spec} not found")
        m = Twin(p, post, engine=engine, target=target, device=device)
        if imgsz and imgsz != m.imgsz:
            raise UserError(f"{spec} takes {m.imgsz}x{m.imgsz} input, not {imgsz}; drop --imgsz")
        return m
    if p.suffix == ".onnx":
        if not p.is_file():
            raise UserError(f"ONNX model {spec} not found")
        return OnnxModel(spec)
    if p.suffix in (".pt", ".yaml", ".yml"):
        return TorchModel(spec, imgsz or 640, device=device)
    raise UserError(f"model {spec}: give a .pt checkpoint, an .onnx file, an .espdl file or a build folder")


# ----------------------------------------------------------------------------------------------- drawing
def draw(rgb: np.ndarray, poses: list[Pose], kpt_thr: float = DEFAULT_KPT_THR):
    """Skeleton overlay as a PIL image: boxes with scores, limbs between visible keypoints, keypoints by confidence."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb).convert("RGB")
    d = ImageDraw.Draw(im)
    lw = max(2, round(max(im.size) / 300))
    for p in poses:
        x1, y1, x2, y2 = (float(v) for v in p.box)
        d.rectangle([x1, y1, x2, y2], outline=(255, 56, 56), width=lw)
        d.text((x1 + 3, max(0, y1 - 12)), f"{p.score:.2f}", fill=(255, 255, 255))
        kp = p.keypoints
        vis = kp[:, 2] >= kpt_thr
        if len(kp) == 17:
            for a, b in COCO_SKELETON:
                if vis[a] and vis[b]:
                    d.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=(51, 153, 255), width=lw)
        r = lw + 1
        for (x, y, c), v in zip(kp, vis):
            if v:
                d.ellipse([x - r, y - r, x + r, y + r], fill=(0, 255, 0))
            else:  # hidden points are still reported, with their confidence: draw them hollow
                d.ellipse([x - r, y - r, x + r, y + r], outline=(160, 160, 160))
    return im


def overlay_names(images: list[str]) -> dict[str, str]:
    """PNG name per input: its stem, and `stem-2`, `stem-3`... for later inputs with a stem already taken."""
    names, taken = {}, set()
    for img in images:
        if img in names:
            continue
        stem, n = Path(img).stem, 1
        name = f"{stem}.png"
        while name.lower() in taken:  # lower(): one file on case-insensitive file systems
            n += 1
            name = f"{stem}-{n}.png"
        taken.add(name.lower())
        names[img] = name
    return names


def predict_command(a) -> int:
    from tqdm import tqdm

    raw_dir = Path(a.save_outputs) if getattr(a, "save_outputs", None) else None
    model = load_model(a.model, a.imgsz, engine=getattr(a, "engine", "espdl"), target=getattr(a, "target", None),
                       device=getattr(a, "device", "cpu"))
    if raw_dir and not isinstance(model, Twin):
        raise UserError("--save-outputs writes the device's integer tensors: give an .espdl file or a build folder")
    save = Path(a.save_dir) if a.save_dir else None
    from yolo11_pose.util import ensure_writable_dir

    if save:
        ensure_writable_dir(save, flag="--save-dir")
    if raw_dir:
        ensure_writable_dir(raw_dir, flag="--save-outputs")
    names = overlay_names(a.image)
    for img in tqdm(a.image, desc="predict", unit="img", disable=a.json or len(a.image) < 3, file=sys.stderr):
        try:
            rgb = load_rgb(img)
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        t = time.time()
        poses = model.predict(rgb, a.conf, a.iou, a.kpt_thr, a.max_det)
        ms = (time.time() - t) * 1e3
        if a.json:
            for p in poses:
                print(json.dumps({"image": str(img), **p.to_dict()}))
        else:
            print(f"{img}: {len(poses)} pose(s) [{model.name}, {model.kind}, {model.imgsz}x{model.imgsz}, {ms:.0f} ms]")
            for p in poses:
                vis = int((p.keypoints[:, 2] >= a.kpt_thr).sum())
                print(f"  person {p.score:.2f} box {[round(float(v), 1) for v in p.box]} "
                      f"keypoints visible {vis}/{len(p.keypoints)}")
        if save:
            from yolo11_pose.util import atomic_path

            out = save / names[img]
            with atomic_path(out) as tmp:
                draw(rgb, poses, a.kpt_thr).save(tmp, format="PNG")
            if not a.json:
                print(f"  saved {out}")
        if raw_dir:
            out = raw_dir / (Path(names[img]).stem + ".npz")
            model.save_outputs(out)
            if not a.json:
                print(f"  saved {out}")
    return 0
