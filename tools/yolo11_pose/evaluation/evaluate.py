"""COCO keypoint accuracy (OKS AP) of float and quantized models side by side, and label-free fidelity.

Every model in one run sees the same images through the same letterbox (the device's), so the ratio to the first
model isolates what quantization costs. COCO evaluation wants low-confidence detections too: conf 0.001, 100 per image.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np

from yolo11_pose.device.decode import Pose
from yolo11_pose.device.preprocess import load_rgb
from yolo11_pose.util import UserError, atomic_path, ensure_writable_dir, write_json

EVAL_CONF, EVAL_MAX_DET = 0.001, 100
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


def poses_to_coco(image_id: int, poses: list[Pose]) -> list[dict]:
    out = []
    for p in poses:
        x1, y1, x2, y2 = (float(v) for v in p.box)
        kp = np.asarray(p.keypoints, np.float64)
        out.append({"image_id": int(image_id), "category_id": 1, "score": float(p.score),
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "keypoints": kp.reshape(-1).round(3).tolist()})
    return out


def coco_eval(gt: dict, results: list[dict], image_ids: list[int] | None = None) -> dict:
    """OKS AP and AP50 with pycocotools (standard COCO sigmas)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = json.loads(json.dumps(gt))
        cg.createIndex()
        cd = cg.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(cg, cd, "keypoints")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


def pseudo_ground_truth(images: list[tuple[int, Path, int, int]], predictions: dict[int, list[Pose]],
                        conf: float = 0.25, kpt_thr: float = 0.5) -> dict:
    """A COCO ground truth made of a float model's own confident predictions (for label-free fidelity)."""
    anns = []
    for iid, _, _, _ in images:
        for p in predictions.get(iid, []):
            if p.score < conf:
                continue
            x1, y1, x2, y2 = (float(v) for v in p.box)
            kp = np.asarray(p.keypoints, np.float64).copy()
            vis = kp[:, 2] >= kpt_thr
            kp[:, 2] = np.where(vis, 2, 0)
            kp[~vis, :2] = 0
            if vis.sum() == 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": 0.53 * (x2 - x1) * (y2 - y1),
                         "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int(vis.sum())})
    return {"images": [{"id": iid, "file_name": f.name, "width": w, "height": h} for iid, f, w, h in images],
            "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def load_annotated_images(annotations: str, images_dir: str, max_images: int | None = None):
    ann_path = Path(annotations)
    if not ann_path.is_file():
        raise UserError(f"annotations {annotations} not found; give a COCO person_keypoints json")
    try:
        gt = json.loads(ann_path.read_text(encoding="utf-8"))
        imgs = sorted(gt["images"], key=lambda i: i["id"])
        listed = [(int(im["id"]), im["file_name"], int(im["width"]), int(im["height"])) for im in imgs]
        if not isinstance(gt.get("annotations"), list):
            raise KeyError("annotations")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{annotations} is not a COCO keypoints json (needs 'images' and 'annotations'); give a "
                        "person_keypoints_*.json") from None
    except OSError as e:
        raise UserError(f"cannot read {annotations} ({e.strerror or e}); check its permissions") from None
    d = Path(images_dir)
    if d.is_file():
        raise UserError(f"--images {images_dir} is a file; give the folder that holds the json's images")
    if not d.is_dir():
        raise UserError(f"image folder {images_dir} not found")
    items = []
    for iid, name, w, h in listed:
        f = d / name
        if not f.is_file():
            raise UserError(f"{f} (listed in {ann_path.name}) is missing; point --images at the folder of the json")
        items.append((iid, f, w, h))
    if max_images:
        items = items[:max_images]
    return gt, items


def folder_images(images_dir: str, max_images: int | None = None):
    from yolo11_pose.make.quantize import resolve_images

    files = resolve_images(images_dir)
    if max_images:
        files = files[:max_images]
    items = []
    from yolo11_pose.device.preprocess import image_size

    for i, f in enumerate(files, 1):
        try:
            items.append((i, f, *image_size(f)))
        except ValueError as e:
            raise UserError(str(e)) from None
    return items


def run_model(model, items, desc: str, conf=EVAL_CONF, max_det=EVAL_MAX_DET, keep_raw=False):
    from tqdm import tqdm

    preds, raws, t = {}, {}, 0.0
    for iid, f, _, _ in tqdm(items, desc=desc, unit="img", leave=False):
        try:
            rgb = load_rgb(f)
        except ValueError as e:
            raise UserError(str(e)) from None
        t0 = time.perf_counter()
        preds[iid] = model.predict(rgb, conf=conf, max_det=max_det)
        t += time.perf_counter() - t0
        if keep_raw:
            raws[iid] = model.raw(rgb)[0]
    return preds, raws, t / max(1, len(items))


def head_snr(float_raw: dict, quant_raw: dict) -> dict[str, float]:
    """Signal-to-noise ratio (dB) of each output over all images: 10 log10(sum f^2 / sum (q - f)^2)."""
    sig, noise = {}, {}
    for iid, fo in float_raw.items():
        qo = quant_raw[iid]
        for k, f in fo.items():
            f = np.asarray(f, np.float64)
            q = np.asarray(qo[k], np.float64)
            sig[k] = sig.get(k, 0.0) + float((f ** 2).sum())
            noise[k] = noise.get(k, 0.0) + float(((q - f) ** 2).sum())
    return {k: round(10 * np.log10(sig[k] / max(noise[k], 1e-30)), 2) for k in sig}


def split_target(spec: str, target: str | None = None) -> tuple[str, str | None]:
    """``MODEL@TARGET`` names the chip of one model (files that do not record theirs); else the common --target."""
    head, sep, tail = spec.rpartition("@")
    from yolo11_pose.device.preprocess import TARGET_ROUNDING

    if sep and tail in TARGET_ROUNDING:
        return head, tail
    if sep and head and not Path(spec).exists() and (Path(head).exists() or Path(head).suffix == ".espdl"):
        use = " or ".join(f"{head}@{t}" for t in sorted(TARGET_ROUNDING))
        raise UserError(f"{spec}: unknown chip {tail!r} after @; use {use}")
    return spec, target


def check_eval_args(annotations: str | None, against_float: str | None, max_images: int | None) -> None:
    if annotations is None and against_float is None:
        raise UserError("give --annotations (COCO keypoints json) or --against-float FLOAT_MODEL (no labels)")
    if max_images is not None and max_images < 1:
        raise UserError(f"--max-images {max_images}: give 1 or more, or leave it out to use every image")


def evaluate(models: list[str], images: str, annotations: str | None = None, imgsz: int | None = None,
             against_float: str | None = None, max_images: int | None = None, log=print, engine: str = "espdl",
             target: str | None = None, device: str = "cpu") -> list[dict]:
    from yolo11_pose.device.twin import load_model

    check_eval_args(annotations, against_float, max_images)
    loaded = []
    for m in models:
        spec, tgt = split_target(m, target)
        loaded.append(load_model(spec, imgsz, engine=engine, target=tgt, device=device))
    size = imgsz or next((m.imgsz for m in loaded if m.kind == "int twin"), loaded[0].imgsz)
    for spec, m in zip(models, loaded):
        if m.imgsz != size:
            raise UserError(f"{spec} runs at {m.imgsz} but the others at {size}; compare models of one input size")
    rows = []
    if against_float:
        ref = load_model(against_float, size, device=device)
        if ref.kind == "int twin":
            raise UserError(f"--against-float needs a float model (.pt or .onnx), not the build {against_float}")
        items = folder_images(images, max_images) if annotations is None else \
            load_annotated_images(annotations, images, max_images)[1]
        ref_preds, ref_raw, _ = run_model(ref, items, f"float {ref.name}", conf=0.25, keep_raw=True)
        gt = pseudo_ground_truth(items, ref_preds)
        log(f"pseudo ground truth: {len(gt['annotations'])} poses from {ref.name} on {len(items)} images")
    else:
        gt, items = load_annotated_images(annotations, images, max_images)
    first_ap = None
    for spec, m in zip(models, loaded):
        preds, raws, per_img = run_model(m, items, m.name, keep_raw=bool(against_float))
        results = [r for iid, ps in preds.items() for r in poses_to_coco(iid, ps)]
        ap = coco_eval(gt, results, [i[0] for i in items])
        row = {"model": spec, "name": m.name, "kind": m.kind, "imgsz": m.imgsz, "images": len(items), **ap,
               "ms_per_image": round(per_img * 1e3, 1)}
        if against_float:
            row["reference"] = against_float
            row["snr_db"] = head_snr(ref_raw, raws)
        first_ap = ap["AP"] if first_ap is None else first_ap
        row["ratio"] = round(ap["AP"] / first_ap, 3) if first_ap else None
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = "| model | kind | imgsz | images | AP | AP50 | ratio to first | ms/image |\n|---|---|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        lines.append(f"| {r['name']} | {r['kind']} | {r['imgsz']} | {r['images']} | {r['AP']:.3f} | {r['AP50']:.3f} | "
                     f"{ratio} | {r['ms_per_image']:.0f} |")
    snr = [r for r in rows if "snr_db" in r]
    if snr:
        names = list(snr[0]["snr_db"])
        lines += ["", "Output signal-to-noise vs the float model (dB; higher is better, 20 dB = 1% noise power):", "",
                  "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for r in snr:
            lines.append(f"| {r['name']} | " + " | ".join(f"{r['snr_db'][n]:.1f}" for n in names) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict], out_dir: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ensure_writable_dir(out_dir, flag="--report")
    write_json(out / "eval.json", rows)
    with atomic_path(out / "eval.md") as tmp:
        Path(tmp).write_text(f"# {title}\n\n{format_table(rows)}\n")
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["AP"] for r in rows], 0.4, label="OKS AP", color="#3b7dd8")
    ax.bar(x + 0.2, [r["AP50"] for r in rows], 0.4, label="OKS AP50", color="#9cc3f0")
    for i, r in enumerate(rows):
        ax.text(i - 0.2, r["AP"] + 0.01, f"{r['AP']:.3f}", ha="center", fontsize=8)
        ax.text(i + 0.2, r["AP50"] + 0.01, f"{r['AP50']:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, [f"{r['name']}\n{r['kind']}" for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(out / "eval.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def eval_command(a) -> int:
    rows = evaluate(a.model, a.images, a.annotations, a.imgsz, a.against_float, a.max_images,
                    engine=getattr(a, "engine", "espdl"), target=getattr(a, "target", None),
                    device=getattr(a, "device", "cpu"))
    print(format_table(rows))
    if a.report:
        what = f"against {a.against_float}" if a.against_float else Path(a.annotations).name
        write_report(rows, a.report, f"OKS AP on {rows[0]['images']} images ({what})")
        print(f"wrote {Path(a.report) / 'eval.json'}, eval.md, eval.png")
    return 0
