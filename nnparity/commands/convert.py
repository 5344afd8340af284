"""`nnparity convert SRC DST`: move a checkpoint between scratch, torch and Lightning.

SRC: a checkpoint.npz (scratch and torch loops), a Lightning .ckpt, or a torch .pt
({"model": state_dict, "optimizer": state_dict}); DST: .npz (resume it with --backend scratch or
torch) or .pt. Parameters and optimizer state are copied bit for bit (weights change layout only).
Exit codes: 0 written; 2 bad input (a corrupted, unsafe or unsound file, an unknown suffix, an
existing DST, a DST that is a directory or cannot be written: a full disk leaves no half file).
"""
from __future__ import annotations

import os

from nnparity import checkpoint_folder
from nnparity.usage import UsageError
from scratch import checkpoint
from scratch.spec import load_spec

READS = (".npz", ".ckpt", ".pt")
WRITES = (".npz", ".pt")


def add_arguments(parser):
    parser.add_argument("src", help="checkpoint to read: .npz, Lightning .ckpt or torch .pt")
    parser.add_argument("dst", help="file to write: .npz (scratch and torch resume it) or .pt (torch state_dicts)")
    parser.add_argument("--spec", help="the spec the weights belong to, for files that do not name one")
    parser.add_argument("--force", action="store_true", help="replace DST if it exists")


def run(args) -> int:
    src, dst = args.src, args.dst
    if os.path.splitext(src)[1] not in READS:
        raise UsageError(f"SRC: {src}: expected a {', '.join(READS)} file")
    if os.path.splitext(dst)[1] not in WRITES:
        raise UsageError(f"DST: {dst}: expected a {' or '.join(WRITES)} file")
    if os.path.isdir(dst):
        raise UsageError(f"DST: {dst} is a directory; name a file, e.g. {os.path.join(dst, 'checkpoint.npz')}")
    if os.path.exists(dst) and not args.force:
        raise UsageError(f"DST: {dst} exists; pass --force to replace it")
    spec = load_spec(args.spec).to_dict() if args.spec else None
    try:
        ckpt = _read(src, spec)
        _make_parent(dst)
        with checkpoint_folder.free(os.path.dirname(os.path.abspath(dst)), "DST"):
            if dst.endswith(".npz"):
                checkpoint.save(ckpt, dst)
            else:
                from torch_ref.checkpoint import write_torch   # torch only where a torch file is involved

                write_torch(ckpt, dst)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    print(f"nnparity convert: {src} -> {dst} (epoch {ckpt.epoch}, batch {ckpt.batch}, step {ckpt.step}, "
          f"optimizer {ckpt.spec['optimizer']['name']})")
    return 0


def _make_parent(dst: str) -> None:
    parent = os.path.dirname(os.path.abspath(dst))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"DST: {dst}: {existing} is a file, not a directory")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as err:
        raise UsageError(f"DST: cannot make the directory of {dst}: {err.strerror or err}") from None


def _read(src: str, spec: dict | None):
    if src.endswith(".npz"):
        ckpt = checkpoint.load(src)
        if spec is not None and checkpoint.spec_difference(ckpt.spec, spec):
            raise UsageError(f"--spec: {checkpoint.spec_difference(ckpt.spec, spec)}")
        return ckpt
    from torch_ref.checkpoint import read_lightning, read_torch   # torch only for torch files

    return read_lightning(src, spec) if src.endswith(".ckpt") else read_torch(src, spec)
