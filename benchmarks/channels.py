"""LightNets++ channel search on this CPU (thesis Sec 4.3.5, Algorithm 2), CPU-sized.

The base network is the LightNAS-derived ``mbv2-cifar`` (width 0.5) arch of the demo (benchmarks/results/demo.json).

1. Sample efficiency of its channel predictor: N random channel configurations measured with ONNX Runtime (batch 1,
   one thread); MLP predictors fitted on the first n of a fixed training part, scored on a fixed held-out part.
2. Algorithm 2 with T = the unmodified net's measured latency (the LightNAS net sits on its target), the predicted
   latency within +-2% of T, BTE after 3 epochs as fitness, a CPU-sized evolution.
3. The found configuration, the unmodified net and the uniform width multiplier whose measured latency is nearest the
   found one's, measured round-robin, then each trained with the same short recipe: BTE and test accuracy of each.

Usage: ``EDGENAS_DATA=DIR python benchmarks/channels.py [--sampling cover|uniform]`` (runs alone: it measures
latency). ``uniform`` draws the profiled configurations as the thesis does and adds the sample-efficiency curve;
``cover`` (an option of ``edgenas channels``) spreads half of them over the predicted latency range. Resumable
through ``runs/bench-channels[-cover]``. Writes ``benchmarks/results/channels_SAMPLING.{json,md}`` and
``channels_SAMPLING_search.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, write_results
from _common import sample_efficiency as fitted_curve

from edgenas._random import seeded_torch
from edgenas.compress.channels import SAMPLINGS, ChannelSearchConfig, channel_search, fit_channel_predictor
from edgenas.evolution import EvolutionConfig
from edgenas.hardware import MeasurementStore, RuntimeOptions
from edgenas.hardware.device import LocalDevice
from edgenas.hardware.measure import measure_modules, profile
from edgenas.hardware.runtimes import get_runtime
from edgenas.predictors import table_from_store
from edgenas.proxies import ProbeSettings, get_proxy, probe_spec, proxy_batches
from edgenas.spaces import get_space, space_of
from edgenas.spaces.channels import SCALES, channel_space
from edgenas.train import TrainConfig, load_dataset, train

RUNS_ROOT = Path(__file__).resolve().parents[1] / "runs"
ARCH = "k5e3-k3e3-k5e3-skip-k3e6-k5e6-k7e3-k7e3-k7e6-k3e6-k3e6-k3e3-k7e3-k3e6-k3e6-k3e6-k5e3-skip-k5e6-skip-k7e3"
WIDTH = 0.5
#: Channel configurations measured; the last HELD_OUT (random) ones score the predictors.
PROFILED, HELD_OUT = 300, 60
SAMPLE_SIZES = (25, 50, 100, 150, 240)
#: The search: thesis settings but a smaller evolution and probe (a BTE probe of this net costs ~20 s here).
SEARCH = ChannelSearchConfig(
    target_ms=1.0,  # replaced by the measured T
    constraint="eq",
    tolerance=0.02,
    epochs=3,
    images=1280,
    batch_size=64,
    evolution=EvolutionConfig(population=10, iterations=5, top_k=5, seed=0),
)
WIDTHS = (0.375, 0.4375, 0.5, 0.5625, 0.625)
#: The short training every compared network gets (same recipe, data and seed).
TRAIN = TrainConfig(epochs=8, batch_size=64, lr=0.1, train_subset=4000, test_subset=2000, log_every=0, seed=0)
LOADS = 3


def _measure(nets: dict[str, object], runtime) -> dict[str, float]:
    """Median over LOADS round-robin sessions of each net's median latency (ms)."""
    names = list(nets)
    runs = [measure_modules([space_of(nets[n]).build(nets[n]) for n in names], runtime) for _ in range(LOADS)]
    return {n: float(np.median([r[i].median_ms for r in runs])) for i, n in enumerate(names)}


def sample_efficiency(space, runtime, runs: Path) -> tuple[list[dict], object]:
    anchors = list(dict.fromkeys([space.unscaled, *(space.uniform(s) for s in SCALES)]))
    specs = anchors + space.sample(seed=0, n=PROFILED - len(anchors))
    with MeasurementStore(runs / "store.sqlite") as db:
        report = profile(
            specs,
            runtime,
            db,
            device_name="here",
            on_progress=lambda d, t, *_: print(f"profiled {d}/{t}", flush=True) if d % 25 == 0 else None,
        )
    table = table_from_store(runs / "store.sqlite", report.device, space)
    return fitted_curve(table, specs, HELD_OUT, SAMPLE_SIZES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampling", choices=SAMPLINGS, default="cover")
    sampling = parser.parse_args().sampling
    start = time.time()
    RUNS = RUNS_ROOT / ("bench-channels" if sampling == "uniform" else f"bench-channels-{sampling}")
    RUNS.mkdir(parents=True, exist_ok=True)
    base = get_space("mbv2-cifar", width=WIDTH).parse(ARCH)
    space = channel_space(base)
    runtime = get_runtime("ort-cpu", RuntimeOptions(batch=1, resolution=32, threads=1))
    if sampling == "uniform":
        curve, predictor = sample_efficiency(space, runtime, RUNS)
    else:
        curve = []
        device = LocalDevice(runtime, runtime.options)
        predictor = fit_channel_predictor(
            space, device, RUNS / "store.sqlite", PROFILED, sampling=sampling, device_name="here"
        )

    target_file = RUNS / "target.json"  # measured once: a rerun replays the same search
    if not target_file.is_file():
        target_file.write_text(json.dumps(_measure({"unmodified": space.unscaled}, runtime)["unmodified"]))
    target = float(json.loads(target_file.read_text()))
    config = ChannelSearchConfig(**{**SEARCH.__dict__, "target_ms": target})
    data = load_dataset(None, image_size=32)
    summary = channel_search(
        base,
        predictor,
        data,
        RUNS / "search",
        config,
        on_generation=lambda g, best: print(f"generation {g}: best BTE {best.fitness:.4g}", flush=True),
    )
    shutil.copyfile(RUNS / "search" / "channels.png", RESULTS / f"channels_{sampling}_search.png")
    found = space.parse(summary["found"]["channels"])

    widths = {w: get_space("mbv2-cifar", width=w).parse(ARCH) for w in WIDTHS}
    measured = _measure(
        {"found": found, "unmodified": space.unscaled, **{f"width {w}": s for w, s in widths.items()}}, runtime
    )
    nearest = min(WIDTHS, key=lambda w: abs(measured[f"width {w}"] / measured["found"] - 1))
    compared = {"found": found, "unmodified": space.unscaled}
    if nearest != WIDTH:
        compared[f"width {nearest}"] = widths[nearest]
    batches = proxy_batches(data, config.images, config.batch_size, seed=config.evolution.seed)
    bte = get_proxy("bte")
    results = {}
    for name, spec in compared.items():
        trace = probe_spec(spec, batches, ProbeSettings(epochs=3, jacobian=False), seed=config.evolution.seed)
        # one training per arch, shared by both samplings (the unmodified net is trained once)
        digest = hashlib.sha256(str(spec).encode()).hexdigest()[:10]
        run = RUNS_ROOT / "bench-channels-train" / f"{name.replace(' ', '-')}-{digest}"
        done = run / "model.pt"
        if done.is_file():
            final = json.loads((run / "final.json").read_text())
        else:
            if run.exists():
                shutil.rmtree(run)
            with seeded_torch(TRAIN.seed):  # the same initialisation seed for every network
                model = space_of(spec).build(spec)
            final = train(model, data, TRAIN, run, spec=spec).final
            (run / "final.json").write_text(json.dumps(final))
        results[name] = {
            "arch": str(spec),
            "measured_ms": measured[name],
            # T is the unmodified net's latency: compared within the same round-robin session (a shared CPU drifts
            # between sessions minutes apart)
            "error_vs_target": measured[name] / measured["unmodified"] - 1,
            "bte": bte.score(trace).value,
            "test_top1": final.get("test_top1"),
        }
        print(name, results[name], flush=True)
    payload = {
        "sampling": sampling,
        "predictor_test": predictor.meta.scores["test"],
        "machine": machine(),
        "wall_s": time.time() - start,
        "base": {"space": "mbv2-cifar", "width": WIDTH, "arch": ARCH},
        "target_ms": target,
        "sample_efficiency": curve,
        "search": {k: summary[k] for k in ("found", "unmodified", "candidates", "config")},
        "widths_ms": {w: measured[f"width {w}"] for w in WIDTHS},
        "nearest_width": nearest,
        "compared": results,
        "train": TRAIN.__dict__,
    }
    write_results(f"channels_{sampling}", payload, _markdown(payload))


def _markdown(p: dict) -> str:
    s = p["search"]["config"]
    lines = [
        f"# LightNets++ channel search on this CPU (`python benchmarks/channels.py --sampling {p['sampling']}`)",
        "",
        f"Machine: {p['machine']['cpu']} ({p['machine']['cpu_count']} cores), {p['wall_s'] / 60:.0f} min; ort-cpu, "
        f"batch 1, one thread. Base: the demo's LightNAS arch, `mbv2-cifar` width {WIDTH}; T = its measured latency "
        f"here, {p['target_ms']:.3f} ms before the search (the search's constraint); the table's \"vs T\" compares "
        "with the unmodified net measured in the same round-robin session as the others.",
        "",
        f"## Channel predictor (MLP): {PROFILED} configurations measured, drawn `{p['sampling']}` after the 7 anchors "
        "(the unmodified net and each uniform scale)",
        "",
        "| fitted on | held out | Spearman | MAPE % | within 5% | within 10% |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['n_train']} | {r['n_test']} random | {r['spearman']:.3f} | {r['mape']:.2f} | {r['within_5']:.0f}% | "
            f"{r['within_10']:.0f}% |"
            for r in p["sample_efficiency"]
        ),
        f"| 80% | 20% of the profile | {p['predictor_test']['spearman']:.3f} | {p['predictor_test']['mape']:.2f} | "
        f"{p['predictor_test']['within_5']:.0f}% | {p['predictor_test']['within_10']:.0f}% |"
        if not p["sample_efficiency"]
        else "",
        "",
        f"## Algorithm 2: predicted latency within ±{s['tolerance']:.0%} of T, fitness BTE ({s['epochs']} epochs on "
        f"{s['images']} images), population {s['evolution']['population']}, {s['evolution']['iterations']} "
        f"generations, top {s['evolution']['top_k']} ({p['search']['candidates']} configurations probed)",
        "",
        f"Each net then trained {p['train']['epochs']} epochs on {p['train']['train_subset']} CIFAR-10 images (batch "
        f"{p['train']['batch_size']}, lr {p['train']['lr']}, augmentation), tested on {p['train']['test_subset']}.",
        "",
        "| network | measured ms | vs T | BTE (3 ep) | test top-1 % |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['measured_ms']:.3f} | {r['error_vs_target']:+.1%} | {r['bte']:.4f} | {r['test_top1']:.2f} |"
            for name, r in p["compared"].items()
        ),
        "",
        "Uniform width multipliers of the base arch, measured (ms): "
        + ", ".join(f"x{w}: {ms:.3f}" for w, ms in p["widths_ms"].items())
        + f"; nearest the found configuration: x{p['nearest_width']}.",
        "",
        f"Found scales: `{p['search']['found']['channels']}`",
        "",
        f"![fitness vs predicted latency](channels_{p['sampling']}_search.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
