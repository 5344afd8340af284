"""Mutation check of the parity suite: does it notice when a hand-derived derivative is wrong?

    .venv/bin/python tools/mutate.py                      # every mutant; prints the score and survivors
    .venv/bin/python tools/mutate.py --list               # the mutants, without running anything
    .venv/bin/python tools/mutate.py --select Sigmoid.backward --limit 3 --json out.json
    .venv/bin/python tools/mutate.py --files nnparity/verify/diagnosis.py --sample 100 --seed 0

Targets (the derivatives and updates written by hand in scratch/): every activation's and loss's
``backward`` (and ``Loss._scale``), ``Dense.backward``, ``Attention.backward`` with the softmax's
and ``TransformerBlock.backward``, the image and sequence layers' backward passes (conv, pooling,
normalization, dropout, residual; rnn, lstm and gru through time, the embeddings, the readouts),
the optimizers' ``step`` and ``_update`` methods with ``_lerp`` and the clipping functions; and the
reference side of ``nnparity verify``, whose slips would pass a wrong gradient or fail a right one:
every function of its diagnosis (nnparity/verify/diagnosis.py: the comparison, the error measure,
the diagnosis), its finite differences (finite_diff.py) and the comparison helpers of op_check.py,
each against the verify tests only. Mutations, applied to the AST of
one function at a time:

    flip a sign     a + b ↔ a − b, −x → x, p −= … ↔ p += …, return −(…)
    scale           return / assigned value × 2 or × ½, a numeric constant × 2
    drop a term     a ± b → a or b, a·b → a or b, a / b → a, x.sum(…) → x (a reduction dropped)
    swap operands   a − b → b − a, a / b → b / a, a @ b → b @ a, a ** b → b ** a
    kink/transpose  > ↔ ≥, < ↔ ≤, x.T → x

The repository is copied to a temporary directory and everything runs there; the working tree is
never touched. One warm process imports numpy/torch once, then forks a child per mutant: the child
writes the mutated module into the copy, swaps the mutated function's code into the live function
object (so names bound by ``from scratch.x import f`` see it too) and runs the parity tests that
cover that file with ``pytest -x``: first the narrow ones (the tests named after a scratch op; for
verify's files the tests of its thresholds, parity_tests/test_verify_mutation_gaps.py), then, if the
mutant survives them, the rest. A mutant is *killed* when the tests fail (or time out). The
score is killed / (killed + survived). Not part of the regular test suite (a smoke test in
parity_tests/test_verify_mutation.py kills one mutant).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# file -> (functions by qualname predicate, the parity tests that cover it)
TARGETS = {
    "scratch/activations.py": (lambda q: q.endswith(".backward"),
                               ["parity_tests/test_activations.py", "parity_tests/test_network_parity.py",
                                "parity_tests/test_finite_diff.py",
                                "parity_tests/test_verify_ops.py::test_scratch_activations_pass_and_never_warn"]),
    "scratch/losses.py": (lambda q: q.endswith(".backward") or q == "Loss._scale",
                          ["parity_tests/test_losses.py", "parity_tests/test_network_parity.py",
                           "parity_tests/test_finite_diff.py"]),
    "scratch/layers.py": (lambda q: q == "Dense.backward",
                          ["parity_tests/test_network_parity.py", "parity_tests/test_finite_diff.py",
                           "parity_tests/test_seq_mutation_gaps.py"]),
    "scratch/optimizers.py": (lambda q: q.endswith((".step", "._update")) or q in (
        "_lerp", "global_norm", "clip_grad_norm", "clip_grad_value"),
                              ["parity_tests/test_optimizers.py"]),
    "scratch/attention.py": (lambda q: q in ("Attention.backward", "row_softmax_backward"),
                             ["-m", "not slow", "parity_tests/test_attention_layers.py", "-k", "parity or vanishes"]),
    "scratch/transformer.py": (lambda q: q == "TransformerBlock.backward",
                               ["-m", "not slow", "parity_tests/test_attention_layers.py", "-k", "parity"]),
    # the reference side of nnparity verify: its comparison, its diagnosis and its finite differences
    # (a planted slip there must be caught by the verify tests)
    "nnparity/verify/diagnosis.py": (lambda q: True,
                                     ["-m", "not slow", "parity_tests/test_verify_mutation_gaps.py",
                                      "parity_tests/test_verify_diagnosis.py", "parity_tests/test_verify_ops.py"]),
    "nnparity/verify/finite_diff.py": (lambda q: q in (
        "FDResult.resolve", "candidate_steps", "_combine", "_pick", "elementwise_derivative", "scalar_derivative",
        "_sampled_derivative"),
                                       ["-m", "not slow", "parity_tests/test_verify_mutation_gaps.py",
                                        "parity_tests/test_verify_diagnosis.py", "parity_tests/test_verify_ops.py"]),
    "nnparity/verify/op_check.py": (lambda q: q in ("_scaled", "_kinks", "_differ", "_reference_not_finite",
                                                    "_record_not_finite", "_fd_checks"),
                                    ["-m", "not slow", "parity_tests/test_verify_mutation_gaps.py",
                                     "parity_tests/test_verify_ops.py", "parity_tests/test_verify_edges.py"]),
}
# the image layers' backward passes, against the parity tests of their kinds (forward, every
# gradient, both dtypes, train and eval mode), selected narrowly: a few seconds a mutant
IMAGE_TESTS = ["-m", "not slow"] + [f"parity_tests/test_image_layers.py::test_image_layers_{name}" for name in (
    "parity", "maxpool_ties_go_to_the_first_maximum", "maxpool_padding_never_wins", "avgpool_counts_the_padding")] + [
    f"parity_tests/test_norm_layers.py::test_norm_layers_{name}" for name in ("parity", "dropout_is_torchs_dropout")] + [
    "parity_tests/test_image_mutation_gaps.py"]
IMAGE_TARGETS = {
    "scratch/conv.py": lambda q: q in ("Conv2d.backward", "Conv2d._col2im"),
    "scratch/pooling.py": lambda q: q.endswith(".backward"),
    "scratch/normalization.py": lambda q: q.endswith(".backward") or q in ("normalize_backward",
                                                                           "Normalization._store_gradients"),
    "scratch/dropout.py": lambda q: q == "Dropout.backward",
    "scratch/residual.py": lambda q: q == "Residual.backward",
    "scratch/windows.py": lambda q: q in ("Windows.offset_slice", "Windows.padded_zeros", "Windows.crop"),
}
TARGETS.update({rel: (wanted, IMAGE_TESTS) for rel, wanted in IMAGE_TARGETS.items()})
# the sequence layers' backward passes (BPTT of rnn, lstm and gru, stacked and bidirectional; the
# embeddings; the readouts), against the parity tests of their kinds: a second or two a mutant. The
# per-step dense layer and token_cce are Dense.backward and TokenCCE.backward, targets above.
SEQ_TESTS = ["-m", "not slow"] + [f"parity_tests/test_recurrent_layers.py::test_recurrent_layers_{name}" for name in (
    "parity", "parity_on_the_strict_device")] + [
    f"parity_tests/test_sequence_layers.py::test_sequence_layers_{name}" for name in (
        "parity", "parity_on_the_strict_device", "padding_row_gets_no_gradient")] + [
    "parity_tests/test_seq_mutation_gaps.py"]
SEQ_TARGETS = {
    "scratch/recurrent.py": lambda q: q.endswith(".step_back") or q in ("Recurrent.backward",
                                                                        "Recurrent._through_time"),
    "scratch/embedding.py": lambda q: q.endswith(".backward"),
    "scratch/readouts.py": lambda q: q.endswith(".backward"),
}
TARGETS.update({rel: (wanted, SEQ_TESTS) for rel, wanted in SEQ_TARGETS.items()})
EXTRA_TESTS = ["parity_tests/test_mutation_gaps.py"]   # tests added for survivors, run for scratch's dense files
# Run first, alone (a second or two): the tests written for the reference side's own thresholds. Only a
# mutant they let through pays for the file's other tests.
FIRST = ["parity_tests/test_verify_mutation_gaps.py"]
TIMEOUT = 300.0


@dataclass
class Mutant:
    """One mutation of one function."""

    id: str              # file:qualname:line:operator
    file: str
    qualname: str
    line: int
    operator: str        # flip-sign | scale | drop-term | swap | kink | transpose | constant
    description: str     # e.g. "a - b -> a + b"
    source: str = ""     # the whole mutated module
    status: str = ""     # killed | survived | timeout | error


# ----------------------------------------------------------------------------------- mutations


def _qualnames(tree):
    """(qualname, FunctionDef) for every function, methods as Class.method."""
    out = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{prefix}{child.name}", child))
    walk(tree, "")
    return out


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scaled(expr, factor):
    return ast.BinOp(left=ast.Constant(factor), op=ast.Mult(), right=expr)


def _src(node) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _keyword_values(func) -> set[int]:
    """ids of constants that are keyword arguments such as axis=1 (structure, not maths)."""
    return {id(kw.value) for node in ast.walk(func) if isinstance(node, ast.Call) for kw in node.keywords}


def _plumbing(value) -> bool:
    """Assignments that move data rather than compute it (grads = self._grads(grads))."""
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in (
        "_grads", "copy")


def _binop_mutations(i: int, node: ast.BinOp) -> list:
    """Mutations of one binary operation: flipped signs, dropped terms, swapped operands."""
    a, b, op = node.left, node.right, node.op
    out = []
    sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@",
           ast.Pow: "**"}.get(type(op))
    if sym is None:
        return []
    if isinstance(op, (ast.Add, ast.Sub)):
        other = ast.Sub() if isinstance(op, ast.Add) else ast.Add()
        out.append((i, "flip-sign", f"{_src(node)}: {sym} -> {'-' if sym == '+' else '+'}",
                    lambda n, o=other: ast.BinOp(n.left, o, n.right)))
        out.append((i, "drop-term", f"{_src(node)} -> {_src(a)}", lambda n: n.left))
        out.append((i, "drop-term", f"{_src(node)} -> {'-' if sym == '-' else ''}{_src(b)}",
                    lambda n, s=sym: ast.UnaryOp(ast.USub(), n.right) if s == "-" else n.right))
    if isinstance(op, ast.Mult):
        out.append((i, "drop-term", f"{_src(node)} -> {_src(a)}", lambda n: n.left))
        out.append((i, "drop-term", f"{_src(node)} -> {_src(b)}", lambda n: n.right))
    if isinstance(op, ast.Div):
        out.append((i, "drop-term", f"{_src(node)} -> {_src(a)}", lambda n: n.left))
    if isinstance(op, (ast.Sub, ast.Div, ast.MatMult, ast.Pow)):
        out.append((i, "swap", f"{_src(node)} -> {_src(b)} {sym} {_src(a)}",
                    lambda n: ast.BinOp(n.right, n.op, n.left)))
    return out


def candidates(func):
    """(node index in ast.walk order, operator, description, make(node) -> replacement) per mutation."""
    skip = _keyword_values(func)
    out = []
    for i, node in enumerate(ast.walk(func)):
        if isinstance(node, ast.BinOp):
            out += _binop_mutations(i, node)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            out.append((i, "flip-sign", f"{_src(node)} -> {_src(node.operand)}", lambda n: n.operand))
        elif isinstance(node, ast.Return) and node.value is not None:
            for factor, name in ((-1, "flip-sign"), (2, "scale"), (0.5, "scale")):
                out.append((i, name, f"return {_src(node.value)} -> x{factor}",
                            lambda n, f=factor: ast.Return(_scaled(n.value, f))))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.op, (ast.Add, ast.Sub)):
                other = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
                out.append((i, "flip-sign", f"{_src(node)}: augmented {'+' if isinstance(node.op, ast.Add) else '-'}"
                            f"= flipped", lambda n, o=other: ast.AugAssign(n.target, o, n.value)))
            for factor in (2, 0.5):
                out.append((i, "scale", f"{_src(node)}: value x{factor}",
                            lambda n, f=factor: ast.AugAssign(n.target, n.op, _scaled(n.value, f))))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and not isinstance(node.value, (
                ast.Dict, ast.DictComp, ast.Tuple, ast.Constant, ast.Name)) and not _plumbing(node.value):
            for factor in (2, 0.5):
                out.append((i, "scale", f"{_src(node)}: value x{factor}",
                            lambda n, f=factor: ast.Assign(n.targets, _scaled(n.value, f))))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "sum", "mean"):
            out.append((i, "drop-term", f"{_src(node)} -> {_src(node.func.value)} (reduction dropped)",
                        lambda n: n.func.value))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            swap = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt}.get(type(node.ops[0]))
            if swap is not None:
                out.append((i, "kink", f"{_src(node)}: {type(node.ops[0]).__name__} -> {swap.__name__}",
                            lambda n, s=swap: ast.Compare(n.left, [s()], n.comparators)))
        elif isinstance(node, ast.Attribute) and node.attr == "T" and isinstance(node.ctx, ast.Load):
            out.append((i, "transpose", f"{_src(node)} -> {_src(node.value)}", lambda n: n.value))
        elif isinstance(node, ast.Constant) and _num(node.value) and node.value != 0 and id(node) not in skip:
            out.append((i, "constant", f"constant {node.value!r} -> {node.value * 2!r}",
                        lambda n: ast.Constant(n.value * 2)))
    return out


class _Replace(ast.NodeTransformer):
    def __init__(self, target, replacement):
        self.target, self.replacement = target, replacement

    def generic_visit(self, node):
        for field, old in ast.iter_fields(node):
            if isinstance(old, list):
                for k, item in enumerate(old):
                    if item is self.target:
                        old[k] = self.replacement
                    elif isinstance(item, ast.AST):
                        self.generic_visit(item)
            elif old is self.target:
                setattr(node, field, self.replacement)
            elif isinstance(old, ast.AST):
                self.generic_visit(old)
        return node


def mutants_of(rel: str, select: str | None = None) -> list[Mutant]:
    """Every mutant of the target functions of one file."""
    wanted, _ = TARGETS[rel]
    source = (REPO / rel).read_text()
    tree = ast.parse(source)
    out = []
    for qualname, func in _qualnames(tree):
        if not wanted(qualname) or (select and select not in f"{rel}:{qualname}"):
            continue
        for index, operator, description, make in candidates(func):
            mutated = copy.deepcopy(tree)
            mfunc = dict(_qualnames(mutated))[qualname]
            node = list(ast.walk(mfunc))[index]
            _Replace(node, make(copy.deepcopy(node))).visit(mfunc)
            ast.fix_missing_locations(mutated)
            try:
                new_source = ast.unparse(mutated)
                compile(new_source, rel, "exec")
            except (SyntaxError, ValueError):
                continue
            line = getattr(node, "lineno", func.lineno)
            out.append(Mutant(id=f"{rel}:{qualname}:L{line}:{operator}:{len(out)}", file=rel, qualname=qualname,
                              line=line, operator=operator, description=description, source=new_source))
    return out


# ------------------------------------------------------------------------------------ running


def _copy_repo() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="nnparity-mutants-"))
    shutil.copytree(REPO, tmp / "repo", ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", ".hypothesis", ".pytest_cache", "*.egg-info", "results", "*.png"))
    return tmp / "repo"


def _patch(mutant: Mutant) -> None:
    """In the child: swap the mutated function's code into the live function object."""
    import importlib

    import types

    module = importlib.import_module(mutant.file[:-3].replace("/", "."))
    shadow = types.ModuleType(module.__name__ + "__mutant__")
    shadow.__file__ = module.__file__
    sys.modules[shadow.__name__] = shadow     # dataclasses look their module up while the class is made
    namespace = shadow.__dict__
    exec(compile(mutant.source, module.__file__, "exec"), namespace)  # noqa: S102 - our own source
    fresh, live = namespace, module
    for part in mutant.qualname.split("."):
        fresh = fresh[part] if isinstance(fresh, dict) else fresh.__dict__[part]
        live = getattr(live, part) if not isinstance(live, type) else live.__dict__[part]
    live.__code__ = fresh.__code__


def keyword(m: Mutant) -> str | None:
    """A pytest -k expression for the tests named after the mutated op (its registry name)."""
    import importlib

    head = m.qualname.split(".")[0]
    obj = getattr(importlib.import_module(m.file[:-3].replace("/", ".")), head, None)
    name = getattr(obj, "name", "") if isinstance(obj, type) else ""
    return name or {"_lerp": "adam", "global_norm": "clip", "clip_grad_norm": "clip",
                    "clip_grad_value": "clip"}.get(head)


def _run_child(mutant: Mutant | None, tests: list[str], timeout: float, verbose: bool) -> str:
    """Fork; the child applies the mutant and runs pytest. killed | survived | timeout | error."""
    pid = os.fork()
    if pid == 0:   # the child
        code = 3
        try:
            if not verbose:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            if mutant is not None:
                _patch(mutant)
            import pytest

            # in this process, where the mutant is: no worker processes (the suite's -n auto)
            code = int(pytest.main(["-o", "addopts=", "-p", "no:xdist", "-x", "-q", "-p", "no:cacheprovider",
                                    "--no-header", *tests]))
        except BaseException:  # noqa: BLE001 - any failure to apply is reported as an error
            code = 3 if mutant is None else 4
        finally:
            os._exit(code)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    if code in (0, 5):       # passed, or (with -k) nothing selected
        return "survived"
    if code == 4:
        return "error"      # the mutant could not be applied
    if code in (1, 2) or code < 0:
        return "killed"     # tests failed (1), or the run broke down (2: collection, signal)
    return "error"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=list(TARGETS), help="target files (default: all)")
    parser.add_argument("--select", help="only mutants whose file:qualname contains this text")
    parser.add_argument("--limit", type=int, help="at most this many mutants (the first ones)")
    parser.add_argument("--sample", type=int, help="a random sample of this many of the selected mutants "
                                                   "(seeded by --seed: the same sample every run)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of --sample")
    parser.add_argument("--survivors", metavar="FILE", help="only the mutants that survived in this --json "
                                                            "result (after tests were added for them)")
    parser.add_argument("--tests", nargs="*", help="run these tests instead of the ones mapped to each file")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--json", metavar="FILE", help="write every mutant's result as JSON")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per mutant (a timeout kills it)")
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    return parser.parse_args(argv)


def warm_copy() -> Path:
    """A copy of the repository, made the working directory, with its modules imported once
    (every forked child shares them). Raises SystemExit if the copy's scratch is not the one imported."""
    work = _copy_repo()
    os.chdir(work)
    sys.path.insert(0, str(work))
    os.environ["PYTHONPATH"] = str(work) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    import numpy  # noqa: F401  - warm imports, shared by every forked child
    import torch  # noqa: F401
    import scratch
    for rel in TARGETS:
        __import__(rel[:-3].replace("/", "."))
    if not Path(scratch.__file__).resolve().is_relative_to(work):
        raise SystemExit(f"mutate: scratch imports from {scratch.__file__}, not the copy in {work}")
    return work


def run_mutant(m: Mutant, work: Path, tests: list[str], args) -> str:
    """Apply one mutant to the copy, run its tests, restore the file; return its status."""
    path = work / m.file
    original = path.read_text()
    path.write_text(m.source)
    try:
        status = "survived"
        word = None if args.tests else keyword(m)
        first = [t for t in tests if t in FIRST]
        if word:     # first the tests named after the op (fast when they kill it), then all of them
            status = _run_child(m, tests + ["-k", word], args.timeout, args.verbose)
        elif first:  # first the narrow tests, then the rest
            status = _run_child(m, first, args.timeout, args.verbose)
            tests = [t for t in tests if t not in FIRST]
        if status == "survived":
            status = _run_child(m, tests, args.timeout, args.verbose)
        return status
    finally:
        path.write_text(original)


def summary(mutants: list[Mutant], seconds: float) -> tuple[str, dict]:
    """The printed summary, and the JSON document of every mutant's result."""
    killed = sum(m.status in ("killed", "timeout") for m in mutants)
    survived = [m for m in mutants if m.status == "survived"]
    errors = [m for m in mutants if m.status == "error"]
    scored = killed + len(survived)
    score = killed / scored if scored else 0.0
    by_file = {}
    for m in mutants:
        k, n = by_file.get(m.file, (0, 0))
        by_file[m.file] = (k + (m.status in ("killed", "timeout")), n + (m.status != "error"))
    lines = [f"mutation score: {killed}/{scored} = {score:.1%}  ({len(errors)} could not be applied; {seconds:.0f} s)"]
    lines += [f"  {f}: {k}/{n}" for f, (k, n) in by_file.items()]
    lines += [f"SURVIVED {m.id}  {m.description}" for m in survived]
    lines += [f"ERROR    {m.id}  {m.description}" for m in errors]
    doc = {"score": score, "killed": killed, "survived": len(survived), "errors": len(errors),
           "mutants": [{k: v for k, v in asdict(m).items() if k != "source"} for m in mutants]}
    return "\n".join(lines), doc


def main(argv=None) -> int:
    args = parse_args(argv)
    unknown = [f for f in args.files if f not in TARGETS]
    if unknown:
        print(f"mutate: unknown file(s) {unknown}; expected some of {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    mutants = [m for f in args.files for m in mutants_of(f, args.select)][:args.limit]
    if args.sample is not None and args.sample < len(mutants):
        import random

        chosen = sorted(random.Random(args.seed).sample(range(len(mutants)), args.sample))
        mutants = [mutants[i] for i in chosen]
    if args.survivors:
        survived = {m["id"] for m in json.loads(Path(args.survivors).read_text())["mutants"] if m["status"] == "survived"}
        mutants = [m for m in mutants if m.id in survived]
    if args.list:
        print("\n".join(f"{m.id}  {m.description}" for m in mutants) + f"\n{len(mutants)} mutants")
        return 0
    if not mutants:
        print("mutate: no mutants selected", file=sys.stderr)
        return 2
    work = warm_copy()
    extra = [t for t in EXTRA_TESTS if (work / t).exists()]

    def tests_for(rel):
        if args.tests:
            return args.tests
        return TARGETS[rel][1] + (extra if rel.startswith("scratch/") and rel not in IMAGE_TARGETS
                                 and rel not in SEQ_TARGETS else [])

    t0 = time.monotonic()
    baseline = {rel: _run_child(None, tests_for(rel), args.timeout, args.verbose) for rel in args.files}
    if any(status != "survived" for status in baseline.values()):
        print(f"mutate: the unmutated suite does not pass ({baseline}); fix that first", file=sys.stderr)
        return 2
    print(f"mutate: {len(mutants)} mutants in a copy at {work}", flush=True)
    for k, m in enumerate(mutants, 1):
        m.status = run_mutant(m, work, tests_for(m.file), args)
        mark = "." if m.status in ("killed", "timeout") else ("S" if m.status == "survived" else "E")
        print(mark, end="" if k % 60 else f" {k}\n", flush=True)
    text, doc = summary(mutants, time.monotonic() - t0)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    shutil.rmtree(work.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
