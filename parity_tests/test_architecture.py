"""The layout's rules, read from the source: the one direction of imports (scratch <- torch_ref <-
nnparity), no import cycle between the project's modules (function-local imports included), the
verify tool's torch-free part importing only NumPy and scratch, and commands and modules that need
no torch working where torch cannot be imported."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scratch", "torch_ref", "nnparity", "benchmarks")
# what each layer may not import (anywhere in its modules, function-local imports too). The
# harness, nnparity.bench, times scratch and torch_ref and is part of nnparity; benchmarks/ (the
# asv suite, not installed) uses the harness, and nothing installed imports it.
FORBIDDEN = {
    "scratch": ("torch", "lightning", "torch_ref", "nnparity", "benchmarks"),
    "torch_ref": ("nnparity", "benchmarks"),
    "nnparity": ("benchmarks",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in the file names (``from a import b``: a.b where that is
    a module of the project, and a unless every name imported is such a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(node.module)
    return names


def project_imports(module: str) -> set[str]:
    return {name for name in imported_names(MODULES[module]) if name in MODULES and name != module}


def test_architecture_finds_the_layers():
    assert {"scratch.spec", "scratch.signals", "torch_ref.model", "nnparity.verify.op_check",
            "nnparity.verify.autograd.references", "nnparity.cli", "nnparity.commands.compare.worker",
            "nnparity.bench.cli", "benchmarks.asv_bench"} <= set(MODULES)


def test_architecture_harness_is_imported_only_by_its_command():
    """nnparity.bench is a leaf of nnparity: only the bench command (and the asv suite) imports it,
    and it imports no command."""
    importers = {module for module in MODULES if not module.startswith(("nnparity.bench", "benchmarks."))
                 and any(name.startswith("nnparity.bench") for name in project_imports(module))}
    assert importers == {"nnparity.commands.bench"}
    into_commands = [module for module in MODULES if module.startswith("nnparity.bench")
                     and any(name.startswith("nnparity.commands") or name == "nnparity.cli"
                             for name in project_imports(module))]
    assert not into_commands


def test_architecture_wheel_adds_only_the_projects_names():
    """The installed packages are scratch, torch_ref and nnparity (no top-level benchmarks), and
    every folder of theirs holding modules is one of them; the data they ship: the bench specs and
    scratch's texts."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(setup["packages"])
    assert {name.split(".")[0] for name in packages} == {"scratch", "torch_ref", "nnparity"}
    on_disk = {module_name(p.parent / "__init__.py") for top in ("scratch", "torch_ref", "nnparity")
               for p in (ROOT / top).rglob("*.py")}
    assert packages == on_disk
    assert setup["package-data"] == {"nnparity.bench": ["specs/*.toml"], "scratch": ["texts/*.txt", "texts/README.md"]}
    assert list((ROOT / "nnparity" / "bench" / "specs").glob("*.toml"))
    assert list((ROOT / "scratch" / "texts").glob("*.txt"))   # the shipped text of the char-level language model


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_architecture_imports_point_one_way(layer):
    bad = [f"{module} imports {name}" for module in MODULES if module.split(".")[0] == layer
           for name in imported_names(MODULES[module])
           if name.split(".")[0] in FORBIDDEN[layer]]
    assert not bad, "\n".join(bad)


# nnparity.verify's torch-free part: everything under it but its autograd part
VERIFY_CORE = sorted(m for m in MODULES if (m == "nnparity.verify" or m.startswith("nnparity.verify."))
                     and not m.startswith("nnparity.verify.autograd"))
VERIFY_CORE_MAY_IMPORT = ("numpy", "scratch")


def test_architecture_verify_core_imports_only_numpy_and_scratch():
    """The torch-free part of the verify tool imports the standard library, NumPy, scratch and
    itself: not torch, torch_ref, its autograd part or the rest of nnparity."""
    assert "nnparity.verify.time_limit" in VERIFY_CORE and "nnparity.verify.autograd.twins" not in VERIFY_CORE
    bad = [f"{module} imports {name}" for module in VERIFY_CORE for name in imported_names(MODULES[module])
           if not (name.split(".")[0] in sys.stdlib_module_names or name.split(".")[0] in VERIFY_CORE_MAY_IMPORT
                   or name == "__future__" or name in VERIFY_CORE)]
    assert not bad, "\n".join(bad)


def test_architecture_has_no_import_cycle():
    graph = {module: project_imports(module) for module in MODULES}
    state: dict[str, int] = {}        # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_architecture_cycle_check_sees_function_local_imports(tmp_path):
    """The checker is not blind to an import inside a function (the way cycles used to hide)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from scratch.spec import load_spec\n    return load_spec\n")
    assert "scratch.spec" in imported_names(source)


NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, NoTorch())
"""
BLOCK_TORCH = NO_TORCH + """
from nnparity.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [
    ["train", "specs/xor.toml", "--backend", "scratch", "--epochs", "3", "--quiet"],
    ["check", "--help"],
    ["compare", "--help"],
    ["bench", "--help"],
    ["--help"],
], ids=["train_scratch", "check_help", "compare_help", "bench_help", "help"])
def test_architecture_torch_free_commands_run_without_torch(argv):
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout


IMPORT_WITHOUT_TORCH = NO_TORCH + """
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
assert "torch" not in sys.modules
"""


def test_architecture_verify_core_imports_without_torch():
    """Every module of the verify tool's torch-free part imports where torch cannot be imported."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_WITHOUT_TORCH, *VERIFY_CORE], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_architecture_torch_blocker_blocks_imports():
    """The same blocker stops a module of the autograd part."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_WITHOUT_TORCH, "nnparity.verify.autograd"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "blocked in this test" in proc.stderr


def test_architecture_torch_blocker_blocks():
    """The blocker above really blocks: a command that needs torch fails under it."""
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "check", "specs/xor.toml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "blocked in this test" in proc.stderr


def layout_table() -> dict[str, str]:
    """The README's "What is where" table: folder -> what its row says."""
    text = (ROOT / "README.md").read_text()
    table = text.split("What is where", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


@pytest.mark.parametrize("folder", ["scratch/", "torch_ref/", "nnparity/", "nnparity/verify/",
                                    "nnparity/verify/autograd/", "nnparity/bench/", "benchmarks/"])
def test_architecture_readme_layout_table_matches_the_tree(folder):
    row = layout_table()[folder]
    named = set(re.findall(r"`([\w/]+\.py)`", row))
    on_disk = {p.name for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"}
    assert named == on_disk, f"README's {folder} row names {sorted(named - on_disk)} that are not there, " \
                             f"and misses {sorted(on_disk - named)}"


def test_architecture_readme_layout_table_paths_exist():
    for path in layout_table():
        assert (ROOT / path).exists(), f"README's layout table names {path}, which is not in the tree"
