"""get_started on a board: it must print the people the host twin finds in its frame (three, for every prebuilt
model), with the same scores and boxes.

The twin runs the .espdl the firmware embeds (build/yolo11_pose/yolo11_pose.espdl, copied by the component's build)
on the embedded frame (main/frame_240x320.rgb565be), at the thresholds menuconfig compiled in (the component's
Kconfig defaults; get_started does not change them). Needs the `yolo11_pose` package on the host.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent
FRAME = APP / "main" / "frame_240x320.rgb565be"
# One inference: ~2.7 s at 640 on the ESP32-P4, tens of seconds on the ESP32-S3 (README); the model loads first.
TIMEOUT_S = 180
PERSON_RE = re.compile(rb"get_started: person (\d+): score ([\d.]+), box \[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]")
SUMMARY_RE = re.compile(rb"get_started: (\d+) person\(s\) in a (\d+)x(\d+) frame")
# The app prints scores with two decimals and integer boxes; the twin computes what the chip computes.
SCORE_TOL = 0.011
BOX_TOL_PX = 1.5
PEOPLE = 3  # README: "three people" in the frame


def expected_people(build_path: Path, target: str) -> list[dict]:
    model = build_path / "yolo11_pose" / "yolo11_pose.espdl"
    if not model.is_file():
        pytest.fail(f"{model} is missing: the build did not copy its model there", pytrace=False)
    return twin_people(model, target)


def twin_people(model: Path, target: str) -> list[dict]:
    """The poses the chip computes for the frame with this .espdl (tests/test_get_started.py runs it in CI)."""
    from yolo11_pose.evaluation import devicelog
    from yolo11_pose.device.pixels import to_rgb888

    rgb = to_rgb888(FRAME.read_bytes(), 240, 320, "rgb565be")
    golden = devicelog.make_golden(model, {"frame": rgb}, target=target, **devicelog.kconfig_defaults())
    return golden["images"]["frame"]["poses"]


def read_people(expect) -> tuple[list[tuple[int, float, list[int]]], int]:
    people = []
    while True:
        m = expect([PERSON_RE, SUMMARY_RE], timeout=TIMEOUT_S)
        if m.re.pattern == SUMMARY_RE.pattern:
            assert (int(m.group(2)), int(m.group(3))) == (240, 320)
            return people, int(m.group(1))
        people.append((int(m.group(1)), float(m.group(2)), [int(m.group(i)) for i in range(3, 7)]))


@pytest.mark.esp32p4
@pytest.mark.esp32s3
@pytest.mark.generic
def test_get_started_prints_the_twins_people(dut, build_path, target) -> None:
    want = expected_people(build_path, target)
    assert len(want) == PEOPLE, f"the twin finds {len(want)} people in the frame, the README says {PEOPLE}"
    got, count = read_people(dut.expect)
    assert count == len(got) == len(want), (count, got, want)
    for (i, score, box), w in zip(got, want):
        assert abs(score - w["score"]) <= SCORE_TOL, (i, score, w["score"])
        assert all(abs(b - v) <= BOX_TOL_PX for b, v in zip(box, w["box"])), (i, box, w["box"])
