"""Packaging: the manifest lints and `compote component pack` builds the registry archive offline, holding exactly
what a firmware project needs (the allowlist in idf_component.yml) and nothing a developer's checkout accumulates."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
_JUNK = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "dist", "runs",
                               "managed_components")
MB = 1 << 20


def IGNORE(d, names):  # noqa: N802 -- like shutil.ignore_patterns; build folders only, not build.py
    return set(_JUNK(d, names)) | {n for n in names if n.startswith("build") and (Path(d) / n).is_dir()}


def _compote() -> str:
    exe = shutil.which("compote")
    if not exe:
        pytest.fail("compote not found; pip install idf-component-manager (listed in the test extras)")
    return exe


def _files(sub: str, *suffixes: str) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in (REPO / sub).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and (not suffixes or p.suffix in suffixes)}


def expected_content() -> set[str]:
    """What a registry user gets: the component, the prebuilt models with their manifests, the Python tools (the
    CMake hook runs them; its `pip install` builds them), and the examples."""
    top = {"idf_component.yml", "CMakeLists.txt", "Kconfig", "LICENSE", "README.md", "pyproject.toml", "setup.py",
           "MANIFEST.in", "models/README.md"}
    if (REPO / "CHANGELOG.md").is_file():
        top.add("CHANGELOG.md")
    models = {p.relative_to(REPO).as_posix() for p in REPO.glob("models/*/*")
              if p.name.endswith((".espdl", ".manifest.json"))}
    # Less what serves this repository's CI only: sdkconfig.ci and the board tests (pytest_*.py, examples/conftest.py).
    examples = {p.relative_to(REPO).as_posix() for p in REPO.glob("examples/*/**/*")
                if p.is_file() and p.name != "sdkconfig.ci" and not p.name.startswith("pytest_")
                and "__pycache__" not in p.parts}
    return top | _files("cmake") | _files("include") | _files("src") | _files("tools/yolo11_pose") | models | examples


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """The archive packed from a copy of the checkout plus the debris a developer's checkout has."""
    tmp = tmp_path_factory.mktemp("pack")
    work = tmp / "yolo11_pose"
    shutil.copytree(REPO, work, ignore=IGNORE)
    for junk in ("tools/yolo11_pose_esp.egg-info/PKG-INFO", "tools/yolo11_pose/__pycache__/cli.cpython-311.pyc",
                 "build/lib/yolo11_pose/cli.py", "dist/yolo11_pose_esp-0.1.0.whl", "runs/bus.png",
                 "examples/get_started/build/app.bin", "examples/get_started/sdkconfig",
                 "examples/get_started/managed_components/espressif__esp-dl/CMakeLists.txt",
                 "examples/get_started/dependencies.lock", "test_apps/pose/build_esp32p4_default/app.bin",
                 ".pytest_cache/README.md", "notes.txt"):
        (work / junk).parent.mkdir(parents=True, exist_ok=True)
        (work / junk).write_text("junk\n")
    dist = tmp / "dist"
    r = subprocess.run([_compote(), "component", "pack", "--name", "yolo11_pose", "--dest-dir", str(dist)],
                       cwd=work, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    version = yaml.safe_load((REPO / "idf_component.yml").read_text())["version"]
    path = dist / f"yolo11_pose_{version}.tgz"
    assert path.is_file(), sorted(p.name for p in dist.iterdir())
    return path


def test_manifest_lints_and_declares_targets():
    apps = [*REPO.glob("test_apps/*/main/idf_component.yml"), *REPO.glob("examples/*/main/idf_component.yml")]
    for manifest in [REPO / "idf_component.yml", *apps]:
        r = subprocess.run([_compote(), "manifest", "lint", str(manifest)], check=False, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"{manifest}: {r.stdout}{r.stderr}"
    m = yaml.safe_load((REPO / "idf_component.yml").read_text())
    assert set(m["targets"]) == {"esp32p4", "esp32s3", "linux"}
    dl = m["dependencies"]["espressif/esp-dl"]
    assert dl["rules"] == [{"if": "target in [esp32p4, esp32s3]"}]  # the linux target builds the core alone


def test_archive_holds_exactly_the_allowlist(archive):
    with tarfile.open(archive) as t:
        names = {m.name.lstrip("./") for m in t.getmembers() if m.isfile()}
    expected = expected_content()
    assert names - expected == set(), "in the archive but not meant to be"
    assert expected - names == set(), "meant to be in the archive but missing"
    # The essentials, spelled out (expected_content() is derived from the tree):
    for needed in ("include/yolo11_pose.hpp", "src/postprocess.cpp", "src/yolo11_pose_espdl.cpp",
                   "cmake/yolo11_pose_model.cmake", "tools/yolo11_pose/cli.py", "tools/yolo11_pose/device/host/cli.cpp",
                   "models/esp32p4/yolo11n-pose-640-int8.espdl", "models/esp32s3/yolo11n-pose-416-int8.espdl",
                   "examples/get_started/main/get_started_main.cpp", "examples/get_started/partitions.csv"):
        assert needed in names, needed
    assert not [n for n in names if n.endswith(".golden.json") or n.startswith(("tests/", "test_apps/", ".ci/",
                                                                                 "benchmarks/"))]


def test_archive_size(archive):
    """The four prebuilt models are most of it (17.4 MB of .espdl in a 13.7 MB archive): every target and size
    menuconfig offers; they carry 4-30 % of their MACs in int16 and the 416 ones test values. The rest must stay
    small."""
    with tarfile.open(archive) as t:
        members = [m for m in t.getmembers() if m.isfile()]
    models = sum(m.size for m in members if m.name.endswith(".espdl"))
    others = sum(m.size for m in members if not m.name.endswith(".espdl"))
    assert models == sum(p.stat().st_size for p in REPO.glob("models/*/*.espdl"))
    assert others < 1.5 * MB, sorted((m.size, m.name) for m in members if not m.name.endswith(".espdl"))[-10:]
    assert archive.stat().st_size < 14.5e6  # the four models are ~12.5 MB of it


def test_archive_is_pip_installable(archive, tmp_path):
    """The CMake hook tells users to `pip install` the component folder: the archive alone must build the wheel,
    C++ sources of the twin included."""
    import sys
    import zipfile

    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "component", filter="data")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
                        str(tmp_path / "dist"), str(tmp_path / "component")], capture_output=True, text=True,
                       check=False, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert {"yolo11_pose/cli.py", "yolo11_pose/device/host/cli.cpp", "yolo11_pose/device/host/component/src/postprocess.cpp",
            "yolo11_pose/cfg/default.yaml"} <= names
