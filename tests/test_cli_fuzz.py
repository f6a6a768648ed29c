"""No input that can hurt: every command fuzzed (``tests/cli_fuzz.py``), and the cases a new user hit, by name."""

from __future__ import annotations

import csv
import itertools
import json

import pytest

import cli_fuzz
from conftest import run_cli as run
from edgenas.spaces import get_space

COMMANDS = [name for name, _ in cli_fuzz._commands()]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return cli_fuzz.build_workspace(tmp_path_factory.mktemp("fuzz"))


def test_every_numeric_option_has_a_declared_range():
    assert cli_fuzz.numeric_callbacks_missing() == []


def test_the_matrix_covers_every_command_and_is_large(ws):
    matrix = cli_fuzz.cases(ws)
    assert {c.command for c in matrix} >= set(COMMANDS) - {"space list", "space show"}  # these take no number/path
    assert len(matrix) > 700


@pytest.mark.parametrize("command", COMMANDS)
def test_base_invocation_succeeds(ws, command, tmp_path):
    """The fuzz changes one value of a working command line, so each refusal is due to that value."""
    positionals, options = cli_fuzz.base_invocations(ws)[command]
    argv = [*command.split(), *positionals]
    for key, value in options:
        argv += [key] if value is None else [key, value.replace("{out}", str(tmp_path))]
    code, _, err = cli_fuzz.invoke(argv)
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("space list", "space show")])
def test_fuzz_contract(ws, command):
    outcomes = []
    for i, case in enumerate(c for c in cli_fuzz.cases(ws) if c.command == command):
        outcomes.append(cli_fuzz.run_case(ws, case, i))
        if outcomes[-1].code == 2:
            json_case = cli_fuzz.Case(case.command, case.param, case.value_name, as_json=True)
            outcomes.append(cli_fuzz.run_case(ws, json_case, 10_000 + i))
    broken = [f"{o.case.id}: {'; '.join(o.violations)}" for o in outcomes if not o.ok]
    assert outcomes and broken == []
    # NaN, inf and 1e30 are never accepted by any numeric option
    assert all(o.code == 2 for o in outcomes if o.case.value_name in ("nan", "inf", "-inf", "huge"))


# ----- the cases of the issue, by name --------------------------------------------------------------------------
def one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_space_option_of_the_wrong_type(capsys):
    one_line_error(*run(["space", "show", "mbv2", "--set", "width=abc"], capsys), "width must be a finite number")
    one_line_error(*run(["space", "show", "nb201", "--set", "channels=4.5"], capsys), "channels must be an integer")


@pytest.mark.parametrize(
    "argv",
    [
        ["predictor", "fit", "--train-size", "nan", "-o", "p.pt"],
        ["train", "6111", "--space", "nb201", "--lr", "nan", "-o", "r"],
        ["search", "lightnas", "-s", "nb201", "--predictor", "p.pt", "--target-ms", "nan", "-o", "r"],
        ["search", "lightnas", "-s", "nb201", "--predictor", "p.pt", "--warmup-epochs", "-1", "-o", "r"],
        ["search", "fbnet", "-s", "nb201", "--predictor", "p.pt", "--lambda", "1", "--tolerance", "-1", "-o", "r"],
        ["arch", "export", "6111", "--space", "nb201", "--opset", "99", "-o", "m.onnx"],
    ],
    ids=["train-size-nan", "lr-nan", "target-nan", "warmup-negative", "tolerance-negative", "opset-99"],
)
def test_numbers_refused_with_their_option(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pt").write_bytes(b"")  # so that only the number is wrong
    option = next(a for a, b in itertools.pairwise(argv) if b in ("nan", "-1", "99"))
    one_line_error(*run(argv, capsys), f"'{option}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pt"]


def test_usage_errors_are_one_line_and_json_errors_are_json(capsys):
    one_line_error(*run(["arch", "show"], capsys), "Missing argument", "edgenas arch show --help")
    one_line_error(*run(["train", "--bogus"], capsys), "No such option: --bogus")
    code, out, err = run(["space", "show", "mbv9", "--json"], capsys)
    assert (
        code == 2
        and err == ""
        and json.loads(out)
        == {
            "error": json.loads(out)["error"],
            "kind": "UnknownSpaceError",
        }
    )
    code, out, _ = run(["arch", "export", "6111", "--opset", "99", "-o", "m.onnx", "--json"], capsys)
    assert code == 2 and json.loads(out)["kind"] == "BadParameter"


def test_no_arguments_prints_the_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 0 and "Commands:" in out


def _nb201_rows(n=5):
    space = get_space("nb201")
    return [str(space.from_index(i)) for i in range(n)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("arch,other\n" + "".join(f"{a},1\n" for a in _nb201_rows()), "missing column(s) lat"),
        ("", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a text CSV"),
        ("arch,lat\n" + "".join(f"{a},fast\n" for a in _nb201_rows()), "no usable value in 5 row(s) (5 not a number)"),
    ],
    ids=["missing-column", "empty", "not-csv", "all-non-numeric"],
)
def test_store_import_checks_the_whole_file_first(content, message, tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_bytes(content if isinstance(content, bytes) else content.encode())
    store = tmp_path / "m.sqlite"
    argv = ["store", "import", str(table), "--store", str(store), "--space", "nb201", "--arch-column", "arch"]
    one_line_error(*run([*argv, "--value-column", "lat"], capsys), message)
    assert not store.exists()  # no empty store left behind


def test_store_export_with_two_devices_needs_one_picked(tmp_path, capsys):
    table = tmp_path / "export.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "space", "arch", "value"])
        for i, arch in enumerate(_nb201_rows()):
            w.writerow(["cpu-a", "nb201", arch, 1 + i])
            w.writerow(["cpu-b", "nb201", arch, 2 + i])
    store = tmp_path / "m.sqlite"
    argv = ["store", "import", str(table), "--store", str(store), "--space", "nb201", "--arch-column", "arch"]
    one_line_error(*run([*argv, "--value-column", "value"], capsys), "holds 2 devices (cpu-a, cpu-b)")
    assert not store.exists()
    code, out, _ = run([*argv, "--value-column", "value", "--store-device", "cpu-b", "--json"], capsys)
    assert code == 0 and json.loads(out)["added"] == 5 and json.loads(out)["store_devices"] == ["cpu-b"]
    fit = ["predictor", "fit", "--table", str(table), "--space", "nb201", "--arch-column", "arch"]
    one_line_error(*run([*fit, "--value-column", "value", "-o", str(tmp_path / "p.pt")], capsys), "pick one with")


def test_a_text_file_as_a_predictor(tmp_path, capsys):
    text = tmp_path / "p.pt"
    text.write_text("this is not a predictor\n")
    argv = ["predictor", "eval", str(text), "--table", str(text), "--arch-column", "a", "--value-column", "v"]
    one_line_error(*run(argv, capsys), "not a file written by torch.save")


def test_unknown_predictor_kind_is_named_first(tmp_path, capsys):
    one_line_error(*run(["predictor", "fit", "--kind", "xgb", "-o", str(tmp_path / "p.pt")], capsys), "'xgb'")


def test_checkpoint_reasons_end_on_a_word():
    from edgenas.train.checkpoint import MAX_REASON_CHARS, first_sentence

    long = RuntimeError("word " * 200)
    text = first_sentence(long)
    assert len(text) <= MAX_REASON_CHARS + 2 and text.endswith("word …")
    assert first_sentence(ValueError("Bad magic. Then pages of detail")) == "Bad magic."


def test_store_reading_commands_do_not_touch_an_empty_file(tmp_path, capsys):
    empty = tmp_path / "m.sqlite"
    empty.write_bytes(b"")
    one_line_error(*run(["store", "info", "--store", str(empty)], capsys), "not an edgenas measurement store")
    assert empty.stat().st_size == 0


def test_plain_progress_prints_every_tenth(capsys):
    from edgenas.cli._progress import PlainProgress

    progress = PlainProgress("[bold]profiling", "last {task.fields[last]}")
    task = progress.add_task("p", total=50, last="-")
    for i in range(1, 51):
        progress.update(task, completed=i, last=f"{i} ms")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and lines[0].startswith("profiling 5/50 (10%)") and lines[-1].endswith("last 50 ms")


def test_profile_logs_progress_when_stderr_is_a_file(tmp_path, capsys):
    argv = ["profile", "nb201", "--set", "channels=4", "--set", "cells_per_stage=1", "--n", "3"]
    argv += ["--runtime", "torch-cpu", "--warmup", "1", "--repeats", "3", "--store", str(tmp_path / "m.sqlite")]
    code, _, err = run(argv, capsys)
    assert code == 0 and "profiling 3/3 (100%)" in err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["comfort", "6111", "--space", "nb201", "-o", "z.png"], "use --plot"),
        (["predictor", "fit", "--device", "cpu", "-o", "p.pt"], "use --store-device"),
        (["arch", "export", "6111", "--space", "nb201", "--batch", "2", "-o", "m.onnx"], "use --input-batch"),
        (["train", "6111", "--space", "nb201", "--warmup-epochs", "1", "-o", "r"], "use --lr-warmup-epochs"),
    ],
)
def test_old_spellings_point_to_the_new_ones(argv, hint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(*run(argv, capsys), "this option was renamed", hint)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_option_gets_no_rename_hint(capsys):
    code, out, err = run(["measure", "6111", "--space", "nb201", "-o", "x"], capsys)
    one_line_error(code, out, err, "No such option: -o")
    assert "renamed" not in err


def test_messages_say_what_is_wrong_with_what_was_given(tmp_path, capsys):
    """Issue 28 §5: each of these met the one-line contract but named the wrong problem."""
    one_line_error(*run(["arch", "show", ""], capsys), "ARCH is empty")
    (tmp_path / "folder").mkdir()
    one_line_error(*run(["eval", str(tmp_path / "folder"), "--data", "sample"], capsys), "not an edgenas training run")
    empty = tmp_path / "results.json"
    empty.write_text("")
    store = tmp_path / "s.sqlite"
    one_line_error(*run(["store", "import", str(empty), "--store", str(store)], capsys), "is empty")
    import torch

    whole = tmp_path / "whole.pt"
    torch.save({"weights": torch.zeros(1000)}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:2000])
    one_line_error(*run(["eval", str(cut), "--data", "sample"], capsys), "truncated")
    import sqlite3

    old_store = tmp_path / "old.sqlite"
    sqlite3.connect(old_store).execute("create table t (x)").connection.commit()
    one_line_error(*run(["store", "import", str(old_store), "--store", str(store)], capsys), "not a table", "--store")
    assert not store.exists()  # nothing was created by any refusal
