"""Forged checkpoints, re-signed as the writer signs them: a checksum proves a file unchanged, not
sound, so every forgery here carries a valid SHA-256 and must be refused on its content.

``members(path)`` reads a valid checkpoint's meta (as data) and arrays; ``sign(path, meta, arrays)``
writes them back as the writer does (meta as UTF-8 JSON, or raw bytes when ``meta`` is bytes),
with the digest of what was written.
"""
from __future__ import annotations

import json
from pathlib import Path
import numpy as np

from scratch import checkpoint


def members(path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.pop("checksum")
    return json.loads(arrays.pop("meta").tobytes().decode()), arrays


def sign(path, meta, arrays: dict) -> None:
    """Write ``arrays`` and ``meta`` (data, or bytes as they are) with a valid checksum."""
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    out = dict(arrays, meta=np.frombuffer(text, dtype=np.uint8))
    out["checksum"] = np.frombuffer(checkpoint.digest(out).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **out)


def declare_size(path, member: str, size: int) -> None:
    """Patch the zip's central directory (what readers size a member by) so that ``member``
    declares ``size`` uncompressed bytes; the bytes stored stay as they were."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    name = member.encode()
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    data[central + 24:central + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
