"""Smoke test of tools/mutate.py (the mutation check of this suite, run by hand; not part of CI):
it makes every kind of mutant (sign, factor, dropped term, kink, transpose, constant), and kills one in a copy of the tree without touching it."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzing import long_only

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "mutate.py"


def _tool():
    spec = importlib.util.spec_from_file_location("nnparity_mutate", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nnparity_mutate", module)    # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def test_dense_backward_gets_every_kind_of_mutant():
    mutants = _tool().mutants_of("scratch/layers.py")
    assert {m.operator for m in mutants} == {"scale", "flip-sign", "swap", "transpose", "drop-term", "kink",
                                             "constant"}
    descriptions = {m.description for m in mutants}
    assert "self.x.T -> self.x" in descriptions
    assert "grad_out.sum(axis=0, out=self.grad_bias) -> grad_out (reduction dropped)" in descriptions
    original = (REPO / "scratch/layers.py").read_text()
    for m in mutants:
        assert m.qualname == "Dense.backward" and m.source != original
        compile(m.source, m.file, "exec")


def test_one_mutant_is_killed_in_a_copy_of_the_tree(tmp_path):
    before = _digest(REPO / "scratch")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--files", "scratch/layers.py", "--limit", "1", "--json", str(out),
         "--tests", "parity_tests/test_finite_diff.py::test_finite_diff_batch_one"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert (result["killed"], result["survived"], result["errors"]) == (1, 0, 0)
    assert result["mutants"][0]["status"] == "killed"
    assert "mutation score: 1/1 = 100.0%" in proc.stdout
    assert _digest(REPO / "scratch") == before, "the working tree must never be edited"


@pytest.mark.slow
@long_only      # enumerating every mutant of the three files: about 100 s
def test_the_reference_side_of_verify_gets_mutants():
    """diagnosis.py (every function), finite_diff.py and op_check.py's comparison are targets, each run
    against the verify tests; --sample draws the same seeded subset every time."""
    tool = _tool()
    for rel in ("nnparity/verify/diagnosis.py", "nnparity/verify/finite_diff.py", "nnparity/verify/op_check.py"):
        mutants = tool.mutants_of(rel)
        assert mutants and all(m.file == rel for m in mutants)
        assert all(t.startswith(("parity_tests/test_verify_", "-m", "not slow")) for t in tool.TARGETS[rel][1])
    qualnames = {m.qualname for m in tool.mutants_of("nnparity/verify/diagnosis.py")}
    assert {"_compare", "_scores", "_factor_diagnosis", "_batch_factor"} <= qualnames
    assert "jacobian_rows" not in {m.qualname for m in tool.mutants_of("nnparity/verify/finite_diff.py")}


@pytest.mark.slow
def test_a_reference_side_mutant_is_applied_and_killed(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--files", "nnparity/verify/diagnosis.py", "--select", "_not_checked",
         "--limit", "1", "--json", str(out), "--tests", "parity_tests/test_verify_mutation_gaps.py"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert (result["killed"], result["errors"]) == (1, 0), result


@pytest.mark.parametrize("group", ["IMAGE", "SEQ"])
def test_the_layers_backward_passes_get_mutants(group):
    """The image layers (conv, pooling, normalization, dropout, residual, window geometry) and the
    sequence layers (recurrent, embeddings, readouts): their backward passes (never a forward) are
    targets, run against parity tests of their kinds that exist."""
    import ast

    tool = _tool()
    targets, tests = getattr(tool, f"{group}_TARGETS"), getattr(tool, f"{group}_TESTS")
    for rel in targets:
        chosen = [(name, func) for name, func in tool._qualnames(ast.parse((REPO / rel).read_text()))
                  if targets[rel](name) and tool.candidates(func)]
        assert chosen and not any(name.endswith((".forward", ".step")) for name, _ in chosen), rel
        mutants = tool.mutants_of(rel, select=f"{rel}:{chosen[0][0]}")    # one function's, made for real
        assert mutants and all(m.file == rel and m.qualname == chosen[0][0] for m in mutants), rel
        assert tool.TARGETS[rel][1] == tests
    for test in tests[2:]:
        path, _, name = test.partition("::")
        assert (REPO / path).is_file() and (not name or f"def {name}(" in (REPO / path).read_text()), test
