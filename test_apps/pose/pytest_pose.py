"""The pose test app on a board: its poses must match the host twin's for the same model and frames.

The expected poses (pose_golden.json in the build folder) come from pose_test_info.json, which the app's build writes:
for a prebuilt model, the golden shipped next to it (models/<target>/<stem>.golden.json) when it was made for that
exact .espdl, frame pixels and thresholds; otherwise the host twin computes them from the embedded .espdl itself (the
`yolo11_pose` executor), which needs the `yolo11_pose` package with its ML dependencies.
"""
from __future__ import annotations

import json

import pytest

# One model run: about 0.7 s at 320x320 on the ESP32-P4 and about 7 s on the ESP32-S3 (28 s at 640); dl::Model::test()
# at start-up runs the model once more. Generous, since a timeout here only bounds the wait for the next line.
LINE_TIMEOUT_S = 180


@pytest.mark.esp32p4
@pytest.mark.esp32s3
@pytest.mark.generic
@pytest.mark.parametrize("config", ["default", "regenerate"], indirect=True)
def test_pose_matches_twin(dut, build_path, config, record_property) -> None:
    from yolo11_pose.evaluation import devicelog

    golden = devicelog.ensure_golden(build_path)  # before the wait: a missing twin fails fast
    lines = devicelog.collect_from_dut(dut.expect, timeout=LINE_TIMEOUT_S)
    log = devicelog.parse_lines(lines)
    (build_path / "pose_device_log.txt").write_text("\n".join(lines) + "\n")

    for name, t in log.timings().items():
        for k, v in t.items():
            record_property(f"{name}_{k}", v)
    if log.mem:
        record_property("mem", json.dumps(log.mem))

    problems = devicelog.compare(log, golden)
    assert not problems, "device differs from the host twin:\n  " + "\n  ".join(problems)
    n = sum(len(img["poses"]) for img in golden["images"].values())
    assert n > 0, "the golden has no pose at all: the comparison would prove nothing (check the model)"
    # The model carries test values (an input and the outputs ESP-DL computes for it, checked on the host by the
    # executor): dl::Model::test() must run on the chip and pass.
    assert log.model_test == "pass", f"dl::Model::test() on the chip: {log.model_test}"
