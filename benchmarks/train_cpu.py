"""Training figures on this machine's CPU for a reference ``mbv2-cifar`` arch (all layers k3e6, MobileNetV2-like).

Usage:
    python benchmarks/train_cpu.py throughput [--steps 10] [--batch 64]
    python benchmarks/train_cpu.py budget --data DIR [--epochs 5] [--subset 10000] [--test-subset 2000]

``throughput``: images/s of full training steps (forward, backward, SGD update) with and without channels_last,
interleaved step by step so machine drift hits both alike; median and inter-quartile range over the timed steps.
``budget``: trains the arch with ``edgenas.train`` for a CPU-session budget (default 5 epochs on a class-balanced
10k subset of CIFAR-10, evaluated on a balanced 2k test subset) and records the measured epoch times, top-1 and the
time one epoch of the full 50k training set takes at the measured rate.
Both write ``results/train_cpu.json`` (each phase keeps the other's last result) and ``results/train_cpu.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import RESULTS, machine, write_results

from edgenas.spaces import get_space
from edgenas.train import BatchTransform, TrainConfig, load_cifar10, train

REFERENCE = ["k3e6"] * 21


def reference_net():
    space = get_space("mbv2-cifar")
    spec = space.make_spec(REFERENCE)
    torch.manual_seed(0)
    return space, spec, space.build(spec)


def throughput(steps: int, batch: int) -> dict:
    data = load_cifar10("sample")
    images = torch.stack([data.train[i][0] for i in range(batch)])
    labels = torch.as_tensor(data.train_labels[:batch])
    indices = torch.arange(batch)
    runs = {}
    for fmt in ("contiguous", "channels_last"):
        _, _, net = reference_net()
        cl = fmt == "channels_last"
        if cl:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        tf = BatchTransform(data.mean, data.std, augment=True, crop_padding=4, channels_last=cl)
        runs[fmt] = (net, opt, tf)

    def step(fmt: str) -> float:
        net, opt, tf = runs[fmt]
        start = time.perf_counter()
        x = tf(images, indices, seed=0, epoch=0)
        loss = F.cross_entropy(net(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {fmt: [] for fmt in runs}
    for _ in range(3):  # warm-up
        for fmt in runs:
            step(fmt)
    for _ in range(steps):
        for fmt in runs:
            times[fmt].append(step(fmt))
    out = {"batch": batch, "steps": steps, "torch_threads": torch.get_num_threads()}
    for fmt, ts in times.items():
        rates = sorted(batch / t for t in ts)
        q = statistics.quantiles(rates, n=4)
        out[fmt] = {"median_img_s": round(statistics.median(rates), 2), "iqr_img_s": round(q[2] - q[0], 2)}
    out["channels_last_speedup"] = round(out["channels_last"]["median_img_s"] / out["contiguous"]["median_img_s"], 3)
    return out


def budget(data_dir: str, epochs: int, subset: int, test_subset: int, batch: int, lr: float) -> dict:
    data = load_cifar10(data_dir)
    space, spec, net = reference_net()
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        train_subset=subset,
        test_subset=test_subset,
        warmup_epochs=0.5,
        log_every=0,
        seed=0,
    )
    run_dir = Path("runs") / f"bench-train-cpu-{int(time.time())}"
    start = time.perf_counter()
    result = train(net, data, config, run_dir, spec=spec, input_size=space.resolution)
    wall = time.perf_counter() - start
    epochs_rec = [
        {
            k: r[k]
            for k in ("epoch", "train_loss", "train_top1", "test_top1", "test_top5", "epoch_time_s", "images_per_s")
        }
        for r in result.history
    ]
    rate = statistics.median(r["images_per_s"] for r in result.history)
    return {
        "arch": str(spec),
        "data": data.describe(),
        "config": {
            "epochs": epochs,
            "subset": subset,
            "test_subset": test_subset,
            "batch_size": batch,
            "lr": lr,
            "warmup_epochs": 0.5,
            "channels_last": True,
        },
        "epochs": epochs_rec,
        "final_test_top1": result.final["test_top1"],
        "final_test_top5": result.final["test_top5"],
        "wall_s": round(wall, 1),
        "median_train_img_s": rate,
        "full_train_set_epoch_s_at_measured_rate": round(len(data.train) / rate, 1),
    }


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Training on the CPU (reference mbv2-cifar arch: all 21 layers k3e6, width 1.0, 32x32)",
        "",
        f"Machine: {m['cpu']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch threads), torch {m['torch']}; "
        f"commit {m['git_commit']}, {m['date']}.",
        "",
    ]
    t = payload.get("throughput")
    if t:
        lines += [
            "## Training throughput (`python benchmarks/train_cpu.py throughput`)",
            "",
            f"Full SGD steps at batch {t['batch']}, {t['steps']} timed steps per format, interleaved.",
            "",
            "| memory format | median img/s | IQR img/s |",
            "|---|---|---|",
        ]
        for fmt in ("contiguous", "channels_last"):
            lines.append(f"| {fmt} | {t[fmt]['median_img_s']} | {t[fmt]['iqr_img_s']} |")
        lines += ["", f"channels_last / contiguous: {t['channels_last_speedup']}x", ""]
    b = payload.get("budget")
    if b:
        c = b["config"]
        lines += [
            f"## Budget run (`python benchmarks/train_cpu.py budget --data DIR --epochs {c['epochs']} "
            f"--subset {c['subset']}`)",
            "",
            f"{c['epochs']} epochs on a class-balanced {c['subset']}-image subset of {b['data']['name']} "
            f"({b['data']['source']}), batch {c['batch_size']}, lr {c['lr']} cosine, warm-up "
            f"{c['warmup_epochs']} epoch, channels_last; test on a balanced {c['test_subset']}-image subset.",
            "",
            "| epoch | train loss | train top-1 | test top-1 | test top-5 | epoch time (s) | img/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in b["epochs"]:
            lines.append(
                f"| {r['epoch']} | {r['train_loss']:.3f} | {r['train_top1']:.1f} | {r['test_top1']:.2f} | "
                f"{r['test_top5']:.2f} | {r['epoch_time_s']:.0f} | {r['images_per_s']:.1f} |"
            )
        lines += [
            "",
            f"Final test top-1 {b['final_test_top1']:.2f}% (top-5 {b['final_test_top5']:.2f}%), wall "
            f"{b['wall_s']:.0f} s. One epoch of the full 50,000-image training set takes "
            f"{b['full_train_set_epoch_s_at_measured_rate']:.0f} s at the measured median rate of "
            f"{b['median_train_img_s']:.1f} img/s (the training part of an epoch, without evaluation).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p = sub.add_parser("budget")
    p.add_argument("--data", default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--subset", type=int, default=10000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()
    path = RESULTS / "train_cpu.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    payload["machine"] = machine()
    if args.phase == "throughput":
        payload["throughput"] = throughput(args.steps, args.batch)
    else:
        payload["budget"] = budget(args.data, args.epochs, args.subset, args.test_subset, args.batch, args.lr)
    md = markdown(payload)
    write_results("train_cpu", payload, md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
