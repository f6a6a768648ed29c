"""Random search at equal wall-clock (Li & Talwalkar 2019; NAS-Bench-201's "RS" baseline): sample architectures,
train each briefly with the shared trainer, keep the one with the best validation accuracy.

The images are those a supernet search of the same :class:`~edgenas.search.engine.SearchConfig` sees: the
class-balanced ``train_subset`` split by ``val_fraction`` into a training half (each sampled network trains on it
for ``epochs`` epochs, ``batch_size``, SGD at ``w_lr`` with cosine decay) and a validation half (it is scored on it;
the test split is never looked at); the networks trained are those of ``supernet_options`` when it is set (the
search network of the supernet strategies it is compared with). Sampling stops once ``time_budget_s`` has passed
(at least one network), so a comparison gives random search the wall-clock of the searches it is compared with.
Latency targets are not used: random search here is the accuracy-only baseline.

Run directory: ``evaluated.jsonl`` (one record per trained network: index in the sample order, arch, validation
top-1, seconds), ``cells/N/`` (each network's training run), ``arch.json`` and ``summary.json``. A killed search
continues where it stopped: recorded networks are not trained again, and their seconds count against the budget.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import Subset

from edgenas._random import seeded_torch
from edgenas.errors import SearchError
from edgenas.rundir import write_summary
from edgenas.search.strategy import Strategy, register_strategy
from edgenas.spaces import ArchSpec, SearchSpace, save_specs, spec_from_dict, spec_to_dict
from edgenas.train.data import ImageData

if TYPE_CHECKING:
    from edgenas.search.engine import SearchConfig, Target

#: Networks sampled up front; the budget ends the search long before.
MAX_SAMPLES = 10_000


def validation_view(data: ImageData, config: SearchConfig) -> ImageData:
    """``data`` with the search's training half as its training set and its validation half as its test set."""
    from edgenas.search.engine import search_split

    labels = data.train_labels
    w_idx, a_idx = search_split(labels, config)
    return replace(
        data,
        train=Subset(data.train, w_idx.tolist()),
        test=Subset(data.train, a_idx.tolist()),
        train_labels=labels[w_idx],
        test_labels=labels[a_idx],
    )


def _read_evaluated(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(line) for line in lines if line.strip()]


class RandomSearch(Strategy):
    """Sample, train briefly, keep the best by validation accuracy, until the wall-clock budget is spent."""

    name = "random"
    uses_supernet = False

    def run(
        self,
        space: SearchSpace,
        targets: Sequence[Target],
        data: ImageData,
        config: SearchConfig,
        run: Path,
        *,
        resume: bool = False,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[ArchSpec, dict[str, Any]]:
        """Sample and train until the budget is spent; a run directory with recorded networks always continues
        (``resume`` is implied), and there are no supernet steps to report (``on_step`` is not called)."""
        from edgenas.search.engine import search_network_space
        from edgenas.train import TrainConfig, train

        if config.time_budget_s <= 0:
            raise SearchError("random search needs a wall-clock budget (time_budget_s > 0, --time-budget S)")
        run = Path(run)
        run.mkdir(parents=True, exist_ok=True)
        view = validation_view(data, config)
        log = run / "evaluated.jsonl"
        evaluated = _read_evaluated(log)
        spent = sum(float(e["seconds"]) for e in evaluated)
        candidates = space.sample(seed=config.seed, n=MAX_SAMPLES)
        trained = search_network_space(space, config)  # the supernet searches' network, so the budgets compare
        train_config = TrainConfig(
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.w_lr,
            momentum=config.w_momentum,
            weight_decay=config.w_weight_decay,
            seed=config.seed,
            device=config.device,
            channels_last=config.channels_last,
            log_every=0,
        )
        for i in range(len(evaluated), len(candidates)):
            if evaluated and spent >= config.time_budget_s:
                break
            start = time.perf_counter()
            with seeded_torch(config.seed * 100_003 + i):  # seeded, and the caller's RNG left alone
                model = trained.build(trained.make_spec(list(candidates[i].choices)))
            cell_dir = run / "cells" / str(i)
            shutil.rmtree(cell_dir, ignore_errors=True)  # a network whose training was killed starts again
            result = train(model, view, train_config, cell_dir, spec=candidates[i], input_size=trained.resolution)
            seconds = time.perf_counter() - start
            record = {
                "i": i,
                "arch": str(candidates[i]),
                "arch_spec": spec_to_dict(candidates[i]),
                "val_top1": float(result.final["test_top1"]),
                "seconds": seconds,
            }
            with log.open("a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            evaluated.append(record)
            spent += seconds
        best = max(evaluated, key=lambda e: e["val_top1"])
        arch = spec_from_dict(best["arch_spec"], source=str(log))
        summary = {
            "method": self.name,
            "arch": str(arch),
            "arch_spec": spec_to_dict(arch),
            "targets": [],
            "evaluated": len(evaluated),
            "best_val_top1": best["val_top1"],
            "wall_s_this_session": spent,
        }
        save_specs(run / "arch.json", [arch])
        write_summary(run, summary)
        return arch, summary


register_strategy(RandomSearch())
