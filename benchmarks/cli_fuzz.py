"""Figures of the CLI issue: the fuzz matrix's size, the share of cases that meet the contract, and the time.

Usage: python benchmarks/cli_fuzz.py [--with-tests]

Runs the matrix of ``tests/cli_fuzz.py`` (every command, every numeric option x {0, -1, NaN, inf, -inf, 1e30},
every path input x {missing, empty, folder, random bytes}; each refused case again with ``--json``) in-process on
tiny fixtures, and writes ``results/cli_fuzz.{json,md}``. ``--with-tests`` also times the fuzz tests and the whole
suite (``pytest -q``) in subprocesses.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, write_results

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import cli_fuzz  # noqa: E402  (the matrix lives beside the tests that assert it)


def run() -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = cli_fuzz.run_matrix(Path(tmp))
    seconds = time.perf_counter() - start
    per_command: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        c = per_command[o.case.command]
        c["cases"] += 1
        c["json" if o.case.as_json else "plain"] += 1
        c["accepted (exit 0)" if o.code == 0 else "refused (exit 2)" if o.code == 2 else "other exit"] += 1
        c["meets contract"] += o.ok
    broken = [{"case": o.case.id, "violations": o.violations} for o in outcomes if not o.ok]
    return {
        "cases": len(outcomes),
        "plain": sum(not o.case.as_json for o in outcomes),
        "json": sum(o.case.as_json for o in outcomes),
        "accepted": sum(o.code == 0 for o in outcomes),
        "refused": sum(o.code == 2 for o in outcomes),
        "meets_contract": sum(o.ok for o in outcomes),
        "share_meeting_contract": sum(o.ok for o in outcomes) / len(outcomes),
        "matrix_seconds": round(seconds, 1),
        "per_command": {k: dict(v) for k, v in sorted(per_command.items())},
        "broken": broken,
    }


def time_tests() -> dict:
    timings = {}
    for name, argv in (("fuzz tests", ["tests/test_cli_fuzz.py"]), ("whole suite", [])):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *argv],
            capture_output=True,
            text=True,
            check=False,
            cwd=TESTS.parent,
        )
        summary = (proc.stdout.strip().splitlines() or [""])[-1]
        timings[name] = {"wall_s": round(time.perf_counter() - start, 1), "summary": summary}
    return timings


def markdown(payload: dict) -> str:
    m = payload["machine"]
    f = payload["fuzz"]
    lines = [
        "# CLI fuzz matrix",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, commit {m['git_commit']}, {m['date']}.",
        "Command: `python benchmarks/cli_fuzz.py --with-tests`. Every command of the app; each numeric option with",
        "0, -1, NaN, inf, -inf, 1e30; each path input missing, empty, a folder, random bytes; every refused case again",
        "with `--json`. Contract: exit 0 (a valid value, the command did its job) or exit 2 with one `error:` line",
        "(one JSON object with `--json`), the option named when refused while parsing, no file created or changed;",
        "never another exit code or a traceback.",
        "",
        f"**{f['cases']} cases** ({f['plain']} plain, {f['json']} `--json`): {f['refused']} refused, {f['accepted']}"
        f" accepted; **{f['meets_contract']} meet the contract ({100 * f['share_meeting_contract']:.1f}%)**;"
        f" the matrix ran in {f['matrix_seconds']} s.",
        "",
        "| command | cases | refused (exit 2) | accepted (exit 0) | meet the contract |",
        "|---|---:|---:|---:|---:|",
    ]
    for command, c in f["per_command"].items():
        lines.append(
            f"| `{command}` | {c['cases']} | {c.get('refused (exit 2)', 0)} | {c.get('accepted (exit 0)', 0)} "
            f"| {c['meets contract']} |"
        )
    if f["broken"]:
        lines += ["", "Broken cases:", *(f"- {b['case']}: {'; '.join(b['violations'])}" for b in f["broken"])]
    for name, t in payload.get("tests", {}).items():
        lines += ["", f"{name}: `pytest -q` took {t['wall_s']} s ({t['summary']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-tests", action="store_true", help="Also time the fuzz tests and the whole suite.")
    args = parser.parse_args()
    payload = {"machine": machine(), "fuzz": run()}
    if args.with_tests:
        payload["tests"] = time_tests()
    paths = write_results("cli_fuzz", payload, markdown(payload))
    print(markdown(payload))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
