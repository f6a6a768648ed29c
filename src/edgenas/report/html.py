"""The run report: one static HTML file, self-contained (figures as inline PNG data, inline CSS, no script and no
address outside the page), built from what a run directory holds. Sections whose stage has not finished yet say so,
so the report of an interrupted run shows what it has."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import edgenas.report.figures as figures
from edgenas._io import write_text_atomic
from edgenas.rundir import read_config, read_env

REPORT_FILE = "report.html"
#: A held-out Spearman below this gets a warning in the report: the predictor cannot steer a search near T.
WEAK_SPEARMAN = 0.9
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;
font-size:.9rem}th{background:#f4f4f4}
.ok{color:#1a7f37;font-weight:600}.miss{color:#b42318;font-weight:600}.muted{color:#777}
figure{margin:.8rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;
min-width:12rem}.card b{display:block;font-size:1.3rem}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _figure(png: bytes, name: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure data-figure="{_esc(name)}"><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pending(stage: str) -> str:
    return f'<p class="muted">The {stage} stage has not finished yet.</p>'


def _stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / "run.json"
    listed = json.loads(path.read_text())["stages"] if path.is_file() else []
    return {s["name"]: {**s, "path": run_dir / "stages" / s["dir"]} for s in listed}


def _file(stage: dict[str, Any], name: str) -> Path:
    return stage["path"] / stage["files"][name]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} ms"


def _summary(s: dict[str, dict[str, Any]]) -> str:
    check, search, train = s.get("check"), s.get("search"), s.get("train")
    cards = []
    if search:
        cards.append(("target", _ms(search["target_ms"]), search["target_source"]))
        cards.append(("predicted (found arch)", _ms(search["predicted_ms"]), "calibrated predictor"))
    if check:
        verdict = "met" if check["met"] else "missed"
        cards.append(("measured (deployed)", _ms(check["measured_ms"]), f"{check['error']:+.1%}: target {verdict}"))
        cards.append(("test top-1", f"{check['top1']:.1f}%", f"chance {check['chance_top1']:.0f}%"))
    elif train:
        cards.append(("test top-1 (trained)", f"{train['final']['test_top1']:.1f}%", "before compression"))
    body = "".join(
        f'<div class="card">{_esc(t)}<b>{_esc(v)}</b><span class="muted">{_esc(n)}</span></div>' for t, v, n in cards
    )
    text = ""
    if check:
        status = '<span class="ok">target met</span>' if check["met"] else '<span class="miss">target missed</span>'
        advice = f" {_esc(check['advice'])}" if check.get("advice") else ""
        text = f"<p>{status} within {check['tolerance']:.0%}.{advice}</p>"
        b = check["baseline"]
        if b["random_n"]:
            text += (
                f"<p>Same budget, one-shot top-1 with the supernet's weights: found arch "
                f"{b['found_oneshot_top1']:.1f}% vs {b['random_n']} profiled archs within ±{b['band']:.0%} of "
                f"its latency: median {b['random_median_oneshot_top1']:.1f}%, best "
                f"{b['random_best_oneshot_top1']:.1f}%.</p>"
            )
        t = check.get("trained_baseline") or {}
        if t.get("rows"):
            text += (
                f"<p>Same budget, trained ({t['epochs']} epochs each): found arch {t['found_top1']:.1f}% vs "
                f"{len(t['rows']) - 1} random profiled archs of about its latency: mean {t['random_mean_top1']:.1f}%, "
                f"best {t['random_best_top1']:.1f}%.</p>"
            )
        if check.get("load_warning"):
            text += f'<p class="miss">{_esc(check["load_warning"])}</p>'
    return f'<div class="cards">{body}</div>{text}' if cards else _pending("search")


def _trained_baseline(s: dict[str, dict[str, Any]]) -> str:
    b = s.get("baseline")
    if not b:
        return _pending("baseline")
    if not b["rows"]:
        return f'<p class="muted">No baseline in this run ({_esc(b["reason"])}).</p>'
    rows = [
        (r["role"], r["arch"], _ms(r["measured_ms"]), f"{r['top1']:.2f}%", f"{r.get('top1_std', 0.0):.2f}")
        for r in b["rows"]
    ]
    randoms = sum(r["role"] == "random" for r in b["rows"])
    width = " and MobileNetV2 at the widest multiplier that meets its latency" if b.get("width_top1") else ""
    text = (
        f"<p>The found arch, {randoms} random profiled archs of about its measured latency{width}, measured side by "
        f"side and each trained {b['epochs']} epochs with the same recipe: found {b['found_top1']:.2f}%, random mean "
        f"{b['random_mean_top1']:.2f}%, best {b['random_best_top1']:.2f}%.</p>"
    )
    if b.get("verdict"):
        text += f"<p><b>{_esc(b['verdict'])}</b></p>"
    return (
        text
        + _figure(figures.baseline(b["rows"], b["epochs"]), "baseline", "Same-budget baseline: test top-1")
        + _table(rows, ("role", "arch", "measured latency", "test top-1 (mean)", "std"))
    )


def _predictor(s: dict[str, dict[str, Any]]) -> str:
    p = s.get("predictor")
    if not p:
        return _pending("predictor")
    scatter = json.loads(_file(p, "scatter").read_text())
    sc = p["scores"]
    rows = [(k, f"{sc[k]:.4g}") for k in ("spearman", "kendall_tau", "mape", "rmse", "within_10") if k in sc]
    chosen = ""
    if p.get("chosen_by"):
        listed = ", ".join(f"{k} {v['spearman']:.3f}" for k, v in p["chosen_by"].items())
        chosen = f" Chosen (predictor.kind = auto) by Spearman on a validation split of the fitted archs: {listed}."
    return (
        f"<p>{_esc(p['kind'])} fitted on {p['train']} profiled archs, scored on {p['test']} "
        f"({_esc(p['scored_on'])}).{_esc(chosen)}</p>"
        + _weak_predictor(sc)
        + _table(rows, ("score", "value"))
        + _figure(
            figures.predictor_scatter(scatter["predicted"], scatter["measured"], sc),
            "predictor",
            "Predicted vs measured latency of the held-out archs",
        )
    )


def _levels(s: dict[str, dict[str, Any]]) -> str:
    """The device's level over the profile's sessions and at the later measurements, and what the verdict read."""
    from edgenas.hardware import MeasurementStore

    profile = s.get("profile")
    level = (profile or {}).get("level")
    if not profile:
        return _pending("profile")
    if not level or not level.get("reference"):
        return (
            "<p>This run's profile timed no reference beside its measurements (an older run): its milliseconds are "
            "those of each moment.</p>"
        )
    with MeasurementStore(_file(profile, "store"), create=False) as db:
        levels = [r["level_ms"] for r in db.levels(profile["device"]) if r["reference"] == level["reference"]]
    later = []
    search = (s.get("search") or {}).get("measured", {}).get("levels") or {}
    check = (s.get("check") or {}).get("levels") or {}
    for label, entry in (("search landing", search), ("check", check)):
        if entry.get("level_now_ms"):
            later.append((label, entry["level_now_ms"]))
    text = (
        f"<p>Every measurement session timed the space's reference arch beside what it measured; its latency there is "
        f"the device's level at that moment. {level['sessions']} profile sessions: {_ms(level['min_ms'])} to "
        f"{_ms(level['max_ms'])}, nominal level (median) {_ms(level['nominal_ms'])}. Latencies are read at the nominal "
        "level (ratio to the reference x nominal), so a slow or fast moment does not move a verdict.</p>"
    )
    if check.get("level_now_ms"):
        text += (
            f"<p>The check measured the deployed net at {_ms(check['ms_now'])} with the level at "
            f"{_ms(check['level_now_ms'])}: {_ms(check['nominal_ms'])} at the nominal level (the verdict).</p>"
        )
    if not levels:
        return text
    return text + _figure(figures.device_levels(levels, level["nominal_ms"], later), "levels", "The device's level")


def _weak_predictor(sc: dict[str, Any]) -> str:
    """A warning when the held-out Spearman is below :data:`WEAK_SPEARMAN`, with what to do."""
    if sc.get("spearman", 1.0) >= WEAK_SPEARMAN:
        return ""
    return (
        f'<p class="miss">Held-out Spearman {sc["spearman"]:.2f} &lt; {WEAK_SPEARMAN}: this predictor cannot rank '
        "archs of about the same latency, so it cannot steer the search near T. Profile more archs "
        '(<code>profile.n</code>), spread them over the range (<code>profile.sampling = "cover"</code>), cut the '
        "measurement noise (<code>profile.repeats</code>, nothing else running), or let the run choose the kind "
        '(<code>predictor.kind = "auto"</code>).</p>'
    )


def _search(s: dict[str, dict[str, Any]]) -> str:
    found = s.get("search")
    if not found:
        return _pending("search")
    lines = [json.loads(x) for x in _file(found, "trajectory").read_text().splitlines() if x.strip()]
    rounds = found["measured"]["rounds"]
    rows = [(r["round"], _ms(r.get("predicted")), _ms(r["measured"]), f"{r['error']:+.1%}") for r in rounds]
    return (
        "<p>Found arch: <code>"
        + _esc(found["arch"])
        + "</code></p>"
        + _figure(
            figures.search_trajectory(lines, found["target_ms"], found["feasible_ms"]),
            "trajectory",
            "Search trajectory: predicted latency of the derived arch and lambda per record",
        )
        + f"<p>Measured on the device after the search (round 0) and while landing on T "
        f"({_esc(found['measured'].get('mode', 'correct'))}):</p>"
        + _table(rows, ("round", "predicted", "measured", "vs target"))
    )


def _architecture(run_dir: Path, s: dict[str, dict[str, Any]]) -> str:
    found = s.get("search")
    if not found:
        return _pending("search")
    from edgenas.spaces import load_specs, space_of

    spec = load_specs(_file(found, "arch"))[0]
    space = space_of(spec)
    ops = [space.op_names[c] for c in spec.choices]
    return _figure(
        figures.architecture(ops, space.layer_names(), _layer_widths(space, spec)),
        "architecture",
        f"The found {space.name} architecture, layer by layer",
    )


def _layer_widths(space: Any, spec: Any) -> list[int | None]:
    """Output channels of each searchable layer (None where the layer's module is not found by name)."""
    import torch

    model = space.build(spec).eval()
    modules = dict(model.named_modules())
    widths: dict[str, int] = {}
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: widths.__setitem__(n, o.shape[1]))
        for n in space.layer_names()
        if n in modules
    ]
    with torch.no_grad():
        model(torch.zeros(space.input_shape(1)))
    for h in hooks:
        h.remove()
    return [widths.get(n) for n in space.layer_names()]


def _channels(s: dict[str, dict[str, Any]]) -> str:
    c = s.get("channels")
    if not c:
        return _pending("channels")
    if not c["applied"]:
        reason = _esc(c["reason"]) if "reason" in c else "<code>channels.enabled = false</code>"
        return f"<p>Not applied ({reason}): the found arch is trained as searched.</p>"
    rows = [
        (name, f"{r['fitness']:.4g}", _ms(r["predicted_ms"]), _ms(r["measured_ms"]))
        for name, r in (("unmodified", c["unmodified"]), ("found", c["found"]))
    ]
    sc = c["predictor_scores"]
    return (
        f"<p>{c['candidates']} channel configurations scored by their fitness under T = {_ms(c['target_ms'])} "
        f"(predicted; channel predictor Spearman {sc['spearman']:.3f}, MAPE {sc['mape']:.1f}% on held-out "
        f"configurations). Scales of each layer's hidden channels: <code>{_esc(c['arch'])}</code></p>"
        + _table(rows, ("network", "fitness", "predicted", "measured"))
        + _landing(c.get("landing"))
        + _figure(
            _file(c, "plot").read_bytes(),
            "channels",
            "Fitness vs predicted latency of every channel configuration scored (thesis Fig 4.9)",
        )
    )


def _landing(landing: dict[str, Any] | None) -> str:
    """The closed loop's verdict on an evolved result (absent in runs made before it landed them)."""
    if not landing:
        return ""
    return f"<p>Landed on T measured ({landing['spent']} measurements): {_esc(landing['verdict'])}.</p>"


def _training(s: dict[str, dict[str, Any]]) -> str:
    t = s.get("train")
    if not t:
        return _pending("train")
    epochs = [json.loads(x) for x in _file(t, "metrics").read_text().splitlines() if '"epoch"' in x]
    epochs = [e for e in epochs if e.get("kind", "epoch") == "epoch" and "test_top1" in e]
    f = t["final"]
    text = (
        f"<p>{t['epochs']} epochs: test top-1 {f['test_top1']:.2f}% on {f.get('test_n', '?')} images "
        f"(chance {f['chance_top1']:.0f}%).</p>"
    )
    return text + (
        _figure(figures.training_curve(epochs, f["chance_top1"]), "training", "Test top-1 per epoch") if epochs else ""
    )


def _compression(s: dict[str, dict[str, Any]]) -> str:
    c = s.get("compress")
    if not c:
        return _pending("compress")
    text = f"<p>{'Applied' if c['applied'] else 'Not applied'}: {_esc(c['reason'])}.</p>"
    if c.get("method") == "domino":
        grafted = len(c["paying_blocks"])
        text += (
            f"<p>Domino's search (meta-predicted accuracy under a predicted latency of "
            f"{_ms(c['domino_target_ms'])}) chose mask <code>{_esc(c['mask'])}</code>: {grafted} of {c['blocks']} "
            f"blocks grafted, predicted {_ms(c['predicted_ms'])}; measured speed-up {c['speedup']:.2f}x.</p>"
            + _landing(c.get("landing"))
        )
    if "gains" in c:
        title = f"mask {c.get('mask', 'none')}" + (f", {c['speedup']:.2f}x measured" if "speedup" in c else "")
        text += _figure(
            figures.compression(c["gains"]["gains"], c["paying_blocks"], c["min_gain"], title),
            "domino",
            "Latency saved by collapsing each block alone (grafted blocks in green)",
        )
    if "speedup" in c:
        text += _table(
            [
                ("before", _ms(c["latency_before_ms"]), f"{c['top1_before']:.2f}%"),
                ("after", _ms(c["latency_after_ms"]), f"{c['top1_after']:.2f}%"),
            ],
            ("network", "measured latency", "test top-1"),
        )
    return text


def _pareto(s: dict[str, dict[str, Any]]) -> str:
    found, check = s.get("search"), s.get("check")
    if not found:
        return _pending("search")
    candidates = json.loads(_file(found, "candidates").read_text())
    trained = (check["measured_ms"], check["top1"]) if check else None
    return _figure(
        figures.pareto(candidates, found["target_ms"], trained),
        "pareto",
        "Every candidate measured in the run: one-shot top-1 (supernet weights, BatchNorm re-estimated) vs "
        "measured latency; the deployed network's trained top-1 as a diamond",
    )


def _provenance(run_dir: Path, s: dict[str, dict[str, Any]]) -> str:
    env = read_env(run_dir)
    rows = [(n, st["dir"], f"{st['seconds']:.1f} s", "reused" if st.get("reused") else "ran") for n, st in s.items()]
    config = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").is_file() else ""
    return (
        _table(rows, ("stage", "directory (name-key)", "wall time", "this time"))
        + "<h3>Configuration</h3><pre>"
        + _esc(config or json.dumps(read_config(run_dir), indent=2))
        + "</pre>"
        + "<h3>Environment</h3><pre>"
        + _esc(json.dumps(env, indent=2, sort_keys=True, default=str))
        + "</pre>"
    )


SECTIONS: list[tuple[str, Callable[..., str]]] = [
    ("Summary", lambda run, s: _summary(s)),
    ("Device level (a reference timed beside every measurement)", lambda run, s: _levels(s)),
    ("Latency predictor", lambda run, s: _predictor(s)),
    ("Search", lambda run, s: _search(s)),
    ("Architecture", _architecture),
    ("Channel search (LightNets++)", lambda run, s: _channels(s)),
    ("Training", lambda run, s: _training(s)),
    ("Same-budget baseline: MobileNetV2 and random archs of the same latency", lambda run, s: _trained_baseline(s)),
    ("Compression (Domino grafting)", lambda run, s: _compression(s)),
    ("Accuracy vs latency of every candidate", lambda run, s: _pareto(s)),
    ("Provenance", _provenance),
]


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text."""
    run_dir = Path(run_dir)
    s = _stages(run_dir)
    body = "".join(f"<h2>{_esc(title)}</h2>{section(run_dir, s)}" for title, section in SECTIONS)
    title = f"edgenas run {run_dir.name}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>"
        f'<p class="muted">{len(s)} stage(s) finished; rebuild with <code>edgenas report {_esc(run_dir)}</code>.'
        f"</p>{body}</body></html>\n"
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically) and return its path."""
    path = Path(run_dir) / REPORT_FILE
    write_text_atomic(path, render_report(run_dir))
    return path
