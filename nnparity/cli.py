"""`nnparity`: a from-scratch NumPy network and its torch.nn twin, proven equal.

Commands: compare (scratch loop, torch loop and Lightning side by side), check (one forward and
backward, tensor by tensor), verify (a hand-written backward of your own), train, bench (timings
against torch and the machine's limit), convert (checkpoints between the three).
Exit codes: 0 all passed, 1 a parity check failed, 2 bad input (the message names the field), user
code that ended the run or raised, or output that could not be written; 141 the reader of the output
went away (a closed pipe); 128 + N a signal N (Ctrl-C 130).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

from nnparity import interrupts  # light: the rest (NumPy, torch) is imported once signals are caught
from scratch.signals import install

# Command -> (module with add_arguments(parser) and run(args) -> exit code, one-line help).
COMMANDS = {
    "check": ("nnparity.commands.check", "one forward and backward through both networks, compared"),
    "train": ("nnparity.commands.train", "train a spec with one backend (scratch, torch or lightning) and summarize the run"),
    "compare": ("nnparity.commands.compare", "train a spec with the three backends (scratch, torch, lightning) and compare them"),
    "verify": ("nnparity.commands.verify", "check a hand-written backward (module:Class), or a spec's first wrong layer"),
    "bench": ("nnparity.commands.bench", "time both networks (and torch.compile, JAX, micrograd, Lightning) against the machine's limit"),
    "convert": ("nnparity.commands.convert", "move a checkpoint between scratch, torch and Lightning (.npz, .pt, .ckpt)"),
}


def _chosen(argv: list[str]) -> str | None:
    """The command named on the command line, if any (the first word that is one)."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object]:
    """The parser, with the arguments of the chosen command only: only its module is imported."""
    try:
        release = version("nnparity")
    except PackageNotFoundError:  # run from a checkout that was not installed
        release = "unknown"
    parser = argparse.ArgumentParser(prog="nnparity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nnparity {release}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    chosen, module = _chosen(argv), None
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
    return parser, module


def main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """The command's exit status. ``own_process``: run a command that runs user code in a forked
    child (nnparity.forked), as the command line does."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with interrupts.caught():  # from the start: importing torch alone takes seconds
        try:
            parser, module = build_parser(argv)
            args = parser.parse_args(argv)
            from nnparity import forked
        except interrupts.Interrupted as err:
            print(interrupts.message(_chosen(argv) or "", err), file=sys.stderr)
            return interrupts.exit_code(err)
        if own_process and args.command in forked.COMMANDS and forked.available():
            return forked.exit_status(lambda: _run(module, args), args.command)
        return _run(module, args)


def console_main(argv: list[str] | None = None) -> int:
    """The `nnparity` console script and `python -m nnparity`: ``main``, with SIGINT and SIGTERM
    ignored outside it. Once the command has ended, a signal that comes while the interpreter
    shuts down would otherwise turn its exit code into a traceback, or an abort inside torch's
    teardown."""
    install(dict.fromkeys(interrupts.SIGNALS, signal.SIG_IGN))
    return main(argv, own_process=True)


def _run(module, args) -> int:
    """The command, with every way it may end as one exit code: bad input 2, a signal 128 + its
    number, a failed write to stdout 2 (a closed pipe 141, nnparity.stdout)."""
    from nnparity import stdout
    from nnparity.usage import UsageError
    from scratch import user_code
    from scratch.errors import SpecError

    if "" not in sys.path and os.getcwd() not in sys.path:  # user ops ('module:Class') import from the cwd,
        sys.path.insert(0, os.getcwd())                     # as under python -m
    try:
        with stdout.guarded():
            return module.run(args)
    except (SpecError, UsageError) as err:
        print(f"nnparity {args.command}: {err}", file=sys.stderr)
        return 2
    except interrupts.Interrupted as err:
        print(interrupts.message(args.command, err), file=sys.stderr)
        return interrupts.exit_code(err)
    except MemoryError:  # past the up-front estimate (scratch.limits): still one line, not a traceback
        print(f"nnparity {args.command}: out of memory; make the spec or the batch smaller "
              f"(the up-front limit is set by NNPARITY_MAX_MEMORY)", file=sys.stderr)
        return 2
    except stdout.StdoutError as err:
        return stdout.exit_status(err, f"nnparity {args.command}")
    except SystemExit as err:   # no command exits by itself: user code did, where no guard (scratch.user_code) ran
        print(f"nnparity {args.command}: {user_code.exit_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console_main())
