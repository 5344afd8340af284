"""Hostile input on the command line and in the environment: standard output that cannot be
written, sizes and thread counts beyond any machine, data that cannot be trained on. One line,
the documented exit status, never a traceback."""
from __future__ import annotations

import os
import sys

import pytest

from nnparity.stdout import BROKEN_PIPE_EXIT
from test_hostile import assert_one_line, run_cli

# ----------------------------------------------------------------------- standard output

OUTPUT_COMMANDS = [("check", ["check", "--json"]), ("check", ["check"]),
                   ("verify", ["verify", "examples.custom_ops:Softplus"]),
                   ("verify", ["verify", "examples.custom_ops:Softplus", "--json"])]


@pytest.mark.parametrize("command,argv", OUTPUT_COMMANDS, ids=[" ".join(a) for _, a in OUTPUT_COMMANDS])
def test_stdout_full_disk_one_line(command, argv, capsys, monkeypatch):
    """`> /dev/full`: every write fails with ENOSPC."""
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line(err, command, "cannot write the output to stdout: No space left on device")


@pytest.mark.parametrize("command,argv", OUTPUT_COMMANDS[:2], ids=[" ".join(a) for _, a in OUTPUT_COMMANDS[:2]])
def test_stdout_closed_pipe_exit_141(command, argv, capsys, monkeypatch):
    """`| head -0`: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        code, _, err = run_cli(capsys, *argv)
    assert code == BROKEN_PIPE_EXIT and err == ""


# ----------------------------------------------------------------------------- environment

@pytest.mark.parametrize("value", ["1e999", "1e400TB", "9" * 400])
def test_memory_limit_infinite_one_line(value, capsys, monkeypatch):
    monkeypatch.setenv("NNPARITY_MAX_MEMORY", value)
    code, out, err = run_cli(capsys, "check")
    assert code == 2 and out == ""
    assert_one_line(err, "check", "NNPARITY_MAX_MEMORY: expected a size")
