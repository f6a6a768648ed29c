"""SurgeNAS' figures (thesis Ch 3) at a CPU budget: memory, NAS-Bench-201 ablations, the beta trade-off, scaling.

Usage:
    python benchmarks/surgenas.py nb201 --data DIR [--seeds 3] [--subset 5000] [--epochs 8] [--forms 0,1,2]
    python benchmarks/surgenas.py memory
    python benchmarks/surgenas.py beta [--betas 0,0.1,0.3]
    python benchmarks/surgenas.py scale [--betas 0,0.1,0.3]   (the beta phase's middle network)
    python benchmarks/surgenas.py report      (rewrite benchmarks/results/surgenas.md from the JSON)

``nb201``: SurgeNAS through the NAS-Bench-201 referee (:func:`edgenas.bench.referee.search_and_judge`, beta = 0 as
thesis Sec 3.4.3.3) with the referee's budget, in three forms: as the thesis describes it (ordered paths, identity
mapping phi 2 -> 0), without the identity mapping (phi = 0), and with the paths drawn independently (with
replacement) instead of in order; the found cell's true 200-epoch CIFAR-10 test accuracy and the share of skip and
none among its six edges (the skip collapse of thesis Fig 3.13). Runs under ``runs/bench-surgenas`` (a finished seed
is judged again, not searched). DIR is the data folder with cifar10.npz, nb201/ and hwnasbench/.

``memory``: activation memory of one SurgeNAS step vs one multi-path step and the largest standalone network.
``beta``: the trade-off of thesis Fig 3.15 on ``mbv2-cifar`` with a GNN fitted on archs drawn by ordered sampling and
measured on this machine (profiled into ``runs/bench-surgenas/store.db``; resumable), next to LightNAS and random
profiled archs at the same measured latency. ``scale``: ``edgenas scale`` on the beta phase's middle network with
this CPU's runtimes. Run ``beta`` and ``scale`` on a quiet machine (they measure latency).
Results merge into ``benchmarks/results/surgenas.{json,md}`` by phase.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import RESULTS, machine, write_results

RUNS = Path(__file__).resolve().parents[1] / "runs" / "bench-surgenas"
#: The NAS-Bench-201 forms compared: label -> SearchConfig options on top of the referee's.
NB201_FORMS: dict[str, dict[str, Any]] = {
    "SurgeNAS (ordered, identity mapping)": {},
    "without identity mapping": {"identity_phi": 0.0},
    "independent paths instead of ordered": {"path_sampling": "independent"},
}
#: The cell ops counted as collapse (parameter-free edges).
FREE_OPS = ("skip_connect", "none")


def _load() -> dict[str, Any]:
    path = RESULTS / "surgenas.json"
    return json.loads(path.read_text()) if path.is_file() else {"phases": {}}


def _save(payload: dict[str, Any]) -> None:
    payload["machine"] = machine()
    write_results("surgenas", payload, markdown(payload))


def _free_share(cell: str) -> float:
    """Share of the six edges of a NAS-Bench-201 cell string that are skip or none."""
    ops = [edge.split("~")[0] for node in cell.split("+") for edge in node.strip("|").split("|") if edge]
    return sum(op in FREE_OPS for op in ops) / len(ops)


def nb201(args: argparse.Namespace) -> dict[str, Any]:
    from edgenas.bench import load_nb201
    from edgenas.bench.referee import Budget, search_and_judge
    from edgenas.train import load_dataset

    table = load_nb201(args.data)
    data = load_dataset(str(args.data), image_size=32)
    budget = Budget(subset=args.subset, epochs=args.epochs, warmup_epochs=args.warmup_epochs)
    tag = f"s{args.subset}-e{args.epochs}-w{args.warmup_epochs}"
    rows = []
    for i, (label, options) in enumerate(NB201_FORMS.items()):
        if args.forms is not None and i not in args.forms:
            continue
        records = []
        for seed in range(args.seeds):
            run = RUNS / f"nb201-form{i}-{tag}" / f"seed{seed}"
            record = search_and_judge(table, "surgenas", seed, data, budget, run, options=options)
            record["free_share"] = _free_share(record["arch"])
            records.append(record)
            print(f"{label} seed {seed}: {record['test_acc']:.2f}% {record['arch']}", flush=True)
        shutil.copyfile(
            RUNS / f"nb201-form{i}-{tag}" / "seed0" / "alpha.png", RESULTS / f"surgenas_nb201_alpha_{i}.png"
        )
        accs = [r["test_acc"] for r in records]
        rows.append(
            {
                "label": label,
                "options": options,
                "test_acc_mean": statistics.fmean(accs),
                "test_acc_std": statistics.pstdev(accs),
                "free_share_mean": statistics.fmean(r["free_share"] for r in records),
                "search_s_mean": statistics.fmean(r["search_s"] for r in records),
                "records": records,
            }
        )
    return {
        "budget": {"subset": args.subset, "epochs": args.epochs, "warmup_epochs": args.warmup_epochs, "batch": 64},
        "all_cells_mean_test_acc": float(table.test_acc.mean()),
        "best_test_acc": float(table.test_acc.max()),
        "rows": rows,
    }


def _nb201_markdown(phase: dict[str, Any]) -> list[str]:
    b = phase["budget"]
    lines = [
        "## NAS-Bench-201 (beta = 0), through the referee",
        "",
        f"Budget: {b['subset']} class-balanced CIFAR-10 training images (one level: all of them train w and alpha), "
        f"{b['epochs']} epochs ({b['warmup_epochs']} weights-only), batch {b['batch']}, the referee's optimisers "
        "(SGD 0.025 cosine; alpha Adam at the referee's scaled lr) with SurgeNAS' own settings (temperature from 1, "
        "grad clip 5, phi 2 -> 0); searched network 1 cell per stage, judged in the tables' 5-cell network. "
        f"Mean of all 15,625 cells {phase['all_cells_mean_test_acc']:.2f}%, best {phase['best_test_acc']:.2f}%; "
        "thesis Table 3.3: SurgeNAS 93.7 (full protocol on a GPU).",
        "",
        "| form | test acc. (%) | skip/none share of edges | search (s) | cells |",
        "|---|---|---|---|---|",
    ]
    for row in phase["rows"]:
        cells = ", ".join(str(r["index"]) for r in row["records"])
        lines.append(
            f"| {row['label']} | {row['test_acc_mean']:.2f} ± {row['test_acc_std']:.2f} | "
            f"{row['free_share_mean']:.2f} | {row['search_s_mean']:.0f} | {cells} |"
        )
    for label, acc in _referee_peers(phase["budget"]):
        lines.append(f"| {label} (`results/nb201.md`, same budget, two levels) | {acc} | | | |")
    lines += [
        "",
        "A cell whose every path to the output runs through `none` scores 10% (chance). The identity mapping adds "
        "phi x to every candidate of every edge, `none` included, so during the search a `none` edge passes its "
        "input on like a skip while the computing ops' straight-through gradients, <grad, O_k(x)>, push their "
        "logits down (the zero op's is 0); as phi reaches 0 the chosen `none` edges disconnect the cell. The "
        "layer-wise spaces have no zero op (their skip keeps the signal), which is where the thesis applies it. "
        "(Our reading of the per-edge softmax over the search: `surgenas_nb201_alpha_0.png` with the identity "
        "mapping, `_1` without, seed 0; each form's `none` share grows from the first search steps.)",
    ]
    return [*lines, ""]


def _referee_peers(budget: dict[str, Any]) -> list[tuple[str, str]]:
    """The other strategies' rows of ``results/nb201.json`` at this budget (the referee's unconstrained phase)."""
    path = RESULTS / "nb201.json"
    key = f"unconstrained s{budget['subset']}-e{budget['epochs']}-n1"
    if budget["warmup_epochs"] != 1 or not path.is_file():
        return []
    rows = json.loads(path.read_text())["phases"].get(key, [])
    return [
        (r["label"], f"{r['summary']['test_acc']['mean']:.2f} ± {r['summary']['test_acc']['std']:.2f}") for r in rows
    ]


def _saved_bytes(step: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors one forward pass saves for its backward (its activation memory), then the
    backward of the loss ``step`` returns."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return sum(seen.values())


def _largest_arch(space: Any) -> Any:
    """The arch of the most multiply-adds per layer (the largest op every layer allows, by op order of the space)."""
    from edgenas.nn.costs import measure_costs

    def cost(spec: Any) -> float:
        return measure_costs(space.build(spec), (1, 3, space.resolution, space.resolution)).mult_adds

    choices = [
        max(ops, key=lambda k, layer=layer: _layer_cost(space, cost, layer, k))
        for layer, ops in enumerate(space.allowed_ops)
    ]
    return space.make_spec(choices)


def _layer_cost(space: Any, cost: Callable[[Any], float], layer: int, op: int) -> float:
    base = [ops[0] for ops in space.allowed_ops]
    base[layer] = op
    return cost(space.make_spec(base))


def _memory_case(space_name: str, options: dict[str, Any], batch: int) -> dict[str, Any]:
    """Activation memory of one SurgeNAS step (peak over its ordered paths), one multi-path step and one training
    step of the largest standalone network of the space, on one batch."""
    import torch.nn.functional as F

    from edgenas.search.supernet import Supernet
    from edgenas.spaces import get_space

    space = get_space(space_name, **options)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, space.resolution, space.resolution, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)
    supernet = Supernet(space, seed=0).train()
    paths, chosen = [], []
    for _ in supernet.ordered_paths(step=0, tau=1.0):
        paths.append(_saved_bytes(lambda: F.cross_entropy(supernet(x), y)))
        chosen.append(list(supernet.state.chosen))
    peak_path = space.make_spec(chosen[paths.index(max(paths))])
    peak_net = space.build(peak_path).train()
    peak_standalone = _saved_bytes(lambda: F.cross_entropy(peak_net(x), y))
    supernet.sample_multi_path(step=0, tau=1.0)
    multi = _saved_bytes(lambda: F.cross_entropy(supernet(x), y))
    largest = _largest_arch(space)
    net = space.build(largest).train()
    standalone = _saved_bytes(lambda: F.cross_entropy(net(x), y))
    mib = 2**20
    return {
        "space": space_name,
        "options": options,
        "batch": batch,
        "paths": len(paths),
        "surgenas_peak_MiB": max(paths) / mib,
        "surgenas_total_if_kept_MiB": sum(paths) / mib,
        "multi_path_MiB": multi / mib,
        "standalone_largest_MiB": standalone / mib,
        "largest_arch": str(largest),
        "ratio_to_standalone": max(paths) / standalone,
        "multi_ratio_to_standalone": multi / standalone,
        "peak_path": str(peak_path),
        "peak_path_standalone_MiB": peak_standalone / mib,
    }


MEMORY_CASES = (("mbv2-cifar", {}, 64), ("nb201", {"cells_per_stage": 1}, 64))


def memory(args: argparse.Namespace) -> dict[str, Any]:
    return {"cases": [_memory_case(name, options, batch) for name, options, batch in MEMORY_CASES]}


def _memory_markdown(phase: dict[str, Any]) -> list[str]:
    lines = [
        "## Memory per iteration",
        "",
        "Activation memory: bytes of the distinct tensors a forward pass saves for its backward (what training "
        "holds at its peak beyond the weights and their gradients), on one batch. SurgeNAS runs its paths one after "
        "the other, so its peak is its largest path's; a multi-path step (FBNet, DARTS) holds every op's. Goal: "
        "SurgeNAS <= 1.1x one training step of the largest standalone network.",
        "",
        "| space (batch) | SurgeNAS peak (MiB) | largest standalone (MiB) | SurgeNAS / standalone | multi-path (MiB) | "
        "multi-path / standalone | paths, all kept at once (MiB) | SurgeNAS' peak path trained alone (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in phase["cases"]:
        lines.append(
            f"| {c['space']} {c['options'] or ''} ({c['batch']}) | {c['surgenas_peak_MiB']:.1f} | "
            f"{c['standalone_largest_MiB']:.1f} | {c['ratio_to_standalone']:.2f}x | {c['multi_path_MiB']:.1f} | "
            f"{c['multi_ratio_to_standalone']:.2f}x | {c['paths']}: {c['surgenas_total_if_kept_MiB']:.1f} | "
            f"{c['peak_path_standalone_MiB']:.1f} |"
        )
    lines += [
        "",
        "Beyond the standalone network, a differentiable path keeps each layer's op output for alpha's gradient "
        "(sum(grad * output), the straight-through estimator); the last column is the peak path's own network "
        "trained alone, so the difference is that overhead.",
    ]
    return [*lines, ""]


#: The beta figure's budget: the shipped sample, 500 images, 5 epochs, batch 50 (a SurgeNAS step runs 7 paths, so
#: a search costs 7 single-path searches); alpha Adam 1e-2 constant, since the thesis' 7.5e-4 over the 30 alpha
#: steps would leave alpha where it started.
BETA_SEARCH: dict[str, Any] = {"epochs": 5, "batch_size": 50, "train_subset": 500, "device": "cpu"}
BETA_ALPHA_LR = 1e-2
PROFILED = 500  # archs of the predictor's data, drawn by ordered sampling (thesis Sec 3.3.5)
LOADS, PASSES = 3, 3  # every latency: median over PASSES passes over all archs, each the median of LOADS loads
RANDOM_PEERS = 2  # profiled archs of the found net's measured latency (within PEER_BAND), trained the same way
PEER_BAND = 0.03


def _runtime() -> Any:
    from edgenas.hardware import RuntimeOptions, get_runtime

    return get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1))


def _profiled() -> Any:
    """PROFILED ordered-sampled archs measured on this machine into ``RUNS/store.db`` (resumable), as a table."""
    from edgenas.hardware import MeasurementStore, Protocol, profile
    from edgenas.search.coverage import stored_table

    rt = _runtime()
    RUNS.mkdir(parents=True, exist_ok=True)
    with MeasurementStore(RUNS / "store.db") as db:
        specs = _space().sample(seed=0, n=PROFILED, ordered=True)
        report = profile(specs, rt, db, protocol=Protocol(warmup=5, repeats=20))
        return stored_table(db, report.device, _space(), rt)


def _predictor(table: Any) -> Any:
    """The GNN (the thesis' predictor) fitted on ``table`` (saved; loaded when it exists)."""
    from edgenas.predictors import FitConfig, Predictor, fit_predictor

    path = RUNS / f"gnn_{PROFILED}.pt"
    if path.is_file():
        return Predictor.load(path)
    predictor = fit_predictor("gnn", table, FitConfig(seed=0))
    predictor.save(path)
    return predictor


def _measure(specs: list[Any]) -> list[float]:
    import numpy as np

    from edgenas.hardware.measure import median_latency_ms

    rt = _runtime()
    passes = np.array([[median_latency_ms(s, rt, LOADS) for s in specs] for _ in range(PASSES)])
    return np.median(passes, axis=0).tolist()


def _accuracy(spec: Any, data: Any, run: Path) -> float:
    """Top-1 (%) on the sample's 500 test images after 2 epochs on its 1,000 training images (reused if done)."""
    from edgenas.spaces import space_of
    from edgenas.train import TrainConfig, train

    done = run / "result.json"
    if done.is_file() and json.loads(done.read_text())["arch"] == str(spec):
        return float(json.loads(done.read_text())["top1"])
    if run.exists():
        shutil.rmtree(run)
    config = TrainConfig(epochs=2, batch_size=50, lr=0.05, train_subset=1000, device="cpu", log_every=0)
    result = train(space_of(spec).build(spec), data, config, run, spec=spec, input_size=32)
    top1 = float(result.final["test_top1"])
    done.write_text(json.dumps({"arch": str(spec), "top1": top1}) + "\n")
    return top1


def _search(name: str, method: str, targets: list[Any], data: Any, **options: Any) -> Any:
    from dataclasses import replace

    from edgenas.search.engine import SearchConfig, search
    from edgenas.search.surgenas import surgenas_config
    from edgenas.spaces import get_space, load_specs

    run = RUNS / name
    if (run / "summary.json").is_file() and _same_targets(run, targets):
        return load_specs(run / "arch.json")[0], json.loads((run / "summary.json").read_text())
    if run.exists():
        shutil.rmtree(run)
    config = SearchConfig(**BETA_SEARCH)
    if method == "surgenas":
        config = replace(surgenas_config(config), alpha_lr=BETA_ALPHA_LR, **options)
    else:
        config = replace(config, warmup_epochs=2, alpha_batch_size=10, val_fraction=0.4, alpha_lr=BETA_ALPHA_LR)
    result = search(get_space("mbv2-cifar"), targets, data, config, run)
    return result.arch, result.summary


def _same_targets(run: Path, targets: list[Any]) -> bool:
    """Whether the finished search in ``run`` aimed at ``targets``' values (a cached search is reused only then)."""
    saved = json.loads((run / "config.json").read_text())["targets"]
    return [t["value"] for t in saved] == [t.value for t in targets]


def _measure_once(specs: list[Any]) -> list[float]:
    """:func:`_measure` of the specs not measured before (``RUNS/measured.json``), so a rerun of the phase aims its
    LightNAS searches at the same values and reuses them."""
    path = RUNS / "measured.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    missing = [s for s in specs if str(s) not in known]
    known.update(zip([str(s) for s in missing], _measure(missing) if missing else [], strict=True))
    path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    return [known[str(s)] for s in specs]


def beta(args: argparse.Namespace) -> dict[str, Any]:
    from edgenas.search.budget import feasible_range
    from edgenas.search.engine import Target
    from edgenas.train import load_dataset

    data = load_dataset("sample", image_size=32)
    profiled = _profiled()
    predictor = _predictor(profiled)
    found = {}
    for b in args.betas:
        found[b] = _search(f"beta_{b:g}", "surgenas", [Target(predictor, None)], data, beta=b)[0]
    surge_ms = dict(zip(found, _measure_once(list(found.values())), strict=True))
    rng = feasible_range(predictor, _space())
    lightnas, aimed = {}, {}
    for b, ms in surge_ms.items():
        # the SurgeNAS net's measured latency, or where the predictor puts it when the measurement lies outside the
        # predictor's range (the same place in the predictor's eyes, which is all a LightNAS search can aim at)
        aimed[b] = ms if rng.low < ms < rng.high else float(predictor.predict(found[b]))
        if rng.low < aimed[b] < rng.high:
            name = f"lightnas_at_beta_{b:g}" + ("" if aimed[b] == ms else "_predicted")
            lightnas[b] = _search(name, "lightnas", [Target(predictor, aimed[b])], data)[0]
    light_ms = dict(zip(lightnas, _measure_once(list(lightnas.values())), strict=True))
    rows = []
    for b, spec in found.items():
        row = {
            "beta": b,
            "arch": str(spec),
            "predicted_ms": float(predictor.predict(spec)),
            "measured_ms": surge_ms[b],
            "top1": _accuracy(spec, data, RUNS / f"train_beta_{b:g}"),
            "peers": _random_peers(profiled, surge_ms[b], data),
        }
        if b in lightnas:
            row["lightnas"] = {
                "target_ms": aimed[b],
                "target_is_measured": aimed[b] == surge_ms[b],
                "arch": str(lightnas[b]),
                "measured_ms": light_ms[b],
                "top1": _accuracy(lightnas[b], data, RUNS / f"train_lightnas_{b:g}"),
            }
        rows.append(row)
        print(f"beta {b:g}: {row['measured_ms']:.3f} ms, top-1 {row['top1']:.1f}%", flush=True)
    return {"search": BETA_SEARCH | {"alpha_lr": BETA_ALPHA_LR}, "profiled": PROFILED, "rows": rows}


def _space() -> Any:
    from edgenas.spaces import get_space

    return get_space("mbv2-cifar")


def _random_peers(profiled: Any, ms: float, data: Any) -> dict[str, Any]:
    """Profiled archs (drawn before any search) whose stored latency is within PEER_BAND of ``ms``: the first
    RANDOM_PEERS of them trained the same way; their mean top-1 is the random baseline at that latency."""
    near = [i for i, v in enumerate(profiled.values) if abs(v / ms - 1) <= PEER_BAND]
    tops = [_accuracy(profiled.specs[i], data, RUNS / f"train_peer_{i}") for i in near[:RANDOM_PEERS]]
    return {"near": len(near), "trained": len(tops), "top1_mean": sum(tops) / len(tops) if tops else None}


def scale(args: argparse.Namespace) -> dict[str, Any]:
    """Comfort Zone scaling (``edgenas scale``) of the beta figure's middle network on this CPU's runtimes."""
    from edgenas.compress.comfort import scale_up
    from edgenas.hardware import Protocol, RuntimeOptions, get_runtime
    from edgenas.hardware.device import LocalDevice
    from edgenas.spaces import load_specs

    betas = sorted(float(b) for b in args.betas)
    middle = betas[len(betas) // 2]
    spec = load_specs(RUNS / f"beta_{middle:g}" / "arch.json")[0]
    out = {"arch": str(spec), "beta": middle, "runtimes": {}}
    for name in ("ort-cpu", "torch-cpu"):
        rt = get_runtime(name, RuntimeOptions(batch=1, resolution=32, threads=1))
        report = scale_up(spec, LocalDevice(rt, rt.options, Protocol(warmup=10, repeats=30)))
        out["runtimes"][name] = {"scale": report.scale, "band": report.band, "steps": report.steps}
        print(f"scale on {name}: kept x{report.scale:g}", flush=True)
    return out


def _beta_markdown(phase: dict[str, Any]) -> list[str]:
    s = phase["search"]
    lines = [
        "## beta trade-off on mbv2-cifar (thesis Fig 3.15)",
        "",
        f"Predictor: GNN fitted on {phase['profiled']} `mbv2-cifar` archs drawn by ordered sampling and measured on "
        "this machine (ort-cpu, batch 1, 1 thread). Search: the shipped CIFAR-10 sample, "
        f"{s['train_subset']} images, {s['epochs']} epochs (2 weights-only), batch {s['batch_size']}, alpha "
        f"Adam {s['alpha_lr']:g} constant; LightNAS at the same budget (60/40 split, alpha batch 10) with the "
        "SurgeNAS net's measured latency as its target. Accuracy: 2 epochs on the sample's 1,000 images, top-1 on the "
        "sample's 500 test images (a smoke-level figure, noisy by a few points). Random: profiled archs within "
        f"±{PEER_BAND:.0%} of the SurgeNAS net's measured latency, trained the same way. Latency: median of "
        f"{PASSES} passes x {LOADS} loads.",
        "",
        "| beta (1/ms) | predicted (ms) | measured (ms) | top-1 (%) | LightNAS @ that latency: measured (ms), top-1 | "
        "random archs at that latency: top-1 (n near) |",
        "|---|---|---|---|---|---|",
    ]
    for r in phase["rows"]:
        light = r.get("lightnas")
        light_cell = "outside the predictor's range"
        if light:
            aim = "" if light.get("target_is_measured", True) else f" (aimed at the predicted {light['target_ms']:.3f})"
            light_cell = f"{light['measured_ms']:.3f}, {light['top1']:.1f}{aim}"
        peers = r["peers"]
        peer_cell = f"{peers['top1_mean']:.1f} ({peers['near']})" if peers["top1_mean"] is not None else "none near"
        lines.append(
            f"| {r['beta']:g} | {r['predicted_ms']:.3f} | {r['measured_ms']:.3f} | {r['top1']:.1f} | {light_cell} | "
            f"{peer_cell} |"
        )
    lines += [
        "",
        "A measured latency below the predictor's range (its training archs, drawn with every op equally often, "
        "never skip most layers) cannot be a LightNAS target: LightNAS then aims at the SurgeNAS net's predicted "
        "latency, the same place in the predictor's eyes. Two epochs favour small networks, so the top-1 column "
        "ranks what trains fastest, not what would be most accurate after a full training.",
    ]
    return [*lines, ""]


def _scale_markdown(phase: dict[str, Any]) -> list[str]:
    lines = [
        "## Comfort Zone scaling of a found network (`edgenas scale`)",
        "",
        f"The beta = {phase['beta']:g} network, widened by 0.25 at a time, each step measured with the original "
        "(interleaved, 10 warm-up + 30 timed runs); kept: the widest within the noise band.",
        "",
        "| runtime | steps (scale: latency ratio) | kept scale |",
        "|---|---|---|",
    ]
    for name, r in phase["runtimes"].items():
        steps = ", ".join(f"{st['scale']:g}: {st['ratio']:.2f}x" for st in r["steps"])
        lines.append(f"| {name} | {steps} | {r['scale']:g} (band +{r['band']:.0%}) |")
    return [*lines, "", "No GPU was lent to this task: the GPU side of the figure was not measured.", ""]


MARKDOWN = {"nb201": _nb201_markdown, "memory": _memory_markdown, "beta": _beta_markdown, "scale": _scale_markdown}


def markdown(payload: dict[str, Any]) -> str:
    m = payload.get("machine", {})
    lines = [
        "# SurgeNAS (thesis Ch 3)",
        "",
        f"Machine: {m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores), torch {m.get('torch', '?')}, "
        f"commit {m.get('git_commit', '?')}, {m.get('date', '?')}. Rerun: `python benchmarks/surgenas.py PHASE`.",
        "",
    ]
    for name, phase in payload["phases"].items():
        lines += MARKDOWN[name](phase)
    return "\n".join(lines) + "\n"


PHASES = {"nb201": nb201, "memory": memory, "beta": beta, "scale": scale}
NEEDS_DATA = ("nb201",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=[*PHASES, "report"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--forms", type=lambda t: [int(v) for v in t.split(",")], default=None)
    parser.add_argument("--betas", type=lambda t: [float(v) for v in t.split(",")], default=[0.0, 0.1, 0.3])
    args = parser.parse_args()
    payload = _load()
    if args.phase != "report":
        if args.data is None and args.phase in NEEDS_DATA:
            sys.exit("--data DIR is needed")
        payload["phases"][args.phase] = PHASES[args.phase](args)
    _save(payload)
    print((RESULTS / "surgenas.md").read_text())


if __name__ == "__main__":
    main()
