"""Compression for a device under a budget: everything that takes a network and makes it cheaper there.

- :mod:`.channels` — LightNets++ channel search (thesis Ch 4, Algorithm 2): per-layer channel scales of a found
  network chosen by evolution with a training-free proxy under a latency predictor.
- :mod:`.domino` and :mod:`.domino_job` — Domino (thesis Ch 5): grafting masks searched with a latency and a
  meta-learned accuracy predictor, then collapsed (the mask space stays registered in :mod:`edgenas.spaces`).
- :mod:`.peers` — the baselines Domino is compared with (the width multiplier, torch-pruning).
- :mod:`.comfort` — Comfort Zone scaling (thesis Sec 3.3.6): the widest network still as fast as the original.

Evolution, shared by the channel search, Domino and the proxy benchmark, is :mod:`edgenas.evolution`.
"""
