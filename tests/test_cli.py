"""The CLI end to end: --json output, and one line + exit code 2 for every user error, with no partial file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli as run
from edgenas.spaces import get_space, load_specs


def test_sample_show_export_with_json(tmp_path, capsys):
    archs = tmp_path / "archs.jsonl"
    code, out, _ = run(["arch", "sample", "mbv2-cifar", "--n", "3", "--seed", "7", "-o", str(archs), "--json"], capsys)
    assert code == 0
    payload = json.loads(out)
    assert payload["n"] == 3 and len(load_specs(archs)) == 3
    assert payload["archs"] == [str(s) for s in get_space("mbv2-cifar").sample(seed=7, n=3)]

    code, out, _ = run(["arch", "show", str(archs), "--json"], capsys)
    rows = json.loads(out)["archs"]
    assert code == 0 and len(rows) == 3
    assert all(r["costs"]["params"] > 1e6 and r["costs"]["intensity"] > 0 for r in rows)

    onnx_file = tmp_path / "m.onnx"
    code, out, _ = run(["arch", "export", str(archs), "--index", "2", "-o", str(onnx_file), "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and onnx_file.is_file()
    assert result["rel_error"] < 1e-4 and result["arch"] == rows[2]["arch"]


def test_space_show_and_list_json(capsys):
    code, out, _ = run(["space", "show", "mbv2-cifar", "--set", "width=0.5", "--json"], capsys)
    info = json.loads(out)
    # at width 0.5 the fixed layer's 24 channels round up to 16, so stage1.block1 keeps its shape and may be a skip
    assert code == 0 and info["options"]["width"] == 0.5 and info["size"] == str(7**16 * 6**5)
    code, out, _ = run(["space", "list", "--json"], capsys)
    assert {s["space"] for s in json.loads(out)["spaces"]} == {
        "mbv2",
        "mbv2-cifar",
        "fbnet",
        "nb201",
        "channels",
        "domino",
    }


def test_arch_string_and_nb201_index(capsys):
    code, out, _ = run(["arch", "show", "6111", "--space", "nb201", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["archs"][0]["costs"]["params"] == 1073466


def _bad_inputs(tmp_path):
    malformed = tmp_path / "bad.json"
    malformed.write_text('{"format_version": 1, "space": ')
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    good = str(get_space("mbv2-cifar").sample(seed=0)[0])
    shape_change = good.split("-")
    shape_change[0] = "skip"
    return {
        "unknown space": (["space", "show", "mbv9"], "unknown search space 'mbv9'"),
        "malformed JSON": (["arch", "show", str(malformed)], "malformed JSON"),
        "missing file": (["arch", "show", str(tmp_path / "none.json")], "no such spec file"),
        "wrong layer count": (["arch", "show", "k3e3-k3e6", "--space", "mbv2-cifar"], "expected 21"),
        "op not allowed": (["arch", "show", "-".join(shape_change), "--space", "mbv2-cifar"], "layer 0"),
        "unknown option": (["space", "show", "mbv2", "--set", "depth=3"], "unknown option"),
        "unwritable output": (
            ["arch", "export", good, "--space", "mbv2-cifar", "-o", str(blocker / "m.onnx")],
            "cannot create folder",
        ),
        "unwritable sample output": (
            ["arch", "sample", "nb201", "--n", "2", "-o", str(blocker / "a.jsonl")],
            "cannot create folder",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown space",
        "malformed JSON",
        "missing file",
        "wrong layer count",
        "op not allowed",
        "unknown option",
        "unwritable output",
        "unwritable sample output",
    ],
)
def test_user_errors_give_one_line_and_exit_code_2(case, tmp_path, capsys):
    argv, message = _bad_inputs(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing half-written


def test_console_script_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "edgenas", "arch", "show", "k3e3", "--space", "nb201"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_version(capsys):
    from edgenas import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"edgenas {__version__}"


def test_root_help_lists_every_command_as_it_describes_itself():
    """``edgenas --help`` prints from a table so as not to import the commands: the table must say what they say,
    in their order, at any terminal width (Click cuts the first sentence to the width)."""
    import typer

    from edgenas.cli._app import COMMAND_SUMMARIES, click_command, command_summaries, entry_command
    from edgenas.cli._app import make_default_short_help as short

    registered = command_summaries()
    assert list(COMMAND_SUMMARIES) == list(registered)
    for limit in range(20, 300, 9):
        assert {n: short(t, limit) for n, t in COMMAND_SUMMARIES.items()} == {
            n: short(t, limit) for n, t in registered.items()
        }
    lazy, full = entry_command(), click_command()
    assert lazy.get_help(typer.Context(lazy, info_name="edgenas")) == full.get_help(
        typer.Context(full, info_name="edgenas")
    )


def test_root_help_and_version_do_not_import_torch():
    """The start-up cost of ``edgenas --help`` is importing torch (about 1.5 s here): it must not happen."""
    probe = (
        "import sys\n"
        "from edgenas.cli import main\n"
        "for argv in (['--help'], ['--version'], []):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "print('torch' in sys.modules, 'edgenas.spaces' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert proc.stdout.count("Commands:") == 2


def test_export_static_batch_and_resolution(tmp_path, capsys):
    import onnx

    target = tmp_path / "cell.onnx"
    code, out, _ = run(
        ["arch", "export", "6111", "--space", "nb201", "--input-batch", "2", "--resolution", "24", "-o", str(target)],
        capsys,
    )
    assert code == 0 and "rel. error" in out
    dims = onnx.load(str(target)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 24, 24]


NB201_TINY = ["--space", "nb201", "--set", "channels=4", "--set", "cells_per_stage=1"]


def test_train_then_eval_report_the_same_accuracy(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [
        "train",
        "6111",
        *NB201_TINY,
        "--data",
        "sample",
        "--subset",
        "40",
        "--test-subset",
        "20",
        "--batch-size",
        "20",
        "-o",
        str(run_dir),
        "--json",
    ]
    code, out, _ = run(argv, capsys)
    assert code == 0
    final = json.loads(out)["final"]
    code, out, _ = run(["eval", str(run_dir), "--data", "sample", "--test-subset", "20", "--json"], capsys)
    assert code == 0
    evaluated = json.loads(out)
    assert evaluated["top1"] == pytest.approx(final["test_top1"]) and evaluated["n"] == 20


def test_train_and_eval_user_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDGENAS_DATA", raising=False)
    code, _, err = run(["train", "6111", *NB201_TINY, "-o", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--data DIR or set EDGENAS_DATA" in err
    assert not (tmp_path / "r").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _out, err = run(["eval", str(bad), "--data", "sample"], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot load checkpoint" in err
    code, _out, err = run(
        [
            "train",
            "6111",
            *NB201_TINY,
            "--data",
            "sample",
            "--amp",
            "fp16",
            "--device",
            "cpu",
            "-o",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "fp16 needs a CUDA" in err
    code, _out, err = run(
        [
            "train",
            "6111",
            "--space",
            "nb201",
            "--set",
            "num_classes=100",
            "--data",
            "sample",
            "-o",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 2 and "add --set num_classes=10" in err


def test_ordered_sampling_draws_every_op_of_every_layer_once_per_group(tmp_path, capsys):
    space = get_space("mbv2-cifar")
    archs = tmp_path / "ordered.jsonl"
    code, _, _ = run(["arch", "sample", "mbv2-cifar", "--n", "14", "--sampling", "ordered", "-o", str(archs)], capsys)
    assert code == 0
    specs = load_specs(archs)
    group = max(len(ops) for ops in space.allowed_ops)
    assert len(specs) == 14 == 2 * group
    for start in (0, group):
        for layer, ops in enumerate(space.allowed_ops):
            drawn = [s.choices[layer] for s in specs[start : start + group]]
            assert set(drawn) == set(ops)  # every allowed op of the layer once (fewer ops: the rest random fills)
            if len(ops) == group:
                assert sorted(drawn) == sorted(ops)
    assert specs == space.sample(seed=0, n=14, ordered=True)
    assert specs != space.sample(seed=0, n=14)  # not the uniform draw


def test_profile_refuses_ordered_sampling_with_a_plan(tmp_path, capsys):
    code, _, err = run(
        ["profile", "mbv2-cifar", "--n", "4", "--sampling", "ordered", "--cover", "--store", str(tmp_path / "s.db")],
        capsys,
    )
    assert code == 2 and "--sampling ordered" in err and not (tmp_path / "s.db").exists()
