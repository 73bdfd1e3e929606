"""ESP-PPQ in this process: the one release our export fixes are written for, imported once, its log kept quiet.

Shared by quantize.py and recipe.py (and anything else that runs ESP-PPQ), so that neither imports the other.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile

from yolo11_pose.progress import PhaseMonitor
from yolo11_pose.util import UserError

#: The ESP-PPQ release whose code `espdl_export_fixes` patches; any other is refused (pyproject pins it too).
ESPPPQ_VERSION = "1.3.12"


def check_ppq_version() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("esp-ppq")
    except PackageNotFoundError:
        found = None
    if found != ESPPPQ_VERSION:
        raise UserError(f"esp-ppq {found or 'is not installed'}{' is installed' if found else ''}, but yolo11-pose's "
                        f"export fixes are written for esp-ppq {ESPPPQ_VERSION}; run "
                        f"`python -m pip install esp-ppq=={ESPPPQ_VERSION}`")


@contextlib.contextmanager
def _quiet(verbose: bool, progress: str | None = None):
    """ESP-PPQ logs hundreds of lines through handles it captured at import: silence fds 1 and 2 unless --verbose.

    What it printed is replayed when the block fails, so an ESP-PPQ error is never hidden. With ``progress`` (a
    title), the phase ESP-PPQ is in is shown on the real stderr meanwhile (progress.PhaseMonitor).
    """
    if verbose:
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        ok = False
        text = io.StringIO()  # ESP-PPQ's prints and progress bars, in order, for the phase monitor
        monitor = PhaseMonitor(text.getvalue, saved[1], progress) if progress else contextlib.nullcontext()
        try:
            with monitor, contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
            ok = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if not ok:
                log.seek(0)
                tail = log.read()[-4000:].decode(errors="replace") + text.getvalue()[-4000:]
                if tail.strip():
                    print(tail, file=sys.stderr)


def import_ppq() -> None:
    """Import ESP-PPQ once with its banner silenced (it prints to stdout, which would spoil --json output)."""
    import sys

    if "esp_ppq" not in sys.modules:
        with _quiet(False):
            import esp_ppq  # noqa: F401
    from yolo11_pose.make.chipsim import install

    install()  # ESP-PPQ's simulation computes what ESP-DL computes (calibration, ranking, fine-tuning, the twin)


__all__ = ["ESPPPQ_VERSION", "check_ppq_version", "import_ppq", "_quiet"]
