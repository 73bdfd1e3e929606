"""examples/get_started is tested like the test apps (issue 17): its board test (pytest_get_started.py) is collected
by the same conftest rules, and what it expects, the three people of its frame as the host twin computes them with
each target's default model, holds here without a board."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from .conftest import REPO

APP = REPO / "examples" / "get_started"
DEFAULT_MODEL = {"esp32p4": 640, "esp32s3": 416}  # Kconfig: 416 on the ESP32-S3, else 640


def _collected(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "examples", "--collect-only", "-q",
                        *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode in (0, 5), r.stdout + r.stderr  # 5: everything deselected
    return {ln.split("::", 1)[1] for ln in r.stdout.splitlines() if "::" in ln}


def test_board_test_is_collected_by_the_test_app_rules():
    name = "test_get_started_prints_the_twins_people"
    assert _collected() == {name}
    assert _collected("--target", "esp32p4") == {name}
    assert _collected("--target", "esp32s3") == {name}
    assert _collected("--target", "linux") == set()  # no linux build of an ESP-DL app
    assert _collected("--target", "esp32s3", "--embedded-services", "idf,qemu") == set()
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "examples", "-q", "-rs"],
                       cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0 and "1 skipped" in r.stdout and "needs a board" in r.stdout, r.stdout


@pytest.mark.parametrize("target", sorted(DEFAULT_MODEL))
def test_twin_finds_the_three_people_of_the_frame(target):
    spec = importlib.util.spec_from_file_location("pytest_get_started", APP / "pytest_get_started.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = REPO / "models" / target / f"yolo11n-pose-{DEFAULT_MODEL[target]}-int8.espdl"
    people = mod.twin_people(model, target)
    assert len(people) == mod.PEOPLE
    # README: boxes about [16, 118, 73, 268], [66, 120, 102, 254], [199, 117, 240, 259] (the float model's).
    readme = [[16, 118, 73, 268], [66, 120, 102, 254], [199, 117, 240, 259]]
    for want in readme:
        # 6 px: an int8/int16 model's box edges move a few pixels from the float model's (S3 416: 4.3 px here)
        assert any(all(abs(a - b) <= 6 for a, b in zip(p["box"], want)) for p in people), (want, people)
