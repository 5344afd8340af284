"""Hostile checkpoints and checkpoint folders: forged files with valid checksums, wrong types in
torch and Lightning files, absurd declared sizes, stale temporary files, a full disk, odd paths
and two runs sharing a folder. Each ends in one line and exit 2 (or loads, when it is sound);
nothing the user had is lost."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import time
import zipfile

import numpy as np
import pytest
import torch

from forgery import declare_size, members, sign
from nnparity.cli import main
from scratch import checkpoint
from scratch.checkpoint import Checkpointer, CheckpointError
from scratch.spec import dump_spec, load_spec, parse_spec
from scratch.training import train as train_scratch
from torch_ref import checkpoint as torch_checkpoint
from torch_ref.lightning import train as train_lightning

W0, B0 = "param/layers.0.weight", "param/layers.0.bias"
M0 = "optim/layers.0.weight/exp_avg"


def xor_spec(optimizer: dict, epochs: int = 2):
    raw = load_spec("specs/xor.toml").to_dict()
    raw["optimizer"] = optimizer
    raw["train"] = {"epochs": epochs, "batch_size": 3, "shuffle": True}
    return parse_spec(raw)


ADAM = {"name": "adam", "lr": 0.05}


@pytest.fixture
def run_dir(tmp_path):
    """A folder holding an Adam run's checkpoint (2 epochs of 2 steps) and its spec file."""
    folder = tmp_path / "run"
    folder.mkdir()
    spec = xor_spec(ADAM)
    dump_spec(spec, tmp_path / "spec.json")
    train_scratch(spec, progress=False, checkpoints=Checkpointer(folder / checkpoint.FILENAME))
    return folder


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, command: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith(f"nnparity {command}: "), err
    assert "Traceback" not in err and all(f in err for f in fragments), err


def deep(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _set(**changes):
    def change(meta, arrays):
        meta.update(changes)
    return change


def _arrays(**changes):
    def change(meta, arrays):
        for key, value in changes.items():
            key = {"W0": W0, "B0": B0, "M0": M0, "H": "history/step_loss", "S0": "optim/layers.0.weight/step"}[key]
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
    return change


def _spec_units(meta, arrays):
    meta["spec"]["layers"][0]["units"] = -4


def _no_key(key):
    def change(meta, arrays):
        del meta[key]
    return change


def _unknown_state(meta, arrays):
    arrays["optim/layers.0.weight/bogus"] = arrays[M0].copy()


# (id, change(meta, arrays), a fragment of the one-line refusal)
NPZ_FORGERIES = [
    ("adam-moment-shape-1", _arrays(M0=np.zeros(1)), "exp_avg"),
    ("unknown-optimizer-key", _unknown_state, "bogus"),
    ("complex-parameter", _arrays(W0=lambda w: w + 1e6j), "layers.0.weight"),
    ("batch-1e6", _set(batch=10**6), "batch"),
    ("epoch-string", _set(epoch="1"), "epoch"),
    ("epoch-negative", _set(epoch=-1), "epoch"),
    ("batch-float", _set(batch=1.5), "batch"),
    ("step-vector", _set(step=[1, 2]), "step"),
    ("param-missing", _arrays(B0=None), "layers.0.bias"),
    ("param-wrong-shape", _arrays(W0=np.zeros((4, 2))), "layers.0.weight"),
    ("param-strings", _arrays(W0=np.array([["a"] * 4] * 2)), "layers.0.weight"),
    ("param-nan", _arrays(W0=lambda w: w * np.nan), "layers.0.weight"),
    ("param-float32", _arrays(W0=lambda w: w.astype(np.float32)), "layers.0.weight"),
    ("history-2d", _arrays(H=lambda h: h.reshape(-1, 1)), "step_loss"),
    ("history-strings", _arrays(H=np.array(["x"] * 4)), "step_loss"),
    ("history-too-long", _arrays(H=lambda h: np.concatenate([h, h])), "step_loss"),
    ("spec-units-minus-4", _spec_units, "layers[0].units"),
    ("meta-missing-key", _no_key("epoch_sums"), "epoch_sums"),
    ("meta-unknown-key", _set(bogus=1), "bogus"),
    ("stopped-unknown", _set(stopped="sometime"), "stopped"),
    ("epoch-sums-string", _set(epoch_sums="x"), "epoch_sums"),
    ("extra-rng-for-adam", _set(optimizer_extra={"rng": {}}), "optimizer_extra"),
    ("backend-unknown", _set(backend="tensorflow"), "backend"),
    ("epoch-1e6-step-unchanged", _set(epoch=10**6), "step: 4 does not match the position: epoch 1000000"),
    ("epoch-past-step", _set(epoch=3), "step: 4 does not match the position: epoch 3"),
    ("adam-step-past-steps-taken", _arrays(**{"S0": np.array(5, dtype=np.int64)}), "layers.0.weight/step: 5 is out of range"),
]


@pytest.mark.parametrize("change,fragment", [c[1:] for c in NPZ_FORGERIES], ids=[c[0] for c in NPZ_FORGERIES])
def test_checkpoint_forged_npz_refused(run_dir, capsys, change, fragment):
    path = run_dir / checkpoint.FILENAME
    meta, arrays = members(path)
    change(meta, arrays)
    sign(path, meta, arrays)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value) and fragment in str(info.value) and "\n" not in str(info.value)
    code, out, err = cli(capsys, "train", run_dir.parent / "spec.json", "--checkpoint", run_dir, "--resume",
                         "--quiet", "--epochs", 4)
    assert code == 2 and out == ""
    assert_one_line(err, "train", str(path), fragment)
    code, _, err = cli(capsys, "convert", path, run_dir / "out.npz")
    assert code == 2 and not (run_dir / "out.npz").exists()
    assert_one_line(err, "convert", fragment)


def test_checkpoint_adam_step_negative_refused(run_dir):
    path = run_dir / checkpoint.FILENAME
    meta, arrays = members(path)
    arrays["optim/layers.0.weight/step"] = np.array(-1, dtype=np.int64)
    sign(path, meta, arrays)
    with pytest.raises(CheckpointError, match=r"optim/layers.0.weight/step: -1 is out of range; expected 0 to 4"):
        checkpoint.load(path)


@pytest.mark.parametrize("meta,fragment", [
    (b"[1, 2]", "expected a JSON object"),
    (b"{not json", "not JSON"),
    (b'{"format": "\xff\xfe"}', "not UTF-8"),
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
    (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nested"),
    (b'{"epoch": 1' + b"0" * 5000 + b"}", "meta"),
], ids=["list", "not-json", "not-utf8", "deep-5000", "deep-100", "digits-5000"])
def test_checkpoint_meta_hostile_one_line(run_dir, meta, fragment):
    path = run_dir / checkpoint.FILENAME
    _, arrays = members(path)
    sign(path, meta, arrays)
    with pytest.raises(CheckpointError, match=fragment) as info:
        checkpoint.load(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 600


def test_checkpoint_raw_zip_member_refused(run_dir):
    path = run_dir / checkpoint.FILENAME
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", b"not an array")
    with pytest.raises(CheckpointError, match="notes.txt"):
        checkpoint.load(path)


def test_checkpoint_npy_renamed_refused(tmp_path):
    path = tmp_path / checkpoint.FILENAME
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CheckpointError, match="not a zip"):
        checkpoint.load(path)


def test_checkpoint_declared_size_refused_unread(run_dir):
    """A member whose directory entry declares 3 GB is refused from the directory: its bytes are
    never read (they are not even there: only the declaration was patched)."""
    path = run_dir / checkpoint.FILENAME
    declare_size(path, f"{W0}.npy", 3 * 10**9)
    with pytest.raises(CheckpointError, match=r"layers.0.weight: declares 3000000000 bytes; the spec allows at most"):
        checkpoint.load(path)


def test_checkpoint_sound_forgery_loads_and_resumes(run_dir, capsys):
    """A re-signed checkpoint whose content is sound (other finite weights) is a checkpoint: it loads
    and the run continues from it."""
    path = run_dir / checkpoint.FILENAME
    meta, arrays = members(path)
    arrays[W0] = arrays[W0] * 0.5
    sign(path, meta, arrays)
    assert np.array_equal(checkpoint.load(path).params["layers.0.weight"], arrays[W0])
    code, out, err = cli(capsys, "train", run_dir.parent / "spec.json", "--checkpoint", run_dir, "--resume",
                         "--quiet", "--epochs", 4)
    assert code == 0 and "final loss" in out, err
    assert checkpoint.load(path).epoch == 4


@pytest.mark.parametrize("value,loads", [(np.inf, True), (np.nan, False), (-1.0, False)], ids=["inf", "nan", "negative"])
def test_checkpoint_adam_squares_overflow(run_dir, value, loads):
    """Adam's mean of squares may hold +inf (a gradient's square past the dtype: the update is 0),
    as a run writes it; NaN or a negative value no run writes."""
    path = run_dir / checkpoint.FILENAME
    meta, arrays = members(path)
    key = "optim/layers.0.weight/exp_avg_sq"
    arrays[key] = arrays[key].copy()
    arrays[key][0, 0] = value
    sign(path, meta, arrays)
    if not loads:
        with pytest.raises(CheckpointError, match="exp_avg_sq: holds NaN or a negative value"):
            checkpoint.load(path)
        return
    ckpt = checkpoint.load(path)
    weight = ckpt.params["layers.0.weight"][0, 0]
    spec = parse_spec(ckpt.spec).replace(train={"epochs": 3, "batch_size": 3, "shuffle": True})
    result = train_scratch(spec, progress=False, checkpoints=Checkpointer(run_dir / "next.npz", resume=ckpt))
    assert result.params["layers.0.weight"][0, 0] == weight   # m / sqrt(inf) = 0: that weight stays
    assert np.isfinite(result.params["layers.0.weight"]).all()


# ------------------------------------------------------------------------- torch and Lightning


@pytest.fixture
def pt_file(run_dir):
    path = run_dir / "c.pt"
    torch_checkpoint.write_torch(checkpoint.load(run_dir / checkpoint.FILENAME), path)
    return path


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lightning")
    train_lightning(xor_spec(ADAM), progress=False, checkpoints={"dir": str(folder)})
    return folder / "last.ckpt"


def _resave(src, dst, change):
    data = torch.load(src, weights_only=True)
    data.pop(torch_checkpoint.CHECKSUM_KEY)
    change(data)
    torch_checkpoint.save_checked(data, dst)


def _put(key, value):
    def change(data):
        data[key] = value
    return change


def _record(**changes):
    def change(data):
        data["nnparity"].update(changes)
    return change


def _complex_weight(data):
    data["model"]["linears.0.weight"] = data["model"]["linears.0.weight"].to(torch.complex128)


def _moment_shape(data):
    data["optimizer"]["state"][0]["exp_avg"] = torch.zeros(1, dtype=torch.float64)


def _moment_complex(data):
    data["optimizer"]["state"][0]["exp_avg"] = data["optimizer"]["state"][0]["exp_avg"] + 1e6j


def _state_list(data):
    data["optimizer"]["state"] = [1, 2]


PT_FORGERIES = [
    ("record-string", _put("nnparity", "x"), "nnparity"),
    ("model-int", _put("model", 3), "model"),
    ("optimizer-list", _put("optimizer", [1]), "optimizer"),
    ("optimizer-state-list", _state_list, "optimizer"),
    ("record-deep", _record(optimizer_extra={"x": deep(200)}), "nested"),
    ("record-batch-1e6", _record(batch=10**6), "batch"),
    ("record-history-strings", _record(history={"step_loss": ["a"]}), "history"),
    ("record-spec-units-minus-4", lambda d: d["nnparity"]["spec"]["layers"][0].update(units=-4), "layers[0].units"),
    ("complex-weight", _complex_weight, "linears.0.weight"),
    ("adam-moment-shape", _moment_shape, "exp_avg"),
    ("adam-moment-complex", _moment_complex, "exp_avg"),
]


@pytest.mark.parametrize("change,fragment", [c[1:] for c in PT_FORGERIES], ids=[c[0] for c in PT_FORGERIES])
def test_checkpoint_forged_pt_refused(pt_file, capsys, change, fragment):
    forged = pt_file.parent / "forged.pt"
    _resave(pt_file, forged, change)
    with pytest.raises(CheckpointError) as info:
        torch_checkpoint.read_torch(forged)
    assert str(forged) in str(info.value) and fragment in str(info.value) and "\n" not in str(info.value)
    code, _, err = cli(capsys, "convert", forged, pt_file.parent / "out.npz")
    assert code == 2 and not (pt_file.parent / "out.npz").exists()
    assert_one_line(err, "convert", fragment)


def _states_dict(data):
    data["optimizer_states"] = {"0": data["optimizer_states"][0]}


CKPT_FORGERIES = [
    ("state-dict-list", _put("state_dict", [1]), "state_dict"),
    ("optimizer-states-dict", _states_dict, "optimizer_states"),
    ("record-string", _put("nnparity", "x"), "nnparity"),
    ("record-step-string", _record(step="3"), "step"),
    ("epoch-string", _put("epoch", "3"), "epoch"),
]


@pytest.mark.parametrize("change,fragment", [c[1:] for c in CKPT_FORGERIES], ids=[c[0] for c in CKPT_FORGERIES])
def test_checkpoint_forged_ckpt_refused(ckpt_file, tmp_path, capsys, change, fragment):
    forged = tmp_path / "last.ckpt"
    _resave(ckpt_file, forged, change)
    with pytest.raises(CheckpointError) as info:
        torch_checkpoint.read_lightning(forged)
    assert str(forged) in str(info.value) and fragment in str(info.value) and "\n" not in str(info.value)
    code, _, err = cli(capsys, "convert", forged, tmp_path / "out.npz")
    assert code == 2 and not (tmp_path / "out.npz").exists()
    assert_one_line(err, "convert", fragment)


@pytest.mark.parametrize("epoch,global_step,batch", [(1, 3, 1), (1, 4, 2), (2, 4, 0)],
                         ids=["mid-epoch", "epoch-end-save", "next-epoch-start"])
def test_checkpoint_lightning_own_save_position(ckpt_file, tmp_path, capsys, epoch, global_step, batch):
    """A checkpoint Lightning wrote itself (no nnparity record; 2 batches an epoch): its batch is the
    steps past its epoch's start, so that the position is consistent and a resume continues there."""
    plain = tmp_path / "plain.ckpt"
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec(ADAM), spec_file)

    def lightning_own(data):
        del data["nnparity"]
        data.update(epoch=epoch, global_step=global_step)
        for state in data["optimizer_states"][0]["state"].values():   # Adam's count: one a step
            state["step"] = torch.tensor(float(global_step))
    _resave(ckpt_file, plain, lightning_own)
    code, _, err = cli(capsys, "convert", plain, tmp_path / "out.npz", "--spec", spec_file)
    assert code == 0, err
    ckpt = checkpoint.load(tmp_path / "out.npz")
    assert (ckpt.epoch, ckpt.batch, ckpt.step) == (epoch, batch, global_step)


def test_checkpoint_user_torch_file_position_from_its_optimizer(pt_file, run_dir, capsys):
    """A user's own {"model", "optimizer"} .pt (no nnparity record) after 4 Adam steps, 2 batches an
    epoch: at epoch 2, batch 0, step 4, the steps Adam counted; consistent with that count."""
    plain = run_dir / "user.pt"
    data = torch.load(pt_file, weights_only=True)
    torch.save({"model": data["model"], "optimizer": data["optimizer"]}, plain)
    code, _, err = cli(capsys, "convert", plain, run_dir / "out.npz", "--spec", run_dir.parent / "spec.json")
    assert code == 0, err
    ckpt = checkpoint.load(run_dir / "out.npz")
    assert (ckpt.epoch, ckpt.batch, ckpt.step) == (2, 0, 4)


@pytest.mark.parametrize("name", ["c.pt", "last.ckpt"])
def test_checkpoint_empty_torch_file_one_line(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes(b"")
    code, _, err = cli(capsys, "convert", path, tmp_path / "out.npz")
    assert code == 2
    assert_one_line(err, "convert", str(path), "empty")


# ------------------------------------------------------------------------- the folder and the disk


def test_checkpoint_stale_temp_files_removed(run_dir):
    """A killed writer's temporary files go at the next write; files that only look alike stay."""
    stale = [run_dir / f".tmp-{tag}{checkpoint.FILENAME}" for tag in ("abcd1234", "zz_9yx00")]
    kept = [run_dir / ".tmp-notes.txt", run_dir / f"x.tmp-abcd1234{checkpoint.FILENAME}",
            run_dir / f".tmp-abcd12345{checkpoint.FILENAME}", run_dir / ".tmp-abcd1234other.npz"]
    for path in stale + kept:
        path.write_bytes(b"half a checkpoint")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    fresh = run_dir / f".tmp-fresh000{checkpoint.FILENAME}"   # another writer's, of now: not stale
    fresh.write_bytes(b"being written")
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    checkpoint.save(checkpoint.load(run_dir / checkpoint.FILENAME), run_dir / checkpoint.FILENAME)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and fresh.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root and mount needed; skipped without them)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()[:200]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> None:
    """Fill the file system holding ``folder`` to the last byte."""
    for i, size in enumerate((4096, 512, 64, 1)):
        with open(folder / f"filler{i}", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC


@pytest.mark.parametrize("backend", ["scratch", "torch", "lightning"])
def test_checkpoint_full_disk_one_line(small_disk, tmp_path, capsys, backend):
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec(ADAM), spec_file)
    folder = small_disk / "run"
    code, _, err = cli(capsys, "train", spec_file, "--backend", backend, "--checkpoint", folder, "--quiet")
    assert code == 0, err
    name = "last.ckpt" if backend == "lightning" else checkpoint.FILENAME
    before = (folder / name).read_bytes()
    fill(small_disk)
    code, out, err = cli(capsys, "train", spec_file, "--backend", backend, "--checkpoint", folder, "--resume",
                         "--epochs", 6, "--quiet")
    assert code == 2 and out == ""
    assert_one_line(err, "train", "No space left on device", str(folder / name))
    assert (folder / name).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-")) == []


def test_checkpoint_convert_full_disk_one_line(small_disk, run_dir, capsys):
    fill(small_disk)
    dst = small_disk / "out.pt"
    code, _, err = cli(capsys, "convert", run_dir / checkpoint.FILENAME, dst)
    assert code == 2
    assert_one_line(err, "convert", "No space left on device")
    assert [p.name for p in small_disk.iterdir() if not p.name.startswith("filler")] == []


@pytest.mark.parametrize("where,fragment", [
    ("README.md/sub", "Not a directory"),
    ("/proc/nnparity-run", "--checkpoint"),
    ("/proc/self", "--checkpoint"),
], ids=["under-a-file", "under-proc", "proc-self"])
def test_checkpoint_folder_unusable_one_line(tmp_path, capsys, where, fragment):
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec(ADAM), spec_file)
    code, _, err = cli(capsys, "train", spec_file, "--checkpoint", where, "--quiet")
    assert code == 2
    assert_one_line(err, "train", "--checkpoint", fragment)


@pytest.mark.parametrize("name", ["this:X", "a:b:c", "with space", "-dash", "sub dir/x:y"])
def test_checkpoint_folder_odd_names_are_folders_and_never_overwritten(tmp_path, monkeypatch, capsys, name):
    """Colons, spaces, leading dashes: a folder of that name (this:X is no import; only the JSON on
    stdout), and its checkpoint refused, unchanged, to a second run without --resume."""
    dump_spec(xor_spec(ADAM), tmp_path / "spec.json")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train", "spec.json", f"--checkpoint={name}", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 4
    saved = tmp_path / name / checkpoint.FILENAME
    before = saved.read_bytes()
    code, out, err = cli(capsys, "train", "spec.json", f"--checkpoint={name}", "--quiet")
    assert code == 2 and out == ""
    assert_one_line(err, "train", "--checkpoint", "pass --resume")
    assert saved.read_bytes() == before
    code, out, err = cli(capsys, "train", "spec.json", f"--checkpoint={name}", "--resume", "--epochs", 3, "--quiet")
    assert code == 0, err


def test_checkpoint_folder_dash_name_as_its_own_word_is_argparses_usage_error(tmp_path, monkeypatch, capsys):
    dump_spec(xor_spec(ADAM), tmp_path / "spec.json")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "spec.json", "--checkpoint", "-dash", "--quiet"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "nnparity train: error: argument --checkpoint: expected one argument"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


@pytest.mark.parametrize("argv", [["--checkpoint", ""], ["--checkpoint", " "], ["--checkpoint", "\t"], ["--checkpoint=--"]],
                         ids=["empty", "space", "tab", "dashes"])
def test_checkpoint_folder_blank_name_one_line(tmp_path, monkeypatch, capsys, argv):
    """A blank name (or --checkpoint=--, which argparse empties) is no folder: refused, never a run
    that silently writes no checkpoint."""
    dump_spec(xor_spec(ADAM), tmp_path / "spec.json")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train", "spec.json", *argv, "--quiet")
    assert code == 2 and out == ""
    assert_one_line(err, "train", "--checkpoint", "names no folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]


def test_checkpoint_convert_to_directory_one_line(run_dir, capsys):
    dst = run_dir / "x.npz"
    dst.mkdir()
    for extra in ((), ("--force",)):
        code, _, err = cli(capsys, "convert", run_dir / checkpoint.FILENAME, dst, *extra)
        assert code == 2 and dst.is_dir()
        assert_one_line(err, "convert", "DST", "directory")
    (run_dir / "README.md").write_text("the user's")
    code, _, err = cli(capsys, "convert", run_dir / checkpoint.FILENAME, run_dir / "README.md" / "x.npz")
    assert code == 2 and (run_dir / "README.md").read_text() == "the user's"
    assert_one_line(err, "convert", "DST", "README.md is a file, not a directory")


def test_checkpoint_folder_locked_by_live_run(tmp_path, capsys):
    """A folder another live run holds is refused (one line naming it); once it ends, it is usable."""
    spec_file = tmp_path / "spec.json"
    dump_spec(xor_spec(ADAM), spec_file)
    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder / ".nnparity-lock", os.O_RDWR | os.O_CREAT)   # as a live run holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = cli(capsys, "train", spec_file, "--checkpoint", folder, "--quiet")
        assert code == 2 and not (folder / checkpoint.FILENAME).exists()
        assert_one_line(err, "train", str(folder), "in use by another run")
    finally:
        os.close(fd)
    code, _, err = cli(capsys, "train", spec_file, "--checkpoint", folder, "--quiet")
    assert code == 0, err
    code, _, err = cli(capsys, "train", spec_file, "--checkpoint", folder, "--resume", "--epochs", 3, "--quiet")
    assert code == 0, err


@pytest.mark.parametrize("name", [checkpoint.FILENAME, "other.pt"])
def test_checkpoint_convert_into_live_run_folder_refused(run_dir, tmp_path, capsys, name):
    """convert --force into a folder a live run holds would write over (or beside) its checkpoint:
    refused in one line, the run's checkpoint as it was; once the run ends, it is usable."""
    live = tmp_path / "live"
    live.mkdir()
    (live / checkpoint.FILENAME).write_bytes(b"the live run's")
    fd = os.open(live / ".nnparity-lock", os.O_RDWR | os.O_CREAT)   # as a live run holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = cli(capsys, "convert", run_dir / checkpoint.FILENAME, live / name, "--force")
        assert code == 2 and (live / checkpoint.FILENAME).read_bytes() == b"the live run's"
        assert_one_line(err, "convert", "DST", str(live), "in use by a live run")
    finally:
        os.close(fd)
    code, _, err = cli(capsys, "convert", run_dir / checkpoint.FILENAME, live / name, "--force")
    assert code == 0, err


@pytest.mark.slow
def test_checkpoint_two_live_runs_one_folder(tmp_path):
    """Two runs of different specs started together into one folder: one trains, the other is
    refused with one line; the folder holds the trained one's checkpoint, whole."""
    folder = tmp_path / "run"
    files = []
    for name, optimizer in (("a", ADAM), ("b", {"name": "sgd", "lr": 0.5})):
        dump_spec(xor_spec(optimizer, epochs=400), tmp_path / f"{name}.json")
        files.append(tmp_path / f"{name}.json")
    import sys
    procs = [subprocess.Popen([sys.executable, "-m", "nnparity", "train", f, "--checkpoint", folder, "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    winner = files[[code for code, _ in results].index(0)]
    loser_err = next(err for code, err in results if code == 2)
    assert loser_err.count("\n") == 1 and str(folder) in loser_err and "Traceback" not in loser_err
    saved = checkpoint.load(folder / checkpoint.FILENAME)
    assert checkpoint.spec_difference(saved.spec, load_spec(winner).to_dict()) is None


def test_checkpoint_other_spec_needs_force(run_dir, capsys):
    """A folder holding another spec's checkpoint is refused, naming the difference; --force starts over."""
    other = run_dir.parent / "other.json"
    dump_spec(xor_spec({"name": "sgd", "lr": 0.5}), other)
    path = run_dir / checkpoint.FILENAME
    before = path.read_bytes()
    code, _, err = cli(capsys, "train", other, "--checkpoint", run_dir, "--quiet")
    assert code == 2 and path.read_bytes() == before
    assert_one_line(err, "train", "another spec's checkpoint", "optimizer", "--force")
    code, _, err = cli(capsys, "train", other, "--checkpoint", run_dir, "--quiet", "--force")
    assert code == 0, err
    assert checkpoint.load(path).spec["optimizer"]["name"] == "sgd"
