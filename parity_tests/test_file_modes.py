"""Written files get the permissions the umask gives (0666 & ~umask), also those written to a
temporary file and renamed into place (mkstemp alone would leave them 0600)."""
from __future__ import annotations

import os
import stat

import pytest

from nnparity.outputs import write_via_temp
from scratch.checkpoint import atomic_write


def _write_bytes(path):
    with open(path, "wb") as f:
        f.write(b"x")


WRITERS = {
    "atomic_write": lambda path: atomic_write(path, lambda f: f.write(b"x")),
    "write_via_temp": lambda path: write_via_temp(str(path), _write_bytes, "--plot"),
}


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002], ids=oct)
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_file_mode_follows_umask(tmp_path, writer, mask):
    before = os.umask(mask)
    try:
        path = tmp_path / "out.bin"
        WRITERS[writer](path)
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
