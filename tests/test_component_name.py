"""The component's name comes from its folder (ESP-IDF's rule): in a folder a project cannot resolve as yolo11_pose,
configuration stops with one line saying what to rename, before ESP-IDF's "Failed to resolve component" error.

Which folder names resolve is asked of idf-component-manager's own code (no ESP-IDF here): how it names a local
dependency, and how it matches a requirement to the components it knows. The component's CMakeLists.txt runs as in
ESP-IDF's requirement expansion (tests/cmake_stub/early_expansion.cmake)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

EARLY = REPO / "tests" / "cmake_stub" / "early_expansion.cmake"
FOLDERS = ["yolo11_pose", "yolo11-pose-esp__yolo11_pose", "espressif__yolo11_pose", "proj", "main",
           "yolo11_pose-main", "yolo11-pose", "my_yolo11_pose"]


@pytest.fixture(autouse=True)
def _cmake():
    if not shutil.which("cmake"):
        pytest.skip("needs cmake")


def _component_in(tmp_path: Path, folder: str) -> Path:
    d = tmp_path / folder
    d.mkdir()
    for f in ("CMakeLists.txt", "idf_component.yml"):
        shutil.copy(REPO / f, d / f)
    return d


def _resolves(requirement: str, component_name: str) -> bool:
    """Whether the manager's requirement matching finds the component named `component_name` for `requirement`."""
    from idf_component_manager.cmake_component_requirements import _handle_component_reqs

    return _handle_component_reqs([requirement], [component_name, "main", "espressif__esp-dl"]) == [component_name]


def _project_resolves(component_name: str) -> bool:
    # A project's main requires `yolo11_pose` (README, test apps, example): the manager matches it to the component
    # named exactly so or `<namespace>__yolo11_pose` (a registry or git download).
    return _resolves("yolo11_pose", component_name)


@pytest.mark.parametrize("folder", FOLDERS)
def test_configure_stops_exactly_where_a_project_could_not_resolve_the_component(tmp_path, folder):
    from idf_component_tools.sources.local import LocalSource

    d = _component_in(tmp_path, folder)
    # The manager names a local (override_path) dependency after its folder, whatever the dependency key says.
    assert LocalSource(override_path=str(d)).versions("yolo11-pose-esp/yolo11_pose", target="esp32p4").name == folder

    r = subprocess.run(["cmake", "-D", f"COMPONENT_DIR={d}", "-D", "IDF_TARGET=esp32p4", "-P", str(EARLY)],
                       capture_output=True, text=True, check=False, timeout=60)
    if _project_resolves(folder):
        assert r.returncode == 0, r.stderr
        assert "requires: esp-dl" in r.stdout + r.stderr
    else:
        assert r.returncode != 0
        msg = " ".join(r.stderr.split())
        assert f"yolo11_pose: this component's folder is named '{folder}'" in msg, r.stderr
        assert "rename it to yolo11_pose" in msg


def test_resolution_rule_is_what_the_check_assumes():
    # The names the check lets through are exactly the ones the manager matches (guards against a manager change).
    assert [f for f in FOLDERS if _project_resolves(f)] == FOLDERS[:3]


def test_test_apps_and_examples_use_the_checkout_by_override_path():
    from idf_component_tools.build_system_tools import build_name

    # core_unity compiles the portable core's sources itself (no ESP-DL, no model): it has no manifest.
    ymls = [*REPO.glob("test_apps/*/main/idf_component.yml"), *REPO.glob("examples/*/main/idf_component.yml")]
    assert len(ymls) >= 2
    for yml in ymls:
        deps = yaml.safe_load(yml.read_text())["dependencies"]
        (key,) = [k for k, v in deps.items() if isinstance(v, dict) and "override_path" in v]
        assert key == "yolo11-pose-esp/yolo11_pose", f"{yml}: the registry name, so that a copy resolves from there"
        assert (yml.parent / deps[key]["override_path"]).resolve() == REPO
        # The manager also makes main require the key's build name: it must find the checkout under the folder name
        # the check lets through, and a registry download.
        for folder in ("yolo11_pose", "yolo11-pose-esp__yolo11_pose"):
            assert _resolves(build_name(key), folder), (key, folder)
