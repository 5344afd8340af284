"""`nnparity`: a from-scratch NumPy network and its torch.nn twin, proven equal.

Commands: compare (scratch loop, torch loop and Lightning side by side), check (one forward and
backward, tensor by tensor), verify (a hand-written backward of your own), train.
Exit codes: 0 all passed, 1 a parity check failed, 2 bad input (the message names the field).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from scratch.spec import SpecError, load_spec

# Subcommand -> module with add_arguments(parser) and run(args) -> exit code.
COMMANDS = {
    "check": ("torch_ref.cmd_check", "one forward and backward through both networks, compared"),
    "train": ("torch_ref.cmd_train", "train a spec with one backend (scratch, torch or lightning) and summarize the run"),
    "compare": ("torch_ref.cmd_compare", "train a spec three ways (scratch, torch loop, Lightning) and compare them"),
    "verify": ("torch_ref.cmd_verify", "check a hand-written backward (module:Class), or a spec's first wrong layer"),
}


class UsageError(Exception):
    """Bad input given on the command line (exit 2)."""


def spec_from_args(args, command: str):
    """The spec named on the command line, or the command's built-in default."""
    if getattr(args, "spec", None):
        return load_spec(args.spec)
    from torch_ref.defaults import default_spec

    return default_spec(command)


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("nnparity")
    except PackageNotFoundError:  # run from a checkout that was not installed
        release = "unknown"
    parser = argparse.ArgumentParser(prog="nnparity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nnparity {release}")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:  # user ops ('module:Class') import from the cwd,
        sys.path.insert(0, os.getcwd())                     # as under python -m
    try:
        return modules[args.command].run(args)
    except (SpecError, UsageError) as err:
        print(f"nnparity {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nnparity ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
