"""Is this ``.espdl`` the file that was built? SHA-256 checks against every record of it that exists.

Three records, each checked when present (a mismatch is a one-line EspdlError naming the record):

- ``<file>.sha256`` beside the file (``sha256sum`` format: the hex digest first);
- the build's manifest: ``manifest.json`` beside a ``model.espdl`` (build folders), ``<stem>.manifest.json`` beside
  ``<stem>.espdl`` (``models/``), key ``espdl_sha256``;
- inside the file: our exports carry the metadata entry ``content_sha256``, the SHA-256 of the whole file with that
  entry's 64 hex digits read as ``0``s (the scheme ESP-DL's PDL3 packages use for their header digest). It travels
  with the file wherever it is copied. ESP-DL 3.3.9 reads metadata only through ``Model::get_metadata_prop(key)``
  (``dl_model_base.cpp``; ``Model::load`` reads name, version and doc_string), so one more entry changes nothing on
  the chip but about 100 bytes of flash.

A file with none of them still runs; ``inspect`` says it is unverified.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

from yolo11_pose.util import atomic_path

KEY = "content_sha256"
PLACEHOLDER = "0" * 64
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def export_metadata() -> dict[str, str]:
    """The entry to add to the metadata_props of an export; ``seal()`` fills it in once the file is final."""
    return {KEY: PLACEHOLDER}


def _digest_span(data: bytes) -> tuple[int, int, str] | None:
    """(start, end, value) of the ``content_sha256`` value's bytes in the file; None when it has no such entry or
    cannot be parsed (the reader reports a corrupt file)."""
    from yolo11_pose.espdl.container import _HEADER_SIZE, _fbs, open_graph

    hsize = _HEADER_SIZE.get(bytes(data[:4]))
    if hsize is None or len(data) < hsize:
        return None
    try:
        size = struct.unpack_from("<I", data, 8)[0]
        payload = memoryview(data)[hsize:hsize + size]
        m, _ = open_graph(payload, _fbs())
        for k in range(min(m.MetadataPropsLength(), 4096)):
            e = m.MetadataProps(k)
            if e.Key() != KEY.encode():
                continue
            tab = e._tab
            o = tab.Offset(6)  # field 1 (value) of StringStringEntry
            if not o:
                return None
            off = tab.Pos + o
            off += struct.unpack_from("<I", payload, off)[0]
            length = struct.unpack_from("<I", payload, off)[0]
            start = hsize + off + 4
            if length != 64 or start + 64 > len(data):
                return None
            return start, start + 64, bytes(data[start:start + 64]).decode("ascii", "replace")
    except Exception:  # noqa: BLE001  (the FlatBuffers runtime verifies nothing: any fault is a damaged file)
        return None
    return None


def content_digest(data: bytes, span: tuple[int, int]) -> str:
    h = hashlib.sha256()
    h.update(memoryview(data)[:span[0]])
    h.update(PLACEHOLDER.encode())
    h.update(memoryview(data)[span[1]:])
    return h.hexdigest()


def seal(path: str | Path) -> str | None:
    """Write the file's content digest into its ``content_sha256`` entry (in place, atomically); return it.

    None (file untouched) when the file has no such entry. Call it last, after anything that rewrites the file."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    found = _digest_span(data)
    if found is None:
        return None
    start, end, _ = found
    digest = content_digest(data, (start, end))
    data[start:end] = digest.encode()
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(bytes(data))
    return digest


def manifest_of(path: str | Path) -> Path | None:
    """The build manifest that records this file's hash, if there is one."""
    p = Path(path)
    cands = [p.with_name(p.stem + ".manifest.json")]
    if p.name == "model.espdl":
        cands.insert(0, p.with_name("manifest.json"))
    return next((c for c in cands if c.is_file()), None)


def _recorded(path: Path) -> list[tuple[str, str]]:
    """(where, hex digest of the whole file) from the sidecar and the manifest."""
    out = []
    side = path.with_name(path.name + ".sha256")
    if side.is_file():
        try:
            token = (side.read_text(errors="replace").split() or [""])[0]
        except OSError:
            token = ""
        out.append((side.name, token.lower()))
    man = manifest_of(path)
    if man is not None:
        try:
            want = json.loads(man.read_text(encoding="utf-8")).get("espdl_sha256")
        except (OSError, ValueError, AttributeError):
            want = None
        if want:
            out.append((f"{man.name} (espdl_sha256)", str(want).lower()))
    return out


def verify(path: str | Path, data: bytes | None = None) -> str:
    """Check every record of the file's hash; return what was checked ("verified: ..." or "unverified: ...").

    Raises EspdlError (one line) on a mismatch."""
    from yolo11_pose.espdl.container import EspdlError

    path = Path(path)
    if data is None:
        data = path.read_bytes()
    whole = hashlib.sha256(data).hexdigest()
    checked = []
    for where, want in _recorded(path):
        if not _HEX64.match(want):
            raise EspdlError(f"{path}: {where} holds no SHA-256 ({want[:20]!r}); fix or delete it")
        if want != whole:
            raise EspdlError(f"{path} is corrupt or was changed: its SHA-256 {whole[:12]}... differs from the "
                             f"{want[:12]}... in {where}; re-copy or rebuild it")
        checked.append(where)
    from yolo11_pose.espdl.container import _HEADER_SIZE

    hsize = _HEADER_SIZE.get(bytes(data[:4]))
    if hsize and len(data) >= hsize and int.from_bytes(data[8:12], "little") > len(data) - hsize:
        # a cut file: say so (the reader would), rather than that its content hash differs
        raise EspdlError(f"{path} is truncated: header announces a {int.from_bytes(data[8:12], 'little')}-byte "
                         f"payload but only {len(data) - hsize} bytes follow; re-export or re-copy the file")
    found = _digest_span(data)
    if found is not None and found[2] != PLACEHOLDER:
        start, end, want = found
        got = content_digest(data, (start, end))
        if want.lower() != got:
            raise EspdlError(f"{path} is corrupt or was changed: its content SHA-256 {got[:12]}... differs from the "
                             f"{want[:12]}... it carries ({KEY}); re-copy or rebuild it")
        checked.append(f"embedded {KEY}")
    if checked:
        return "verified: SHA-256 matches " + ", ".join(checked)
    return "unverified: no manifest, no .sha256 beside it and no embedded SHA-256"


__all__ = ["KEY", "PLACEHOLDER", "export_metadata", "seal", "verify", "manifest_of", "content_digest"]
