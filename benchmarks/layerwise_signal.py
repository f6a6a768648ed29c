"""Can the pipeline's accuracy signals rank archs of one latency on the layer-wise space? (issue 29 §1)

From a finished ``edgenas run`` (its profile store, its search and its one-shot candidates): the *pool* is the
profiled archs whose measured latency is within ``--band`` of the found arch's. Every pool arch and the found one is
trained the same way (``--epochs`` on ``--images`` class-balanced CIFAR-10 images, ``--seeds`` seeds), and each
signal's Spearman against the trained top-1 within the pool is reported, with the trained top-1 of the arch each
signal would pick beside the pool's mean (a random pick of that latency):

- ``alpha``: the search's preference, sum over layers of log softmax(alpha) of the arch's op (the found arch is alpha's
  argmax under the budget);
- ``oneshot``: the one-shot top-1 with the supernet's weights (``candidates.json``);
- ``bte`` and ``bte-clamped``: the proxy after ``--proxy-epochs`` epochs on ``--proxy-images`` images (thesis
  Definition 4.1, and the clamped variant).

Usage: ``EDGENAS_DATA=DIR python benchmarks/layerwise_signal.py RUN [--pool 12 --epochs 5 --images 2000 --seeds 1]``
Writes ``benchmarks/results/layerwise_signal.{json,md}``; trainings are kept in ``runs/layerwise-signal`` (a rerun
resumes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import machine, write_results
from scipy.stats import spearmanr

from edgenas._random import seeded_torch
from edgenas.proxies import ProbeSettings, get_proxy, probe_spec, proxy_batches
from edgenas.search.closed_loop import log_preference, searched_alpha
from edgenas.spaces import get_space
from edgenas.train import TrainConfig, load_dataset, train

RUNS = Path(__file__).resolve().parents[1] / "runs" / "layerwise-signal"
SIGNALS = ("alpha", "oneshot", "bte", "bte-clamped")


def _stage(run: Path, name: str) -> Path:
    record = json.loads((run / "run.json").read_text())
    (stage,) = [s for s in record["stages"] if s["name"] == name]
    return run / "stages" / stage["dir"]


def _pool(run: Path, band: float, size: int, seed: int) -> tuple[dict, list[dict]]:
    """The found arch's candidate row and ``size`` seeded profiled archs within ``band`` of its measured latency."""
    rows = json.loads((_stage(run, "search") / "candidates.json").read_text())
    found = next(r for r in rows if r["source"] == "search")
    near = [r for r in rows if r["source"] == "profile" and abs(r["measured_ms"] / found["measured_ms"] - 1) <= band]
    rng = np.random.default_rng(seed)
    return found, [near[i] for i in sorted(rng.permutation(len(near))[:size])]


def _trained(space, spec, data, args, seed: int) -> float:
    """Test top-1 of ``spec`` trained ``args.epochs`` from ``seed`` (kept under :data:`RUNS`: a rerun reads it)."""
    folder = RUNS / f"{spec}-e{args.epochs}-i{args.images}-s{seed}"
    done = folder / "final.json"
    if done.is_file():
        return json.loads(done.read_text())["test_top1"]
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=64,
        lr=0.1,
        seed=seed,
        train_subset=args.images,
        test_subset=args.test_images,
        device="cpu",
        log_every=0,
    )
    with seeded_torch(seed):
        model = space.build(spec)
    resume = (folder / "checkpoints" / "last.pt").is_file()
    result = train(model, data, config, folder, spec=spec, input_size=space.resolution, resume=resume)
    done.write_text(json.dumps(result.final) + "\n")
    return result.final["test_top1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--band", type=float, default=0.05)
    parser.add_argument("--pool", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-images", type=int, default=1024)
    args = parser.parse_args()
    start = time.time()
    config = json.loads((args.run / "config.json").read_text())
    space = get_space(config["space"]["name"], **config["space"]["options"])
    data = load_dataset(None, image_size=space.resolution)
    found, pool = _pool(args.run, args.band, args.pool, seed=0)
    archs = [found, *pool]
    specs = [space.parse(r["arch"]) for r in archs]
    preference = log_preference(searched_alpha(_stage(args.run, "search") / "search"), space)
    batches = proxy_batches(data, args.proxy_images, 64, seed=0)
    settings = ProbeSettings(epochs=args.proxy_epochs)
    signals = {name: [] for name in SIGNALS}
    for row, spec in zip(archs, specs, strict=True):
        signals["alpha"].append(float((space.one_hot(spec) * preference).sum()))
        signals["oneshot"].append(row["oneshot_top1"])
        trace = probe_spec(spec, batches, settings, seed=0)
        for name in ("bte", "bte-clamped"):
            signals[name].append(get_proxy(name).score(trace, args.proxy_epochs).value)
        print(f"signals of {spec}", flush=True)
    top1 = []
    for spec in specs:
        top1.append([_trained(space, spec, data, args, seed) for seed in range(args.seeds)])
        print(f"trained {spec}: {top1[-1]}", flush=True)
    payload = _summarise(archs, signals, top1, args, time.time() - start)
    write_results("layerwise_signal", payload, _markdown(payload))


def _summarise(archs, signals, top1, args, seconds) -> dict:
    mean = [float(np.mean(t)) for t in top1]
    pool_mean = float(np.mean(mean[1:]))
    rows = []
    for name, values in signals.items():
        rho = float(spearmanr(values[1:], mean[1:]).statistic)
        pick = int(np.argmax(values))  # among the found arch and the pool
        rows.append({"signal": name, "spearman_in_pool": rho, "pick": archs[pick]["arch"], "pick_top1": mean[pick]})
    return {
        "machine": machine(),
        "wall_s": seconds,
        "args": {k: str(v) for k, v in vars(args).items()},
        "found": {"arch": archs[0]["arch"], "measured_ms": archs[0]["measured_ms"], "top1": mean[0], "seeds": top1[0]},
        "pool": [
            {"arch": a["arch"], "measured_ms": a["measured_ms"], "top1": m, "seeds": t}
            for a, m, t in zip(archs[1:], mean[1:], top1[1:], strict=True)
        ],
        "pool_mean_top1": pool_mean,
        "pool_std_top1": float(np.std(mean[1:], ddof=1)),
        "signals": {k: v for k, v in signals.items()},
        "rows": rows,
    }


def _markdown(p: dict) -> str:
    a = p["args"]
    lines = [
        "# Accuracy signals on the layer-wise space at one latency (`python benchmarks/layerwise_signal.py`)",
        "",
        f"Machine: {p['machine']['cpu']} ({p['machine']['cpu_count']} cores), {p['wall_s'] / 60:.0f} min. Run "
        f"`{a['run']}`: the found arch ({p['found']['measured_ms']:.3f} ms measured) and {len(p['pool'])} profiled "
        f"archs within ±{float(a['band']):.0%} of its latency, each trained {a['epochs']} epochs on {a['images']} "
        f"class-balanced CIFAR-10 images ({a['seeds']} seed(s); test on {a['test_images']}). BTE after "
        f"{a['proxy_epochs']} epochs on {a['proxy_images']} images.",
        "",
        f"Trained top-1: found {p['found']['top1']:.2f}%; pool mean {p['pool_mean_top1']:.2f}% ± "
        f"{p['pool_std_top1']:.2f} (std over its archs).",
        "",
        "| signal | Spearman vs trained top-1 within the pool | its pick (found arch or pool) | pick's trained top-1 |",
        "|---|---|---|---|",
    ]
    for r in p["rows"]:
        lines.append(f"| {r['signal']} | {r['spearman_in_pool']:+.2f} | `{r['pick']}` | {r['pick_top1']:.2f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
