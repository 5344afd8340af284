"""Structure-aware fuzzing of the checkpoint loader: forged checkpoints with valid checksums.

Each input starts from a sound checkpoint (several optimizers, dtypes and positions), changes one
to three things a forger can change — a member's dtype, shape or values, a member removed or
added, a field of meta (the spec's included) given a hostile value, meta's bytes, nesting, a
member's declared size — and re-signs it as the writer does (parity_tests/forgery.py). Through
scratch.checkpoint.load, the loader `train --resume` and `convert` use, each either loads (and
then a run resumes from it: it trains, or stops as diverged, the documented exit 1) or is
refused with the one-line CheckpointError; any other exception fails the test.

10,000 .npz inputs in the run marked slow, 1,000 in the fast lane (NNPARITY_FUZZ_LONG=1: ten times more);
.pt/.ckpt: 500 in the fast lane, 100,000 with NNPARITY_FUZZ_LONG=1 (the torch loads take a minute per 10,000).
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest

from forgery import declare_size, members, sign
from fuzzing import SCALE, deep_list, flip, hostile_value, long_only, mutate
from scratch import checkpoint
from scratch.checkpoint import Checkpointer, CheckpointError
from scratch.checkpoint_schema import spec_layout
from scratch.spec import load_spec, parse_spec
from scratch.training import TrainingDiverged, train

MAX_MESSAGE = 900   # the file's path, a field and what is wrong: one short line


class _CopyAt(Checkpointer):
    """A Checkpointer that also keeps a copy of the checkpoint written after step ``at``."""

    def __init__(self, path, copy_to, at: int):
        super().__init__(path, every=1)
        self.copy_to, self.at = copy_to, at

    def after_step(self, step, make):
        super().after_step(step, make)
        if step == self.at:
            self.copy_to.write_bytes(Path(self.path).read_bytes())


def _spec(optimizer: dict, dtype: str = "float64", data: dict | None = None):
    raw = load_spec("specs/xor.toml").to_dict()
    raw.update(optimizer=optimizer, dtype=dtype, train={"epochs": 3, "batch_size": 3, "shuffle": True})
    if data is not None:
        raw["data"] = data
        raw["loss"] = {"name": "bce"}
    return parse_spec(raw)


BASES = {
    "adam-mid-epoch": _spec({"name": "adam", "lr": 0.05}),
    "sgd-momentum-float32": _spec({"name": "sgd", "lr": 0.5, "momentum": 0.9}, dtype="float32"),
    "armijo": _spec({"name": "armijo", "lr": 1.0}),
    "random-search-accuracy": _spec({"name": "random_search", "lr": 0.1},
                                    data={"x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [[0], [1], [1], [0]]}),
}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> list[tuple[dict, dict]]:
    """(meta, arrays) of sound checkpoints: each run's after its third step (mid-epoch) and at its end."""
    folder = tmp_path_factory.mktemp("bases")
    out = []
    for name, spec in BASES.items():
        end, mid = folder / f"{name}.npz", folder / f"{name}-mid.npz"
        train(spec, progress=False, checkpoints=_CopyAt(end, mid, at=3))
        for path in (mid, end):
            checkpoint.load(path)   # sound, as written
            out.append(members(path))
    return out


# ------------------------------------------------------------------------------ mutations

DTYPES = [np.float32, np.float64, np.complex128, np.int64, np.int8, np.bool_, ">f8", "<U3", "V8", np.uint8]


def _new_array(value: np.ndarray, rng: random.Random) -> np.ndarray:
    """The member with its dtype, shape or values changed."""
    roll = rng.random()
    if roll < 0.25:
        dtype = np.dtype(rng.choice(DTYPES))
        if dtype.kind in "UV" or value.dtype.kind not in "fiubc":
            return np.zeros(value.shape, dtype=dtype)
        with np.errstate(all="ignore"):
            return np.asarray(value.real if value.dtype.kind == "c" else value).astype(dtype)
    if roll < 0.5:
        shapes = [(), (0,), (1,), value.shape + (1,), value.shape[::-1], (value.size + 1,), (2, 2, 2),
                  value.shape[:-1] if value.ndim else (3,)]
        shape = rng.choice(shapes)
        return np.zeros(shape, dtype=value.dtype if value.dtype.kind in "fiu" else np.float64)
    out = np.array(value, copy=True)
    if out.size == 0 or out.dtype.kind not in "fi":
        return out
    flat = out.reshape(-1)
    special = [np.nan, np.inf, -np.inf, 1e308, -1e308, 3.5e38, -1.0, 0.0, 2**62, -2**62, 1e-300]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(flat.size)
        pick = rng.choice(special) if rng.random() < 0.7 else rng.uniform(-10, 10)
        if out.dtype.kind == "f":
            with np.errstate(all="ignore"):
                flat[i] = pick
        elif np.isfinite(pick):
            info = np.iinfo(out.dtype)
            flat[i] = int(min(max(pick, info.min), info.max))
    return out


MEMBER_NAMES = ["param/layers.9.weight", "param/layers.0", "optim/layers.0.weight/momentum_buffer",
                "optim/layers.0.weight/exp_avg", "optim/layers.1.bias/step", "optim/nothing/step",
                "history/loss", "history/step_loss", "extra", "meta2", "param/layers.0.weight/x"]
POSITIONS = ["epoch", "batch", "step"]


def _mutate_arrays(arrays: dict, rng: random.Random) -> None:
    roll = rng.random()
    name = rng.choice(sorted(arrays))
    if roll < 0.6:
        arrays[name] = _new_array(arrays[name], rng)
    elif roll < 0.8:
        del arrays[name]
    else:
        source = arrays[rng.choice(sorted(arrays))]
        arrays[rng.choice(MEMBER_NAMES)] = _new_array(source, rng) if rng.random() < 0.5 else source.copy()


def _mutate_meta(meta: dict, rng: random.Random, spec_too: bool) -> None:
    roll = rng.random()
    if roll < 0.35:   # the position, near its bounds and far beyond them
        key = rng.choice(POSITIONS)
        now = meta.get(key) if type(meta.get(key)) is int and abs(meta[key]) < 2**62 else 0
        meta[key] = rng.choice([now + rng.choice([-1, 1, 2, 5]), -1, 0, 10**6, 2**63, 1.0 * now, str(now), [now],
                                None, True])
    elif roll < 0.5:
        key = rng.choice(["epoch_sums", "optimizer_extra"])
        table = meta.get(key)
        if isinstance(table, dict) and table and rng.random() < 0.7:
            table[rng.choice(sorted(table))] = hostile_value(rng)
        else:
            meta[key] = hostile_value(rng)
    elif roll < 0.8 and spec_too and isinstance(meta.get("spec"), dict):   # a field of the spec inside
        meta["spec"] = mutate(meta["spec"], rng)
    elif roll < 0.9:
        meta[rng.choice(sorted(meta) + ["bogus"])] = hostile_value(rng)
    elif meta:
        del meta[rng.choice(sorted(meta))]


def forge(base: tuple[dict, dict], rng: random.Random, path) -> None:
    """One forged, re-signed checkpoint at ``path``."""
    meta, arrays = copy.deepcopy(base[0]), {k: v.copy() for k, v in base[1].items()}
    for i in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            _mutate_arrays(arrays, rng)
        else:
            _mutate_meta(meta, rng, spec_too=i == 0)   # once: a hostile value may be a list 900 deep
    text = _meta_bytes(meta, rng)
    sign(path, text, arrays)
    if rng.random() < 0.05:
        member = rng.choice(sorted(arrays) + ["meta", "checksum"]) + ".npy"
        declare_size(path, member, rng.choice([0, 1, 10**6, 3 * 10**9, 2**32 - 1]))


def _meta_bytes(meta: dict, rng: random.Random) -> bytes:
    roll = rng.random()
    try:
        text = json.dumps(meta).encode()
    except (ValueError, RecursionError, TypeError):   # an integer past the str-conversion limit, a deep list
        text = b'{"spec": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if roll < 0.05:
        return flip(text, rng)
    if roll < 0.07:
        return text.replace(b"}", b', "deep": ' + json.dumps(deep_list(rng.choice([40, 900]))).encode() + b"}", 1)
    if roll < 0.08:
        return json.dumps([meta.get("epoch"), 1]).encode()
    return text


# ------------------------------------------------------------------------------ the run


def _load_or_refuse(path):
    try:
        return checkpoint.load(path)
    except CheckpointError as err:
        text = str(err)
        assert "\n" not in text and len(text) <= MAX_MESSAGE and text.startswith(str(path)), text[:1000]
        return None


def _resume(ckpt, folder) -> None:
    """A run continues from a checkpoint that loaded: it trains to one epoch past it, or stops as diverged."""
    spec = parse_spec(ckpt.spec)
    spec = spec.replace(train=dict(spec.to_dict()["train"], epochs=ckpt.epoch + 1))
    try:
        with np.errstate(all="ignore"):
            train(spec, progress=False, checkpoints=Checkpointer(folder / "resumed.npz", resume=ckpt))
    except TrainingDiverged:
        return
    checkpoint.load(folder / "resumed.npz")   # what it wrote loads in turn


def run_fuzz(bases, folder, inputs: int, seed: int) -> tuple[int, int, int]:
    """(loaded, resumed of those, refused) over ``inputs`` forged checkpoints."""
    rng = random.Random(seed)
    path = folder / checkpoint.FILENAME
    loaded = resumed = refused = 0
    for _ in range(inputs):
        forge(rng.choice(bases), rng, path)
        ckpt = _load_or_refuse(path)
        if ckpt is None:
            refused += 1
            continue
        loaded += 1
        if spec_layout(path, ckpt.spec).steps_per_epoch <= 20:   # a spec mutated to a large dataset: loaded only
            _resume(ckpt, folder)
            resumed += 1
    return loaded, resumed, refused


@pytest.mark.parametrize("inputs", [pytest.param(10_000 * SCALE, marks=pytest.mark.slow), 1_000 * SCALE],
                         ids=["10000", "1000"])
def test_checkpoint_fuzz_loads_or_refuses(bases, tmp_path, inputs):
    loaded, resumed, refused = run_fuzz(bases, tmp_path, inputs, seed=inputs)
    assert loaded + refused == inputs
    assert refused >= inputs // 2 and resumed >= inputs // 50   # both outcomes exercised


# ------------------------------------------------------------------------- torch and Lightning


@pytest.fixture(scope="module")
def torch_bases(tmp_path_factory) -> list[tuple[str, dict]]:
    """(reader, data) of sound torch files: write_torch's .pt of each optimizer, a Lightning .ckpt."""
    import torch

    from torch_ref.checkpoint import write_torch
    from torch_ref.lightning import train as train_lightning

    folder = tmp_path_factory.mktemp("torch_bases")
    out = []
    for name, spec in BASES.items():
        train(spec, progress=False, checkpoints=Checkpointer(folder / f"{name}.npz"))
        write_torch(checkpoint.load(folder / f"{name}.npz"), folder / f"{name}.pt")
        out.append(("pt", torch.load(folder / f"{name}.pt", weights_only=True)))
    train_lightning(BASES["adam-mid-epoch"], progress=False, checkpoints={"dir": str(folder)})
    out.append(("ckpt", torch.load(folder / "last.ckpt", weights_only=True)))
    return out


def _tensor_paths(value, prefix=()):
    import torch

    if torch.is_tensor(value):
        yield prefix
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensor_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _tensor_paths(v, prefix + (i,))


def _forge_torch(data: dict, rng: random.Random) -> dict:
    """The file's dict with one to three tensors, containers or fields changed."""
    import torch

    from torch_ref.checkpoint import CHECKSUM_KEY

    data = copy.deepcopy(data)
    data.pop(CHECKSUM_KEY, None)
    copyable = True   # mutate copies the data: not once a hostile value (a list 900 deep) is in it
    for _ in range(rng.randint(1, 3)):
        paths = list(_tensor_paths(data))
        if paths and (rng.random() < 0.5 or not copyable):
            path = rng.choice(paths)
            node = data
            for key in path[:-1]:
                node = node[key]
            array = _new_array(node[path[-1]].numpy(), rng)
            if array.dtype.kind in "fiubc" and array.dtype.isnative:
                node[path[-1]] = torch.from_numpy(array)
            else:
                node[path[-1]], copyable = hostile_value(rng), False
        elif copyable:
            data, copyable = mutate(data, rng), False
    return data


def _read_or_refuse(reader: str, path):
    from torch_ref.checkpoint import read_lightning, read_torch

    try:
        return (read_lightning if reader == "ckpt" else read_torch)(path)
    except CheckpointError as err:
        text = str(err)
        assert "\n" not in text and len(text) <= MAX_MESSAGE and text.startswith(str(path)), text[:1000]
        return None


def run_torch_fuzz(bases, folder, inputs: int, seed: int) -> tuple[int, int]:
    """(read, refused) over ``inputs`` forged torch and Lightning files, each re-signed."""
    import torch

    from torch_ref.checkpoint import CHECKSUM_KEY, content_digest

    rng = random.Random(seed)
    read = refused = 0
    for _ in range(inputs):
        reader, data = rng.choice(bases)
        path = folder / f"forged.{reader}"
        forged = _forge_torch(data, rng)
        try:   # signed as save_checked signs (without its fsync)
            torch.save(dict(forged, **{CHECKSUM_KEY: content_digest(forged)}), path)
        except (RecursionError, TypeError, ValueError, RuntimeError):
            continue   # torch cannot write what was forged (a list 900 deep, an int past int64)
        ckpt = _read_or_refuse(reader, path)
        if ckpt is None:
            refused += 1
            continue
        read += 1
        checkpoint.save(ckpt, folder / "converted.npz")   # what was read converts, and loads back
        checkpoint.load(folder / "converted.npz")
    return read, refused


@pytest.mark.parametrize("inputs", [pytest.param(10_000 * SCALE, marks=[pytest.mark.slow, long_only]), 500 * SCALE],
                         ids=["10000", "500"])
def test_checkpoint_fuzz_torch_reads_or_refuses(torch_bases, tmp_path, inputs):
    read, refused = run_torch_fuzz(torch_bases, tmp_path, inputs, seed=inputs)
    assert read + refused >= inputs * 3 // 4   # what torch could write at all
    assert refused >= inputs // 2 and read >= inputs // 100
