"""`nnparity train SPEC`: train the spec with one backend and summarize the run.

Exit codes: 0 trained; 1 training diverged (NaN or inf: the message names step and parameter);
2 bad input (spec, data or option: the message names the field), an unsound checkpoint to resume,
a --checkpoint DIR another live run holds, or a checkpoint that could not be written (a full
disk: the previous one stays as it was); 128 + the signal number when Ctrl-C (130) or SIGTERM
(143) stopped a run that writes checkpoints, after writing one.
"""
from __future__ import annotations

import json
import math
import os
import sys

from contextlib import nullcontext

from nnparity import interrupts
from nnparity.checkpoint_folder import held
from nnparity.outputs import check_output_file, write_via_temp
from nnparity.usage import UsageError, add_device_argument, check_threads, spec_on_device
from scratch import checkpoint
from scratch.data import load_dataset
from scratch.policy import json_safe
from scratch.signals import Interrupted
from scratch.spec import load_spec
from scratch.training import TrainingDiverged, epoch_batches, train as train_scratch


def _epochs_done(epochs):
    """A training callback that records finished epochs for the interrupted line; never stops the run."""
    def done(epoch, history):
        interrupts.finished(f"{epoch} of {epochs} epochs (not saved)", key="epochs")
        return False
    return done


def _train_scratch(spec, args, progress):
    return train_scratch(spec, epochs=args.epochs, progress=progress,
                         callback=_epochs_done(args.epochs or spec.train.epochs), checkpoints=checkpointer(spec, args))


# torch and Lightning are imported only by the backend that uses them: scratch trains without torch.
def _train_torch(spec, args, progress):
    from torch_ref.training import train

    return train(spec, epochs=args.epochs, progress=progress, callback=_epochs_done(args.epochs or spec.train.epochs),
                 checkpoints=checkpointer(spec, args))


def _train_lightning(spec, args, progress):
    from torch_ref.checkpoint import read_lightning
    from torch_ref.lightning import train

    checkpoints = None
    if args.checkpoint:
        path = checkpoint_path(spec, args, LIGHTNING_FILE)
        if args.resume:
            _check_resumable(read_lightning, path, spec)
        checkpoints = {"dir": args.checkpoint, "every": args.every, "resume": path if args.resume else None}
    return train(spec, epochs=args.epochs, progress=progress, callback=_epochs_done(args.epochs or spec.train.epochs),
                 devices=args.devices, num_nodes=args.num_nodes,
                 strategy=args.strategy or ("ddp" if args.devices * args.num_nodes > 1 else "auto"),
                 accelerator="gpu" if spec.device == "cuda" else "auto", checkpoints=checkpoints)


LIGHTNING_FILE = "last.ckpt"   # what Lightning's ModelCheckpoint(save_last=True) writes


def checkpoint_path(spec, args, filename: str) -> str:
    """The checkpoint file in --checkpoint DIR (made and locked by then), after the checks that keep
    a user's files safe: an existing checkpoint is continued only with --resume, and only by the
    same spec, or replaced only with --force."""
    folder = args.checkpoint
    path = os.path.join(folder, filename)
    others = [f for f in (checkpoint.FILENAME, LIGHTNING_FILE) if os.path.exists(os.path.join(folder, f))]
    if not args.resume:
        if others and not args.force:
            raise UsageError(f"--checkpoint: {folder} {_holds(os.path.join(folder, others[0]), spec)}")
        return path
    if not os.path.exists(path):
        hint = f" (it holds {others[0]}: convert it with `nnparity convert`)" if others else ""
        raise UsageError(f"--resume: {folder} holds no {filename} to resume with --backend {args.backend}{hint}")
    return path


def _holds(path: str, spec) -> str:
    """What the checkpoint at ``path`` is to this run, and the ways on."""
    try:
        if path.endswith(".npz"):
            saved = checkpoint.load(path).spec
        else:
            from torch_ref.checkpoint import read_lightning   # torch only for a Lightning file

            saved = read_lightning(path).spec
    except checkpoint.CheckpointError as err:
        return f"already holds a checkpoint that cannot be read ({err}); pass --force to replace it"
    differs = checkpoint.spec_difference(saved, spec.to_dict())
    if differs:
        return f"holds another spec's checkpoint ({differs}); pass --force to replace it, or name another directory"
    return (f"already holds a checkpoint ({os.path.basename(path)}); pass --resume to continue it, "
            f"--force to start over, or name another directory")


def checkpointer(spec, args):
    """The scratch and torch loops' Checkpointer for --checkpoint/--every/--resume (None without)."""
    if not args.checkpoint:
        return None
    path = checkpoint_path(spec, args, checkpoint.FILENAME)
    resume = _check_resumable(checkpoint.load, path, spec) if args.resume else None
    every = args.every or checkpoint.default_every(len(epoch_batches(_train_rows(spec), spec, 0)))
    return checkpoint.Checkpointer(path, every=every, resume=resume)


def _check_resumable(read, path: str, spec):
    """The checkpoint at ``path`` (read by ``read``) if it is sound and of this spec; else UsageError."""
    try:
        saved = read(path)
    except checkpoint.CheckpointError as err:
        raise UsageError(f"--resume: {err}") from None
    differs = checkpoint.spec_difference(saved.spec, spec.to_dict())
    if differs:
        raise UsageError(f"--resume: {path} is another spec's checkpoint ({differs})")
    return saved


def _train_rows(spec) -> int:
    return len(load_dataset(spec).x_train)


# --backend name -> runner(spec, args, progress) -> scratch.training.TrainResult
BACKENDS = {
    "scratch": _train_scratch,
    "torch": _train_torch,
    "lightning": _train_lightning,
}


def add_arguments(parser):
    parser.add_argument("spec", help="spec file (.toml or .json) with [data] and [train] tables")
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="scratch",
                        help="which implementation trains (default: scratch; lightning: PyTorch Lightning's Trainer)")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the spec's train.epochs")
    parser.add_argument("--json", action="store_true",
                        help="print the history and the final parameters as one JSON object")
    parser.add_argument("--plot", metavar="FILE.png", help="write the loss curve to this PNG")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --plot file; start over in a --checkpoint DIR that holds one")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(parser, "scratch and the torch loop (lightning: its accelerator)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch CPU threads (default 1: small networks lose time waking a thread pool, "
                             "badly so on a busy machine; as `nnparity compare`)")
    parser.add_argument("--devices", type=int, default=1, metavar="N",
                        help="lightning: DDP over N processes (CPU, gloo) or GPUs (NCCL) per machine")
    parser.add_argument("--num-nodes", type=int, default=1, metavar="M", help="lightning: DDP over M machines")
    parser.add_argument("--strategy", choices=("ddp", "ddp_spawn"),
                        help="lightning: how DDP starts its processes (default ddp when N*M > 1)")
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="write checkpoints to DIR (checkpoint.npz; lightning: last.ckpt): every --every "
                             "steps, when the run ends, and on Ctrl-C or SIGTERM before stopping")
    parser.add_argument("--every", type=int, metavar="N",
                        help="with --checkpoint: write one every N steps (default: once per epoch)")
    parser.add_argument("--resume", action="store_true",
                        help="with --checkpoint: continue the run saved in DIR, bit for bit")


def run(args) -> int:
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs: must be >= 1, got {args.epochs}")
    if args.plot is not None:  # before any work: a run must not train, then fail to write
        check_output_file(args.plot, "--plot", args.force, suffix=".png")
    check_threads(args.threads)
    for name in ("devices", "num_nodes"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.backend != "lightning" and (args.devices > 1 or args.num_nodes > 1 or args.strategy):
        raise UsageError("--devices, --num-nodes and --strategy are for --backend lightning")
    _check_checkpoint_flags(args)
    spec = spec_on_device(load_spec(args.spec), args, scratch=args.backend == "scratch",
                          torch=args.backend != "scratch")
    progress = False if args.quiet else None
    if args.backend != "scratch":
        import torch

        torch.set_num_threads(args.threads)
    try:
        with held(args.checkpoint) if args.checkpoint else nullcontext():
            result = BACKENDS[args.backend](spec, args, progress)
    except checkpoint.CheckpointError as err:   # one that cannot be written (a full disk)
        raise UsageError(str(err)) from None
    except TrainingDiverged as err:
        if args.json:  # the history up to the divergence is the user's: print it, the divergence named
            print(json.dumps(json_safe(diverged_to_json(err, spec, args.backend)), allow_nan=False))
        print(f"nnparity train: {err}", file=sys.stderr)
        return 1
    except Interrupted as err:
        if err.path is None:  # no checkpoint to resume from: the command line's one line
            raise
        print(f"nnparity train: interrupted by {err}; continue with --resume", file=sys.stderr)
        return interrupts.exit_code(err)
    if getattr(result, "lightning", {}).get("global_rank", 0) != 0:
        return 0  # a DDP process other than rank 0: rank 0 reports the (same) run
    # The results first: a plot that fails to write loses nothing that was printed.
    if args.json:
        print(json.dumps(json_safe(result_to_json(result, spec, args.backend)), allow_nan=False), flush=True)
    else:
        print(summary(result, spec, args), flush=True)
    interrupts.finished("training, results printed", key="epochs")
    if args.plot:
        write_via_temp(args.plot, lambda tmp: plot_losses(result, tmp, title=f"{args.spec} ({args.backend})"),
                       "--plot")
    return 0


def diverged_to_json(err: TrainingDiverged, spec, backend: str) -> dict:
    """A diverged run as plain data: what was recorded before it, and the divergence itself."""
    h = err.history
    history = ({"step_loss": h.step_loss, "epoch_loss": h.epoch_loss, "epoch_accuracy": h.epoch_accuracy,
                "grad_norm": h.grad_norm} if h is not None else None)
    return {"backend": backend, "dtype": spec.dtype, "stopped": "diverged",
            "diverged": {"message": str(err), "what": err.what, "value": err.value, "epoch": err.epoch,
                         "step": err.step, "batch": err.batch, "parameter": err.parameter},
            "history": history}


def _check_checkpoint_flags(args) -> None:
    name = args.checkpoint   # argparse gives --checkpoint=-- as an empty list
    if name is not None and (not isinstance(name, str) or not name.strip()):
        shown = repr(name) if isinstance(name, str) else "'--'"
        raise UsageError(f"--checkpoint: {shown} names no folder; name one, e.g. --checkpoint runs/xor "
                         f"(one whose name starts with '-' as --checkpoint=./-name)")
    if (args.every is not None or args.resume) and not args.checkpoint:
        raise UsageError("--every and --resume need --checkpoint DIR")
    if args.every is not None and args.every < 1:
        raise UsageError(f"--every: must be >= 1 (steps between checkpoints), got {args.every}")
    if args.checkpoint and args.devices * args.num_nodes > 1:
        raise UsageError("--checkpoint: single-process runs only; drop --devices/--num-nodes or --checkpoint")


def result_to_json(result, spec, backend: str) -> dict:
    """The run as plain data: summary numbers, the whole history, the final parameters by name
    in scratch's (inputs, units) layout (as `nnparity check --json` names them)."""
    h = result.history
    steps = len(h.step_loss)
    return {
        "backend": backend,
        "dtype": spec.dtype,
        "device": spec.device,
        "stopped": result.stopped,
        "epochs": len(h.epoch_loss),
        "steps": steps,
        "seconds": result.seconds,
        "step_seconds_mean": sum(result.step_seconds) / steps if steps else 0.0,
        "final_loss": h.epoch_loss[-1] if h.epoch_loss else None,
        "accuracy": h.epoch_accuracy[-1] if h.epoch_accuracy else None,
        "test_loss": result.test_loss,
        "test_accuracy": result.test_accuracy,
        "history": {"step_loss": h.step_loss, "epoch_loss": h.epoch_loss,
                    "epoch_accuracy": h.epoch_accuracy, "grad_norm": h.grad_norm},
        "params": {name: value.tolist() for name, value in result.params.items()},
        **({"sample": language_model_sample(result, spec)} if spec.data.name == "text" else {}),
    }


def summary(result, spec, args) -> str:
    h = result.history
    steps = len(h.step_loss)
    why = {"epochs": lambda: f"reached {len(h.epoch_loss)} epochs",
           "loss_tol": lambda: f"epoch loss <= train.loss_tol = {spec.train.loss_tol:g}",
           "grad_tol": lambda: f"gradient norm <= train.grad_tol = {spec.train.grad_tol:g}",
           "callback": lambda: "stopped by the callback"}[result.stopped]()
    per_step = result.seconds / steps * 1e3 if steps else 0.0
    lines = [f"nnparity train {args.spec}  backend={args.backend}  dtype={spec.dtype}  "
             f"optimizer={spec.optimizer.name}" + (f"  device={spec.device}" if spec.device != "cpu" else ""),
             f"stopped: {why} ({len(h.epoch_loss)} epochs, {steps} steps) in {result.seconds:.3f} s "
             f"({per_step:.3f} ms/step)"]
    final = f"final loss {h.epoch_loss[-1]:.6g} (mean over the last epoch's steps)" if h.epoch_loss else "no epoch"
    if h.epoch_accuracy:
        final += f", train accuracy {100 * h.epoch_accuracy[-1]:.2f}%"
    lines.append(final)
    if result.test_loss is not None:
        test = f"test loss {result.test_loss:.6g}"
        if result.test_accuracy is not None:
            test += f", test accuracy {100 * result.test_accuracy:.2f}%"
        lines.append(test)
    if spec.data.name == "text":
        lines.append(f"sample (greedy): {language_model_sample(result, spec)!r}")
    return "\n".join(lines)


def language_model_sample(result, spec) -> str:
    """A language model's greedy continuation of scratch.generate's prompt, from the final parameters."""
    from scratch.generate import greedy_text

    return greedy_text(spec, result.params)


def plot_losses(result, path: str, title: str = "") -> None:
    """The per-step loss and the per-epoch mean loss against the step, on a log scale when positive."""
    import matplotlib   # only when a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result.history
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = range(1, len(h.step_loss) + 1)
    ax.plot(steps, h.step_loss, lw=0.8, alpha=0.6, label="step loss (before the step)")
    if h.epoch_loss and len(h.step_loss) > len(h.epoch_loss):
        per_epoch = math.ceil(len(h.step_loss) / len(h.epoch_loss))
        ends = [min((i + 1) * per_epoch, len(h.step_loss)) for i in range(len(h.epoch_loss))]
        ax.plot(ends, h.epoch_loss, marker="o", ms=3, lw=1.2, label="epoch mean")
    if h.step_loss and min(h.step_loss) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
