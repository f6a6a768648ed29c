"""Benchmark tables as referees: NAS-Bench-201 accuracies with HW-NAS-Bench latencies, the oracle at a budget."""

from edgenas.bench.nb201 import LATENCY_COLUMNS, NB201Table, Oracle, in_budget, judge, load_nb201, oracle

__all__ = ["LATENCY_COLUMNS", "NB201Table", "Oracle", "in_budget", "judge", "load_nb201", "oracle"]
