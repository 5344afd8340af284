"""`--device cpu|cuda` on check, train and compare, and the spec's `device` field from the command
line: on a machine without CUDA or CuPy, cuda is refused with one line naming the option (or the
field) and exit 2; a bogus value is argparse's exit 2; cpu works as before."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnparity.cli import main
from scratch.spec import load_spec
from conftest import cuda_ready

ROOT = Path(__file__).resolve().parents[1]
XOR = str(ROOT / "specs" / "xor.toml")
OPTIONS = {   # each command's options for a short run, after the spec
    "check": [],
    "train": ["--epochs", "2", "--quiet"],
    "compare": ["--epochs", "2", "--repeat", "1", "--plot", "none", "--quiet"],
}
COMMANDS = {
    "check": ["check", XOR],
    "train_scratch": ["train", XOR, *OPTIONS["train"]],
    "train_torch": ["train", XOR, *OPTIONS["train"], "--backend", "torch"],
    "compare": ["compare", XOR, *OPTIONS["compare"]],
}
NO_CUDA = pytest.mark.skipif(cuda_ready(), reason="checks the refusal on a machine without CUDA and CuPy")


def run(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def cuda_spec(tmp_path) -> str:
    """xor.toml with ``device = "cuda"`` in the spec itself."""
    path = tmp_path / "xor_cuda.json"
    path.write_text(load_spec(XOR).replace(device="cuda").to_json())
    return str(path)


@NO_CUDA
@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS.keys())
def test_cli_device_cuda_without_cuda_exits_2_naming_the_option(capsys, argv):
    code, out, err = run(capsys, [*argv, "--device", "cuda"])
    command = argv[0]
    assert code == 2 and out == ""
    assert err.startswith(f"nnparity {command}: --device: cuda") and err.count("\n") == 1
    assert "use cpu" in err and "Traceback" not in err


@NO_CUDA
@pytest.mark.parametrize("command", OPTIONS)
def test_cli_device_cuda_from_the_spec_exits_2_naming_the_field(capsys, tmp_path, command):
    code, out, err = run(capsys, [command, cuda_spec(tmp_path), *OPTIONS[command]])
    assert code == 2 and out == ""
    assert err.startswith(f"nnparity {command}: device: cuda") and err.count("\n") == 1 and "use cpu" in err


@pytest.mark.parametrize("command", OPTIONS)
def test_cli_device_bogus_exits_2(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, XOR, "--device", "bogus"])
    assert info.value.code == 2
    assert "argument --device: invalid choice: 'bogus'" in capsys.readouterr().err


def test_cli_device_cpu_check_is_the_check_without_it(capsys):
    _, plain, _ = run(capsys, ["check", XOR, "--json"])
    code, on_cpu, err = run(capsys, ["check", XOR, "--json", "--device", "cpu"])
    assert code == 0, err
    assert json.loads(on_cpu) == json.loads(plain) and json.loads(on_cpu)["ok"] is True


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_cli_device_cpu_train_is_the_run_without_it(capsys, backend):
    argv = ["train", XOR, "--epochs", "20", "--json", "--backend", backend]
    _, plain, _ = run(capsys, argv)
    code, on_cpu, err = run(capsys, [*argv, "--device", "cpu"])
    assert code == 0, err
    ours, before = json.loads(on_cpu), json.loads(plain)
    assert ours["device"] == "cpu"
    assert ours["history"] == before["history"] and ours["params"] == before["params"]


def test_cli_device_cpu_overrides_the_specs_cuda(capsys, tmp_path):
    """--device cpu wins over a spec that says cuda: the run happens, on the CPU."""
    code, out, err = run(capsys, ["train", cuda_spec(tmp_path), "--epochs", "3", "--json", "--device", "cpu"])
    assert code == 0, err
    assert json.loads(out)["device"] == "cpu" and json.loads(out)["steps"] == 3


@pytest.mark.slow
def test_cli_device_cpu_compare_agrees(capsys):
    code, out, err = run(capsys, [*COMMANDS["compare"], "--json", "--device", "cpu"])
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["device"] == "cpu"
