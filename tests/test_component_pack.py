"""Packaging: the manifest lints and `compote component pack` builds the registry archive offline."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "build*",
                                "dist", "runs", "managed_components")


def _compote() -> str:
    exe = shutil.which("compote")
    if not exe:
        pytest.fail("compote not found; pip install idf-component-manager (listed in the test extras)")
    return exe


def test_manifest_lints_and_declares_targets():
    r = subprocess.run([_compote(), "manifest", "lint", str(REPO / "idf_component.yml")], check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m = yaml.safe_load((REPO / "idf_component.yml").read_text())
    assert set(m["targets"]) == {"esp32p4", "esp32s3", "linux"}
    dl = m["dependencies"]["espressif/esp-dl"]
    assert dl["rules"] == [{"if": "target in [esp32p4, esp32s3]"}]  # the linux target builds the core alone


def test_pack_builds_archive_offline(tmp_path):
    work = tmp_path / "yolo11_pose"
    shutil.copytree(REPO, work, ignore=IGNORE)
    dist = tmp_path / "dist"
    r = subprocess.run([_compote(), "component", "pack", "--name", "yolo11_pose", "--dest-dir", str(dist)],
                       cwd=work, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    version = yaml.safe_load((REPO / "idf_component.yml").read_text())["version"]
    archive = dist / f"yolo11_pose_{version}.tgz"
    assert archive.is_file(), sorted(p.name for p in dist.iterdir())
    with tarfile.open(archive) as t:
        names = {n.lstrip("./") for n in t.getnames()}
    for needed in ("idf_component.yml", "CMakeLists.txt", "include/yolo11_pose.hpp", "include/yolo11_pose/pose.hpp",
                   "src/postprocess.cpp", "src/preprocess.cpp", "src/yolo11_pose_espdl.cpp"):
        assert needed in names, f"{needed} missing from the archive"
    assert not any(n.startswith(("tests/", ".ci/", "benchmarks/")) for n in names), "test files leaked into it"
