#!/usr/bin/env python3
"""Wall time and peak memory of `yolo11-pose export` and `quantize`, next to ESP-PPQ's own recipe. Not a test.

  python benchmarks/bench_toolchain.py [--sizes 320 640] [--num-calib 32] [--skip-reference] [--threads 1]
                                       [--out FILE.md]

Each step runs in its own child process; its peak resident set size comes from os.wait4() (ru_maxrss of that child
and the processes it waited for), its wall time from the parent's clock. Steps, per input size:
- export:   `yolo11-pose export` of the official weights (ONNX with the 9 raw head outputs);
- quantize: `yolo11-pose quantize` of that ONNX, esp32p4, 8-bit, N calibration images, without and with
            `--error-report` (a failing step is reported as failed and the benchmark goes on);
- ESP-PPQ recipe: `esp_ppq.api.espdl_quantize_onnx` called on the same ONNX the way Espressif's YOLO11n-pose
            tutorial does: default `espdl_setting()`, torchvision ToTensor + Resize to a square, batch 8,
            error_report=True (ESP-PPQ's graph-wise and layer-wise analyses), same N images as our tool uses.
The machine may be shared: the 1-minute load average at the start of each step is printed to judge the noise.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import git_commit  # noqa: E402
sys.path.insert(0, str(REPO / "tools"))

SHARED = Path(os.environ.get("YOLO11_POSE_SHARED") or REPO.parent / "shared")
DATA = SHARED / "data" / "coco-pose-mini"
CLI = "import sys; from yolo11_pose.cli import main; sys.exit(main())"
REFERENCE_BATCH = 8
THREAD_ENV: dict[str, str] = {}  # --threads: OMP/MKL thread counts passed to every step


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # finished just before the deadline
        pass


def run_measured(cmd: list[str], log_path: Path, timeout: float) -> dict:
    """Run cmd as a child; return wall seconds, peak RSS (MiB) of the child tree, exit code and the log's last line."""
    env = dict(os.environ, **THREAD_ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "tools"),
                                                                    os.environ.get("PYTHONPATH")])))
    load = os.getloadavg()[0]
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (p.pid,))
        timer.start()
        try:
            # wait4 instead of p.wait(): it returns the rusage of this child alone (RUSAGE_CHILDREN would give the
            # maximum over every child this benchmark ever reaped).
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return {"wall_s": wall, "rss_mib": usage.ru_maxrss / 1024, "rc": p.returncode, "load": load,
            "cpu_s": usage.ru_utime + usage.ru_stime, "last": tail[-1] if tail else "",
            "timed_out": wall >= timeout and p.returncode < 0}


# ------------------------------------------------------------------------------------- ESP-PPQ's recipe (child side)
def reference_quantize(onnx_src: str, imgsz: int, num_calib: int, out_dir: str, calib: str) -> int:
    """Espressif's tutorial harness, on our ONNX and our calibration images (runs in the child process)."""
    from esp_ppq import QuantizationSettingFactory
    from esp_ppq.api import espdl_quantize_onnx
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms
    from yolo11_pose.make.quantize import resolve_images, select_images

    class CalibDataset(Dataset):
        def __init__(self, files):
            self.files = files
            # The tutorial's transform: to [0, 1], then squash to a square (bilinear), mean 0 / std 1.
            self.transform = transforms.Compose([transforms.ToTensor(), transforms.Resize((imgsz, imgsz)),
                                                 transforms.Normalize(mean=[0, 0, 0], std=[1, 1, 1])])

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            with Image.open(self.files[i]) as im:
                return self.transform(im.convert("RGB"))  # a few COCO images are grayscale

    files = select_images(resolve_images(calib), num_calib)  # the images our quantize step uses too
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    shutil.copyfile(onnx_src, onnx_path)  # ESP-PPQ rewrites its input ONNX in place
    loader = DataLoader(CalibDataset(files), batch_size=REFERENCE_BATCH, shuffle=False)
    espdl_quantize_onnx(onnx_import_file=str(onnx_path), espdl_export_file=str(out / "model.espdl"),
                        calib_dataloader=loader, calib_steps=len(loader), input_shape=[1, 3, imgsz, imgsz],
                        target="esp32p4", num_of_bits=8, collate_fn=lambda b: b.to("cpu"),
                        setting=QuantizationSettingFactory.espdl_setting(), device="cpu", error_report=True,
                        skip_export=False, export_test_values=False, verbose=0, inputs=None)
    print(f"wrote {out / 'model.espdl'} ({(out / 'model.espdl').stat().st_size / 1e6:.2f} MB)")
    return 0


# ------------------------------------------------------------------------------------- benchmark (parent side)
def steps_for(a, imgsz: int, work: Path) -> list[tuple[str, str, list[str]]]:
    py = sys.executable
    d = work / str(imgsz)
    onnx = d / "export" / "model.onnx"
    common = ["--onnx", str(onnx), "--target", "esp32p4", "--bits", "8", "--calib", a.calib,
              "--num-calib", str(a.num_calib)]
    steps = [
        ("export", "yolo11-pose export", [py, "-c", CLI, "export", "--weights", a.weights, "--imgsz", str(imgsz),
                                           "--out", str(d / "export")]),
        ("quantize", "yolo11-pose quantize", [py, "-c", CLI, "quantize", *common, "--out", str(d / "q")]),
        ("quantize + error report", "yolo11-pose quantize --error-report",
         [py, "-c", CLI, "quantize", *common, "--error-report", "--out", str(d / "q-report")]),
    ]
    if not a.skip_reference:
        steps.append(("quantize + error report", "ESP-PPQ tutorial recipe (espdl_quantize_onnx, error_report=True)",
                      [py, str(Path(__file__).resolve()), "--child-reference", str(onnx), str(imgsz),
                       str(a.num_calib), str(d / "reference"), a.calib]))
    return steps


def table(rows: list[dict]) -> str:
    lines = ["| imgsz | step | how | calib images | wall s | CPU s | peak RSS MiB | load at start | result |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["m"]
        ok = m["rc"] == 0
        result = "ok" if ok else ("timed out" if m["timed_out"] else f"FAILED (exit {m['rc']}): {m['last'][:120]}")
        calib = "-" if r["step"] == "export" else str(r["num_calib"])
        lines.append(f"| {r['imgsz']} | {r['step']} | {r['how']} | {calib} | {m['wall_s']:.1f} | {m['cpu_s']:.0f} | "
                     f"{m['rss_mib']:.0f} | {m['load']:.1f} | {result} |")
    return "\n".join(lines)


def write_out(path: str | None, text: str) -> None:
    if path:
        from yolo11_pose.util import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)


def header(a) -> str:
    commit = git_commit()
    from importlib.metadata import version

    threads = f" (OMP_NUM_THREADS={THREAD_ENV['OMP_NUM_THREADS']})" if THREAD_ENV else ""
    return (f"Date {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit}, {platform.machine()} {os.cpu_count()} "
            f"cores{threads}, Python {platform.python_version()}, torch {version('torch')}, esp-ppq {version('esp-ppq')}, "
            f"ultralytics {version('ultralytics')}; target esp32p4, 8-bit, weights {Path(a.weights).name}.")


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--child-reference":
        _, _, onnx, imgsz, num, out, calib = sys.argv
        return reference_quantize(onnx, int(imgsz), int(num), out, calib)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--num-calib", type=int, default=32, help="calibration images (default 32)")
    ap.add_argument("--skip-reference", action="store_true", help="leave out ESP-PPQ's own recipe")
    ap.add_argument("--weights", default=str(SHARED / "models" / "yolo11n-pose.pt"))
    ap.add_argument("--calib", default=str(DATA / "calibration.txt"))
    ap.add_argument("--work", default="/tmp/yolo11_pose_bench_toolchain", help="scratch folder (outputs, logs)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a step is killed (default 1800)")
    ap.add_argument("--out", default=None, help="also write the table as Markdown to this file")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS for every step (default: unset); use 1 on a busy machine, where OpenMP "
                         "threads spin-waiting for a core inflate both wall and CPU time")
    a = ap.parse_args()
    if a.threads:
        THREAD_ENV.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    for what, p, flag in (("weights", a.weights, "--weights"), ("calibration list", a.calib, "--calib")):
        if not Path(p).exists():
            print(f"error: {what} {p} not found; pass {flag} or set YOLO11_POSE_SHARED", file=sys.stderr)
            return 2
    if a.num_calib < 8:
        print("error: --num-calib must be at least 8 (ESP-PPQ calibrates in batches)", file=sys.stderr)
        return 2
    work = Path(a.work)
    rows = []
    for imgsz in a.sizes:
        d = work / str(imgsz)
        shutil.rmtree(d, ignore_errors=True)  # every step starts from nothing: no reuse, no stale outputs
        d.mkdir(parents=True)
        for step, how, cmd in steps_for(a, imgsz, work):
            logf = d / f"{len(rows):02d}-{step.replace(' ', '_').replace('+', 'and')}.log"
            print(f"[{imgsz}] {how} ...", file=sys.stderr, flush=True)
            m = run_measured(cmd, logf, a.timeout)
            print(f"[{imgsz}] {how}: {m['wall_s']:.1f} s, {m['rss_mib']:.0f} MiB, exit {m['rc']} (log {logf})",
                  file=sys.stderr, flush=True)
            rows.append({"imgsz": imgsz, "step": step, "how": how, "num_calib": a.num_calib, "m": m})
            write_out(a.out, f"{header(a)}\n\n{table(rows)}\n")  # after every step: a stopped run keeps its rows
            if step == "export" and m["rc"] != 0:
                print(f"[{imgsz}] export failed; skipping the quantize steps at this size", file=sys.stderr)
                break
    print(f"{header(a)}\n\n{table(rows)}\n")
    if a.out:
        print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
