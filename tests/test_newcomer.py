"""Issue 18: no silent wrong results, no tracebacks, cheap checks before slow work, a quick start that works verbatim.

The bad inputs themselves live in benchmarks/newcomer_tries.py (which also runs them as subprocesses); here they run
in-process, with the slow entry points replaced by ones that fail the test, so a try that gets as far as loading a
model, exporting or quantizing before refusing is caught too.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import struct

import numpy as np
import pytest
from yolo11_pose.espdl import integrity
from yolo11_pose.cli import main, parser
from yolo11_pose.util import UserError

from .conftest import REFERENCE_ESPDL, REPO, require_shared


def _tries_module():
    spec = importlib.util.spec_from_file_location("newcomer_tries", REPO / "benchmarks" / "newcomer_tries.py")
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.modules.setdefault(spec.name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name] if sys.modules[spec.name] is mod else mod)
    return sys.modules[spec.name]


def _one_line(capsys, argv, *needles) -> str:
    code = main(argv)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.fixture
def no_slow_work(monkeypatch):
    """Fails a try that reaches the slow work (model load, export, quantization) before refusing."""
    from yolo11_pose.make import build, export, quantize
    from yolo11_pose.device import twin

    def boom(*a, **k):
        raise AssertionError("got to the slow work before checking the arguments")

    for mod, name in ((export, "export_onnx"), (build, "export_onnx"), (export, "load_pose_model"),
                      (quantize, "quantize"), (quantize, "quantize_settings"), (build, "build"),
                      (build, "build_settings"), (twin, "TorchModel"), (twin, "OnnxModel")):
        monkeypatch.setattr(mod, name, boom)


# ------------------------------------------------------------------------------------------- the newcomer's tries
def test_every_bad_input_is_one_line_exit_2_before_slow_work(tmp_path, no_slow_work):
    nt = _tries_module()
    r = nt.run_all(tmp_path / "w", in_process=True, log=lambda *_: None)
    bad = [f"{t['id']}: {'; '.join(t['problems'])} [{t['stderr'][:160]}]" for t in r["tries"] if t["problems"]]
    assert not bad, "\n".join(bad)
    assert len(r["tries"]) >= 90 and r["tracebacks"] == 0 and r["silent_wrong"] == 0
    slow = [(t["id"], t["seconds"]) for t in r["tries"] if t["seconds"] > 5]
    assert not slow, slow


# ------------------------------------------------------------------------------------------------- .espdl integrity
def _tiny_sealed(tmp_path, metadata=None):
    from .test_inspect import _build_payload, _write_model

    meta = {"target": "esp32p4", **integrity.export_metadata(), **(metadata or {})}
    f = _write_model(tmp_path / "tiny.espdl", _build_payload(per_channel=[True], test_values=True, metadata=meta))
    return f


def test_exports_carry_a_content_hash_that_inspect_verifies(tmp_path, capsys):
    f = _tiny_sealed(tmp_path)
    assert "unverified" in integrity.verify(f)  # the placeholder alone proves nothing
    digest = integrity.seal(f)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert integrity.seal(f) == digest  # sealing again: the same digest (it does not cover itself)
    assert integrity.verify(f) == f"verified: SHA-256 matches embedded {integrity.KEY}"
    assert main(["inspect", str(f)]) == 0
    out = capsys.readouterr().out
    assert f"integrity: verified: SHA-256 matches embedded {integrity.KEY}" in out

    data = bytearray(f.read_bytes())
    i = data.index(bytes(range(12)))  # the int8 filter w0 (bytes 0..11): still a well-formed file when changed
    data[i + 5] ^= 0xFF
    f.write_bytes(bytes(data))
    _one_line(capsys, ["inspect", str(f)], "is corrupt or was changed", integrity.KEY)


def test_manifest_and_sidecar_hashes_are_compared(tmp_path, capsys):
    src = REPO / "models" / "esp32p4" / "yolo11n-pose-640-int8.espdl"
    assert integrity.verify(src) == ("verified: SHA-256 matches yolo11n-pose-640-int8.manifest.json (espdl_sha256), "
                                     "embedded content_sha256")
    for d in ("esp32p4", "esp32s3"):  # every shipped model matches its manifest
        for f in (REPO / "models" / d).glob("*.espdl"):
            assert integrity.verify(f).startswith("verified"), f

    # a file without the embedded content_sha256 (every shipped one now carries it; Espressif's do not): a lone copy
    # of it has no record at all
    espressif = REFERENCE_ESPDL / "p4" / "coco_pose_yolo11n_pose_s8_v2.espdl"
    require_shared(espressif)
    lone = tmp_path / "lone.espdl"
    shutil.copy(espressif, lone)
    assert main(["inspect", str(lone)]) == 0
    assert "integrity: unverified" in capsys.readouterr().out  # still runs without any record

    import hashlib

    side = tmp_path / "lone.espdl.sha256"
    side.write_text(f"{hashlib.sha256(lone.read_bytes()).hexdigest()}  lone.espdl\n")
    assert integrity.verify(lone) == "verified: SHA-256 matches lone.espdl.sha256"
    from yolo11_pose.espdl.reader import read_espdl

    clean, probe = lone.read_bytes(), tmp_path / "probe.espdl"  # probe: no .sha256 beside it
    for frac in range(50, 100, 5):  # the newcomer's damage, inside weight bytes: the file still parses, only the hash
        data = bytearray(clean)  # can tell (damage to the FlatBuffers tables is refused as unparseable, tested apart)
        mid = len(data) * frac // 100
        data[mid:mid + 4000] = bytes(b ^ 0x5A for b in data[mid:mid + 4000])
        probe.write_bytes(bytes(data))
        try:
            read_espdl(probe)
            break
        except Exception:
            continue
    else:
        pytest.fail("no 4000-byte stretch of weights found to damage")
    lone.write_bytes(bytes(data))
    _one_line(capsys, ["inspect", str(lone)], "lone.espdl.sha256", "re-copy or rebuild")
    side.unlink()
    build = tmp_path / "build"
    build.mkdir()
    (build / "model.espdl").write_bytes(bytes(data))
    shutil.copy(src.with_name(src.stem + ".manifest.json"), build / "manifest.json")
    _one_line(capsys, ["inspect", str(build / "model.espdl")], "manifest.json (espdl_sha256)")
    _one_line(capsys, ["predict", "--model", str(build), "--image", str(REPO / "tests" / "data" / "nope.jpg")],
              "not found")  # images are checked first; then the model:
    from yolo11_pose.device.twin import Twin

    with pytest.raises(UserError, match="is corrupt or was changed"):
        Twin(build)


@pytest.mark.slow
def test_a_build_is_sealed_and_matches_its_manifest(build_p4_320):
    f = build_p4_320 / "model.espdl"
    got = integrity.verify(f)
    assert got == f"verified: SHA-256 matches manifest.json (espdl_sha256), embedded {integrity.KEY}", got


def test_the_chip_reads_metadata_only_by_key():
    """What the integrity entry relies on, from ESP-DL 3.3.9's sources where the mirror is here: Model::load reads
    name, version and doc_string, and metadata only through get_metadata_prop(key)."""
    import subprocess

    repo = REPO.parent / ".mirror" / "espressif+esp-dl" / "repo"
    if not repo.is_dir():
        pytest.skip("no ESP-DL mirror on this machine")
    src = subprocess.run(["git", "-C", str(repo), "show", "v3.3.9:esp-dl/dl/model/src/dl_model_base.cpp"],
                         capture_output=True, text=True, check=False).stdout
    if not src:
        pytest.skip("ESP-DL v3.3.9 not in the mirror")
    assert [ln.strip() for ln in src.splitlines() if "metadata" in ln] == [
        "std::string Model::get_metadata_prop(const std::string &key)",
        "return m_fbs_model->get_model_metadata_prop(key);"]


# ------------------------------------------------------------------------------------------------------ --target
def test_target_that_contradicts_the_file_is_refused(capsys):
    from yolo11_pose.device.twin import Twin

    s3 = REPO / "models" / "esp32s3" / "yolo11n-pose-416-int8.espdl"
    with pytest.raises(UserError, match="was built for esp32s3 .* not esp32p4"):
        Twin(s3, target="esp32p4")
    assert Twin(s3, target="esp32s3").target == "esp32s3"  # agreeing is fine


# ------------------------------------------------------------------------------------------------- one run per --out
def test_second_run_into_a_busy_out_folder_is_refused(tmp_path, capsys, no_slow_work):
    from yolo11_pose.util import LOCK_NAME, out_lock

    out = tmp_path / "out"
    with out_lock(out):
        assert (out / LOCK_NAME).is_file()
        _one_line(capsys, ["export", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--out", str(out)],
                  "another yolo11-pose run", str(out))
    assert not (out / LOCK_NAME).exists()


def test_concurrent_processes_take_turns_on_out(tmp_path):
    """A real second process: the lock is an flock, held by the first run's process."""
    import subprocess
    import sys

    out = tmp_path / "out"
    code = ("import sys, time; from yolo11_pose.util import out_lock\n"
            f"with out_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "export", "--weights", "yolo11n-pose.yaml",
                            "--imgsz", "96", "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"(pid {holder.pid})" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------ eval robustness
def test_eval_image_loading_errors_are_user_errors(tmp_path):
    from yolo11_pose.evaluation.evaluate import run_model

    bad = tmp_path / "x.jpg"
    bad.write_text("not a picture")

    class M:
        def predict(self, *a, **k):
            return []

    with pytest.raises(UserError, match="not a readable image"):
        run_model(M(), [(1, bad, 8, 8)], "m")


def test_eval_png_labels_both_bars(tmp_path, monkeypatch):
    import matplotlib.axes
    from yolo11_pose.evaluation.evaluate import write_report

    texts = []
    orig = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: (texts.append(s),
                                                                                       orig(self, x, y, s, *a, **k)))
    rows = [{"name": "m", "kind": "float", "imgsz": 96, "images": 1, "AP": 0.5, "AP50": 0.75, "ratio": 1.0,
             "ms_per_image": 1.0}]
    write_report(rows, tmp_path, "t")
    assert "0.500" in texts and "0.750" in texts


# ------------------------------------------------------------------------------------------------ help and docs
def _sub(name):
    ap = parser()
    return next(a for a in ap._actions if a.dest == "cmd").choices[name]


def test_help_says_what_each_command_does_and_its_real_defaults():
    ap = parser()
    top = ap.format_help()
    for cmd in ("export", "quantize", "build", "qat", "inspect", "predict", "eval"):
        assert re.search(rf"\b{cmd}\b", top.split("positional arguments")[0]), cmd
        assert _sub(cmd).description, f"`yolo11-pose {cmd} --help` has no description"
    qat = _sub("qat").format_help()
    assert "default accurate" in " ".join(qat.split()) and "default fast" not in " ".join(qat.split())
    build = " ".join(_sub("build").format_help().split())
    assert "default fast" in build and "with --device cuda" in build  # bias correction/TQT: only with a GPU
    inspect = next(a for a in _sub("inspect")._actions if a.dest == "file")
    assert inspect.help


def test_host_build_folder_is_exactly_the_one_named(monkeypatch, tmp_path):
    from yolo11_pose.device import cpp

    monkeypatch.setenv("YOLO11_POSE_HOST_BUILD", str(tmp_path / "X"))
    assert cpp.build_dir("release") == tmp_path / "X"
    assert cpp.build_dir("asan") != tmp_path / "X"


def test_first_compile_is_announced(monkeypatch, tmp_path, capsys):
    from yolo11_pose.device import cpp

    monkeypatch.setenv("YOLO11_POSE_HOST_BUILD", str(tmp_path / "hb"))
    monkeypatch.setattr(cpp, "_toolchain", lambda: [])

    def fail(cmd, **kw):
        raise KeyboardInterrupt  # stop before compiling anything

    monkeypatch.setattr(cpp.subprocess, "run", fail)
    with pytest.raises(KeyboardInterrupt):
        cpp.build("release")
    assert "compiling the component's C++ postprocessor" in capsys.readouterr().err


def test_wheels_are_ignored_by_git():
    lines = (REPO / ".gitignore").read_text().split()
    assert "*.whl" in lines and "/.venv/" in lines


def _quick_start() -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_quick_start_is_two_commands_with_a_venv_and_cpu_torch():
    qs = _quick_start()
    block = qs.split("```bash\n", 1)[1].split("```", 1)[0]
    cmds = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(cmds) == 2, cmds
    first = cmds[0].split(" && ")
    assert first[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"], first
    assert first[2].startswith("pip install -e \".[test]\"") and \
        "--extra-index-url https://download.pytorch.org/whl/cpu" in first[2]
    assert first[3].startswith("yolo11-pose build ") and cmds[1] == "python3 -m pytest"
    assert "python3-venv" in qs and "CUDA" in qs and "--device cuda" in qs  # Debian's venv module; the GPU way
    assert "idle" in qs


def test_ci_runs_the_readme_install_line_in_a_venv():
    ci = (REPO / ".ci" / "run").read_text()
    assert "grep -m1 '^python3 -m venv \\.venv && ' README.md" in ci and 'eval "$install"' in ci
    assert ci.rstrip().endswith("python3 -m pytest")
    assert "pip install" not in ci.replace('*"pip install"*', "").replace("... pip install", "")
    # the README line the CI script picks is the Quick start's command 1
    lines = (REPO / "README.md").read_text().splitlines()
    line = next(ln for ln in lines if ln.startswith("python3 -m venv .venv && "))
    assert line in _quick_start()


def test_readme_numbers_of_the_pack_and_inspect():
    readme = (REPO / "README.md").read_text()
    assert "about 10 MB" not in readme
    assert "integrity: unverified" in readme


def test_png_written_by_hand_is_what_the_tries_use(tmp_path):
    """benchmarks/newcomer_tries.py's PNG writer gives a file Pillow reads as written (the bomb's header aside)."""
    from PIL import Image

    nt = _tries_module()
    a = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000)
    f = nt._png(tmp_path / "a.png", a, 0, depth=16)
    with Image.open(f) as im:
        assert im.mode.startswith("I;16") and np.array_equal(np.asarray(im), a)
    assert struct.unpack(">II", (nt._png(tmp_path / "b.png", a[:2, :2], 0, 16, size=(9, 7))).read_bytes()[16:24]) \
        == (9, 7)
