"""Unity tests of the portable core (main/test_*.cpp): on the chips, as a linux host executable, and in QEMU."""
from __future__ import annotations

import pytest


@pytest.mark.esp32p4
@pytest.mark.esp32s3
@pytest.mark.generic
def test_core_unity(dut) -> None:
    # Every case from the Unity menu, the board reset between cases; pytest-embedded records each one in JUnit.
    dut.run_all_single_board_cases(timeout=60)


@pytest.mark.linux
@pytest.mark.host_test
def test_core_unity_linux(dut) -> None:
    # The linux build runs every case at start-up and exits; read Unity's summary.
    dut.expect_unity_test_output(timeout=60)


# Espressif's QEMU emulates esp32, esp32c3 and esp32s3 (pytest-embedded-qemu's QEMU_TARGETS), not the ESP32-P4.
# The core uses no ESP-DL kernels, so nothing here depends on the S3's SIMD instructions being emulated.
@pytest.mark.esp32s3
@pytest.mark.qemu
@pytest.mark.host_test
def test_core_unity_qemu(dut) -> None:
    dut.run_all_single_board_cases(timeout=60)
