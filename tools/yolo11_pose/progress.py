"""Progress of ESP-PPQ's long, silenced phases, shown on stderr.

ppq_env._quiet keeps ESP-PPQ's hundreds of log lines off the screen (they would spoil the output, and --json
stdout). After calibration ESP-PPQ then works for minutes with nothing shown, so ``PhaseMonitor`` reads the captured
log from a thread and shows the phase it is in: the name of its running pass, calibration steps, and the time so far.
Our own steps inside the silenced block are announced with ``mark()``.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable

MARK = "[yolo11-pose] "
_CALIB = re.compile(r"Calibration Progress\(Phase (\d+)\):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
_PASS = re.compile(r"^(?:\[[\d:]+\]\s*)?(\S.*?)\s+Running \.\.\.")


def mark(text: str) -> None:
    """Announce one of our own phases inside the silenced block (sys.stdout is the captured log there)."""
    print(f"\n{MARK}{text}", file=sys.stdout, flush=True)


def _line_phase(line: str) -> tuple[str, str] | None:
    line = line.strip()
    if line.startswith(MARK):
        return line[len(MARK):], ""
    if "Network Quantization Finished" in line:
        return "writing model.espdl", ""
    m = _CALIB.search(line)
    if m:
        last = " (then the ranges are computed)" if m[2] == m[3] else ""
        return f"calibration pass {m[1]}", f"{m[2]}/{m[3]} steps{last}"
    m = _PASS.search(line)
    if m:
        return m[1], ""
    return None


def current_phase(log: str) -> tuple[str, str] | None:
    """(phase, detail) for the tail of a captured ESP-PPQ log, e.g. ("calibration pass 2", "5/8 steps")."""
    for line in reversed(re.split(r"[\r\n]", log)):
        found = _line_phase(line)
        if found:
            return found
    return None


def phases_in(text: str) -> list[tuple[str, str]]:
    """Every (phase, detail) in ``text``, in order (complete lines only)."""
    return [f for f in map(_line_phase, re.split(r"[\r\n]", text)) if f]


def _elapsed(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class PhaseMonitor:
    """Watches the captured log (``log()`` returns it) and reports to file descriptor ``out_fd`` (the real stderr).

    On a terminal one status line is rewritten in place; elsewhere (CI, a build log) a line is written when the phase
    changes, and every ``heartbeat`` seconds while it does not.
    """

    def __init__(self, log: Callable[[], str], out_fd: int, title: str, interval: float = 0.5,
                 heartbeat: float = 30.0, tty: bool | None = None):
        self.log, self.out_fd, self.title = log, out_fd, title
        self.interval, self.heartbeat = interval, heartbeat
        self.tty = os.isatty(out_fd) if tty is None else tty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yolo11-pose-progress", daemon=True)
        self._t0 = time.monotonic()
        self._last_phase, self._last_line_t = None, 0.0
        self._pos = 0  # how much of the log has been read for phase changes

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
            self._poll()
            if self.tty:
                self._write("\r\x1b[K")
        return False

    def _write(self, text: str) -> None:
        try:
            os.write(self.out_fd, text.encode())
        except OSError:
            pass

    def _poll(self) -> None:
        log = self.log()
        now = time.monotonic()
        head = f"{self.title} [{_elapsed(now - self._t0)}]: "
        if not self.tty:
            # every phase that began since the last poll, even one that ended in between (a small model's
            # calibration can start and finish within one interval)
            end = max(log.rfind("\n"), log.rfind("\r")) + 1
            if end < self._pos:  # the log was replaced: start over
                self._pos = 0
            found = phases_in(log[self._pos:end])
            # one line per phase, with the furthest detail the new text shows for it
            runs = [f for i, f in enumerate(found) if i + 1 == len(found) or found[i + 1][0] != f[0]]
            for phase, detail in runs:
                if phase != self._last_phase:
                    self._write(head + phase + (f", {detail}" if detail else "") + "\n")
                    self._last_phase, self._last_line_t = phase, now
            self._pos = max(self._pos, end)
        found = current_phase(log[-(1 << 16):])
        if found is None:
            return
        phase, detail = found
        text = head + phase + (f", {detail}" if detail else "")
        if self.tty:
            self._write(f"\r\x1b[K{text}")
        elif phase != self._last_phase or now - self._last_line_t >= self.heartbeat:
            self._write(text + "\n")
            self._last_line_t = now
        self._last_phase = phase

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()
