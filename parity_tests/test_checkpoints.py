"""Checkpoints: kill-and-resume in real processes (SIGKILL, SIGTERM, SIGINT) ends bit for bit where
an uninterrupted run ends, on every backend; the format moves between scratch, torch and Lightning
without changing a bit; corrupted, truncated and malicious files are refused, not loaded."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import lightning.pytorch as L
import torch

from scratch import checkpoint
from scratch.checkpoint import Checkpointer, CheckpointError
from scratch.policy import TRAJECTORY_TOL, rel_error
from scratch.signals import Interrupted
from scratch.spec import dump_spec, load_spec, parse_spec
from scratch.training import train as train_scratch
from torch_ref import checkpoint as torch_checkpoint
from torch_ref.lightning import train as train_lightning
from torch_ref.training import train as train_torch

OPTIMIZERS = {"sgd": {"name": "sgd", "lr": 0.5, "momentum": 0.9}, "adam": {"name": "adam", "lr": 0.05},
              "armijo": {"name": "armijo", "lr": 1.0}}
# Epochs (2 steps each) that leave dozens of checkpoints after the first: time to kill a run mid-way.
EPOCHS = {"scratch": 1500, "torch": 600, "lightning": 400}
EVERY = 25   # odd, with 2 steps an epoch: checkpoints land mid-epoch and at epoch ends
FILES = {"scratch": checkpoint.FILENAME, "torch": checkpoint.FILENAME, "lightning": "last.ckpt"}


def xor_spec(optimizer: str, epochs: int):
    """XOR, 3-row shuffled batches (2 steps an epoch, the order drawn per epoch)."""
    raw = load_spec("specs/xor.toml").to_dict()
    raw["optimizer"] = OPTIMIZERS[optimizer]
    raw["train"] = {"epochs": epochs, "batch_size": 3, "shuffle": True}
    return parse_spec(raw)


def read(backend: str, path):
    return torch_checkpoint.read_lightning(path) if backend == "lightning" else checkpoint.load(path)


def reference(backend: str, spec, folder) -> checkpoint.Checkpoint:
    """The uninterrupted run's last checkpoint (in this process)."""
    if backend == "lightning":
        train_lightning(spec, progress=False, checkpoints={"dir": str(folder), "every": EVERY})
    else:
        path = folder / checkpoint.FILENAME
        os.makedirs(folder, exist_ok=True)
        trainer = train_scratch if backend == "scratch" else train_torch
        trainer(spec, progress=False, checkpoints=Checkpointer(path, every=EVERY))
    return read(backend, folder / FILES[backend])


def nnparity(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nnparity", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def interrupt(backend: str, spec_file, folder, signum: int) -> str:
    """Start a checkpointing run, send ``signum`` once its first checkpoint is on disk, return stderr."""
    proc = nnparity("train", spec_file, "--backend", backend, "--checkpoint", folder, "--every", EVERY, "--quiet")
    path = folder / FILES[backend]
    deadline = time.monotonic() + 120
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    expected = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 143, signal.SIGINT: 130}[signum]
    assert proc.returncode == expected, f"the run was not interrupted (exit {proc.returncode}): {err[-2000:]}"
    return err


# One kill-and-resume per backend, per signal and per optimizer kind (moments, momentum, closure).
CASES = [("scratch", "adam", signal.SIGKILL), ("torch", "sgd", signal.SIGINT), ("lightning", "armijo", signal.SIGTERM)]


@pytest.mark.parametrize("backend,optimizer,signum",
                         [pytest.param(*case, marks=[pytest.mark.slow] if case[0] != "scratch" else [])
                          for case in CASES],
                         ids=[f"{b}-{o}-{signal.Signals(s).name}" for b, o, s in CASES])
def test_resume_after_signal_bit_identical(tmp_path, backend, optimizer, signum):
    spec = xor_spec(optimizer, EPOCHS[backend])
    spec_file = tmp_path / "spec.json"
    dump_spec(spec, spec_file)
    expected = reference(backend, spec, tmp_path / "reference")
    folder = tmp_path / "run"
    err = interrupt(backend, spec_file, folder, signum)
    saved = read(backend, folder / FILES[backend])
    assert saved.stopped is None and 0 < saved.step < expected.step
    if signum != signal.SIGKILL:
        assert f"interrupted by {signal.Signals(signum).name}" in err and "--resume" in err
    proc = nnparity("train", spec_file, "--backend", backend, "--checkpoint", folder, "--every", EVERY,
                    "--resume", "--quiet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    resumed = read(backend, folder / FILES[backend])
    assert resumed.stopped == "epochs" and resumed.step == expected.step
    for name, value in expected.params.items():
        assert np.array_equal(resumed.params[name], value), name
    assert resumed.equal(expected)   # optimizer state, history and position too, bit for bit


class _SignalAtEpochEnd(L.Callback):
    """Sends the process ``signum`` at the end of the first epoch, after every batch hook has run:
    the moment at which Lightning's own SIGTERM handler would end fit with exit 0."""

    def __init__(self, signum: int):
        self.signum = signum

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_lightning_signal_between_steps_interrupts(tmp_path, signum):
    spec = xor_spec("adam", 3)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as caught:
        train_lightning(spec, progress=False, checkpoints={"dir": str(tmp_path), "every": EVERY},
                        trainer_callbacks=[_SignalAtEpochEnd(signum)])
    assert caught.value.signum == signum
    saved = read("lightning", tmp_path / "last.ckpt")
    assert saved.stopped is None and saved.step == 3   # the first step of the second epoch, then stopped
    assert {s: signal.getsignal(s) for s in before} == before   # the handlers are put back


# ---------------------------------------------------------------------------- interchange


def test_roundtrip_scratch_torch_scratch_bit_identical(tmp_path):
    spec = xor_spec("adam", 5)
    path = tmp_path / checkpoint.FILENAME
    train_scratch(spec, progress=False, checkpoints=Checkpointer(path))
    original = checkpoint.load(path)
    torch_checkpoint.write_torch(original, tmp_path / "c.pt")
    back = torch_checkpoint.read_torch(tmp_path / "c.pt")
    assert original.optimizer["layers.0.weight"]["exp_avg"].shape == (2, 4)
    assert back.equal(original)
    model_state, _ = torch_checkpoint.to_torch(original)
    assert torch.equal(model_state["linears.0.weight"], torch.from_numpy(original.params["layers.0.weight"]).T)


def test_roundtrip_lightning_scratch_torch_bit_identical(tmp_path):
    spec = xor_spec("sgd", 4)
    train_lightning(spec, progress=False, checkpoints={"dir": str(tmp_path), "every": 3})
    raw = torch.load(tmp_path / "last.ckpt", weights_only=True)
    as_scratch = torch_checkpoint.read_lightning(tmp_path / "last.ckpt")
    model_state, optimizer_state = torch_checkpoint.to_torch(as_scratch)
    for key, value in model_state.items():
        assert torch.equal(value, raw["state_dict"][f"model.{key}"]), key
    lightning_state = raw["optimizer_states"][0]["state"]
    assert lightning_state.keys() == optimizer_state["state"].keys()
    for index, entries in lightning_state.items():
        assert torch.equal(entries["momentum_buffer"], optimizer_state["state"][index]["momentum_buffer"])


@pytest.mark.parametrize("source", ["torch", "lightning"])
def test_continue_in_scratch_per_step_parity(tmp_path, source):
    """A torch or Lightning run saved after 5 epochs continues in scratch, step for step with an
    uninterrupted scratch run (within the trajectory tolerance: the backends round differently)."""
    spec = xor_spec("adam", 5)
    if source == "torch":
        train_torch(spec, progress=False, checkpoints=Checkpointer(tmp_path / "t.npz"))
        saved = checkpoint.load(tmp_path / "t.npz")
    else:
        train_lightning(spec, progress=False, checkpoints={"dir": str(tmp_path)})
        saved = torch_checkpoint.read_lightning(tmp_path / "last.ckpt")
    longer = spec.replace(train={"epochs": 15, "batch_size": 3, "shuffle": True})
    continued = train_scratch(longer, progress=False, checkpoints=Checkpointer(tmp_path / "s.npz", resume=saved))
    straight = train_scratch(longer, progress=False)
    assert len(continued.history.step_loss) == len(straight.history.step_loss) == 30
    for got, want in zip(continued.history.step_loss, straight.history.step_loss):
        assert abs(got - want) <= TRAJECTORY_TOL * abs(want)
    for name, value in straight.params.items():
        assert rel_error(continued.params[name], value) <= TRAJECTORY_TOL


# ------------------------------------------------------------------------ damaged and hostile


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / checkpoint.FILENAME
    train_scratch(xor_spec("sgd", 3), progress=False, checkpoints=Checkpointer(path))
    return path


def test_checkpoint_truncated_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated") as info:
        checkpoint.load(saved)
    assert str(saved) in str(info.value)


def test_checkpoint_flipped_byte_refused(saved):
    data = bytearray(saved.read_bytes())
    ckpt = checkpoint.load(saved)
    needle = ckpt.params["layers.0.weight"].tobytes()
    at = bytes(data).index(needle) + 3
    data[at] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        checkpoint.load(saved)


def test_checkpoint_checksum_catches_rewritten_member(tmp_path, saved):
    """A member changed and the zip rewritten consistently (CRCs right): the SHA-256 still tells."""
    with np.load(saved, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["param/layers.0.weight"] = arrays["param/layers.0.weight"] + 1e-12
    np.savez(saved, **arrays)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoint.load(saved)


class Exploit:
    """Unpickling this runs a command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_npz_pickle_payload_not_executed(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / checkpoint.FILENAME
    np.savez(path, meta=np.array([Exploit(marker)], dtype=object), checksum=np.zeros(3, np.uint8))
    with pytest.raises(CheckpointError, match="pickled objects"):
        checkpoint.load(path)
    assert not marker.exists()


def test_checkpoint_ckpt_pickle_payload_not_executed(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "nnparity": Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        torch_checkpoint.read_lightning(path)
    assert not marker.exists()
    proc = nnparity("convert", path, tmp_path / "out.npz")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "refused" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.npz").exists()


def test_train_checkpoint_dir_in_use_refused(tmp_path, saved):
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec("sgd", 3), spec_file)
    before = saved.read_bytes()
    proc = nnparity("train", spec_file, "--checkpoint", saved.parent)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and "--checkpoint" in err and "--resume" in err
    other = tmp_path / "other.json"
    dump_spec(xor_spec("adam", 3), other)
    proc = nnparity("train", other, "--checkpoint", saved.parent, "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "optimizer.lr" in err and "Traceback" not in err
    assert saved.read_bytes() == before


def test_train_resume_truncated_exit_2(tmp_path, saved):
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec("sgd", 3), spec_file)
    saved.write_bytes(saved.read_bytes()[:100])
    proc = nnparity("train", spec_file, "--checkpoint", saved.parent, "--resume")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and str(saved) in err and "truncated" in err


# ------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("backend", ["scratch", "torch", "lightning"])
def test_determinism_two_runs_bit_identical(backend):
    spec = xor_spec("adam", 20)
    run = {"scratch": train_scratch, "torch": train_torch, "lightning": train_lightning}[backend]
    first, second = run(spec, progress=False), run(spec, progress=False)
    assert first.history.step_loss == second.history.step_loss
    for name, value in first.params.items():
        assert np.array_equal(second.params[name], value), name


# ------------------------------------------------------------------------------------ README


@pytest.mark.slow
def test_readme_checkpoints_commands_as_written(tmp_path):
    """The README's Checkpoints block, run as written (in a scratch directory holding specs/)."""
    text = open("README.md").read()
    block = text.split("## Checkpoints", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    os.symlink(os.path.abspath("specs"), tmp_path / "specs")
    for line in block.strip().splitlines():
        words = line.split("#")[0].split()
        assert words[0] == ".venv/bin/nnparity"
        proc = nnparity(*words[1:], cwd=tmp_path)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{line}: {err[-2000:]}"
        if "--every" in words:
            first = checkpoint.load(tmp_path / "run1" / checkpoint.FILENAME)
    resumed = checkpoint.load(tmp_path / "run1" / checkpoint.FILENAME)
    assert first.stopped == resumed.stopped == "epochs" and resumed.equal(first)
    lightning = checkpoint.load(tmp_path / "run3" / checkpoint.FILENAME)
    assert lightning.backend == "lightning" and lightning.step == first.step == 450
    for name, value in first.params.items():   # the same run, by another backend
        assert rel_error(lightning.params[name], value) <= TRAJECTORY_TOL
    assert torch_checkpoint.read_torch(tmp_path / "weights.pt").equal(first)
