"""The tools from an installed wheel, away from the checkout: the C++ bridge the twin runs ships inside the package
(host/ plus the component's include/ and src/) and builds on the user's machine as an optimized release build."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

_JUNK = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "dist", "runs",
                               "managed_components", "models", "benchmarks")


def IGNORE(d, names):  # noqa: N802 -- like shutil.ignore_patterns; build folders only, not build.py
    return set(_JUNK(d, names)) | {n for n in names if n.startswith("build") and (Path(d) / n).is_dir()}


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the checkout (so the build leaves nothing in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp / "dist",
          src], timeout=300)
    (whl,) = (tmp / "dist").glob("yolo11_pose_esp-*.whl")
    return whl


def test_wheel_carries_the_bridge_sources_and_nothing_of_the_tests(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    host = "yolo11_pose/device/host/"
    for f in ("CMakeLists.txt", "host.cmake", "cli.cpp", "component/include/yolo11_pose/postprocess.hpp",
              "component/include/yolo11_pose/preprocess.hpp", "component/src/postprocess.cpp",
              "component/src/preprocess.cpp", "component/src/image.cpp", "component/src/pixel_convert.hpp"):
        assert host + f in names, f"{host + f} missing from {wheel.name}"
    # Every C++ source of the component travels, byte for byte (one copy in the repository, copied at build time).
    with zipfile.ZipFile(wheel) as z:
        for d in ("include", "src"):
            for p in (REPO / d).rglob("*"):
                if p.is_file():
                    assert z.read(f"{host}component/{p.relative_to(REPO).as_posix()}") == p.read_bytes(), p
    # ... and every file of the package (data files included), nothing of the tests.
    pkg = REPO / "tools" / "yolo11_pose"
    for p in pkg.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            assert f"yolo11_pose/{p.relative_to(pkg).as_posix()}" in names, f"{p} missing from {wheel.name}"
    assert not [n for n in names if n.startswith(("tests/", "yolo11_pose/device/host/stubs")) or "unit_tests" in n]


def _see_this_environment(py: Path) -> None:
    """Make the packages of the interpreter running the tests visible in the new venv, after its own.

    `venv --system-site-packages` exposes the *base* interpreter's site-packages: run from inside a venv (the
    README's setup), that is not where torch & co. are. A .pth file in the new venv adds this environment's
    site-packages (a .pth line is a path appended to sys.path, after the new venv's own site-packages)."""
    import site
    import sysconfig

    if sys.prefix == sys.base_prefix:
        return  # a system interpreter: --system-site-packages already shows its packages
    dirs = [d for d in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]) if Path(d).is_dir()]
    r = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=120)
    (Path(r.stdout.strip()) / "_outer_environment.pth").write_text("".join(f"{d}\n" for d in dirs))


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> tuple[Path, dict, Path]:
    """The wheel installed in a fresh venv (torch & co. from the system), run from a folder outside the checkout."""
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", env_dir], timeout=300)
    py = env_dir / "bin" / "python"
    _see_this_environment(py)
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", wheel], timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO11_POSE_", "PYTHON"))}
    env["YOLO11_POSE_HOST_BUILD"] = str(tmp / "host-build")  # a fresh build of the installed sources
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return env_dir, env, cwd


def test_installed_package_is_the_one_that_runs(venv):
    env_dir, env, cwd = venv
    r = _run([env_dir / "bin" / "python", "-c",
              "import PIL, numpy, yolo11_pose, yolo11_pose.device.cpp as c; print(yolo11_pose.__file__); "
              "print(c.source_root()); print(c.default_variant())"], env=env, cwd=cwd, timeout=120)
    pkg, root, variant = r.stdout.split()
    assert Path(pkg).is_relative_to(env_dir) and Path(root).is_relative_to(env_dir), r.stdout
    assert variant == "release"
    from yolo11_pose import __version__

    r = _run([env_dir / "bin" / "yolo11-pose", "--version"], env=env, cwd=cwd, timeout=120)
    assert r.stdout.strip() == f"yolo11-pose {__version__}"


@pytest.mark.slow
@pytest.mark.cpp
def test_installed_predict_runs_the_twin_with_a_release_build(venv, build_p4_320, bus_jpg):
    env_dir, env, cwd = venv
    r = _run([env_dir / "bin" / "yolo11-pose", "predict", "--model", build_p4_320, "--image", bus_jpg, "--json"],
             env=env, cwd=cwd, timeout=600)
    poses = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(poses) >= 3, r.stdout + r.stderr  # bus.jpg: four people

    # The bridge it built: the installed sources, optimized, no sanitizers.
    out = Path(env["YOLO11_POSE_HOST_BUILD"])  # exactly the folder named (not a "-release" sibling)
    cache = (out / "CMakeCache.txt").read_text()
    assert "CMAKE_BUILD_TYPE:STRING=Release" in cache and "YOLO11_POSE_SANITIZE:BOOL=OFF" in cache
    assert f"CMAKE_HOME_DIRECTORY:INTERNAL={env_dir}" in cache, "built from somewhere other than the installed package"

    # Same poses as the checkout's twin with the sanitizer build (optimization must not change a single value).
    from yolo11_pose.device.preprocess import load_rgb
    from yolo11_pose.device.twin import Twin

    ref = Twin(build_p4_320).predict(load_rgb(str(bus_jpg)))
    assert poses == [{"image": str(bus_jpg), **q.to_dict()} for q in ref]


# ------------------------------------------------------------------------------------- a machine without a compiler
@pytest.fixture()
def bare_path(tmp_path, monkeypatch) -> Path:
    """PATH with cmake and ninja but no C++ compiler, and an empty build cache."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("cmake", "ninja"):
        (bindir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("YOLO11_POSE_HOST_BUILD", str(tmp_path / "host-build"))
    return bindir


def test_missing_toolchain_is_one_line(bare_path, monkeypatch):
    from yolo11_pose.device import cpp

    def error() -> str:
        with pytest.raises(cpp.HostBuildError) as e:
            cpp.build("release")
        assert "\n" not in str(e.value), str(e.value)
        return str(e.value)

    assert error().startswith("no C++ compiler found (c++, g++, clang++)")
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    assert error().startswith("CXX=/nonexistent/g++ not found")
    monkeypatch.setenv("CXX", "/bin/false")  # a "compiler" CMake cannot use: the build fails, said in one line
    msg = error()
    assert msg.startswith("building the C++ postprocessor for the host failed (") and "full log: " in msg
    monkeypatch.setenv("PATH", "")
    assert error().startswith("cmake not found")


@pytest.mark.slow
def test_predict_without_compiler_exits_2_with_one_line(bare_path, build_p4_320, bus_jpg, capsys):
    from yolo11_pose import cli

    assert cli.main(["predict", "--model", str(build_p4_320), "--image", str(bus_jpg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no C++ compiler found"), err
