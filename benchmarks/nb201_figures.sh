#!/bin/bash
# Every figure of benchmarks/results/nb201.md at the budgets it reports (about two hours on 2 CPU cores; a
# finished seed under runs/bench-nb201 is judged again, not searched, so a rerun rebuilds the table in minutes).
# Usage: benchmarks/nb201_figures.sh DATA_DIR   (the folder with cifar10.npz, nb201/ and hwnasbench/)
# The rows of nb201.md dated before the parity study (2026-12-05) ran on the former loop (one weights-only warm-up
# epoch, cosine lrs, epoch-wise alternation, He init, alpha at zeros); the referee's defaults are now NNI's loop
# (edgenas.bench.referee.SEARCH_LOOP), so the commands below give new-loop rows in folders tagged -w0. The parity
# study and the strategies on the new loop: benchmarks/results/nb201_parity.md (last lines of this script).
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
D="--data ${1:?usage: benchmarks/nb201_figures.sh DATA_DIR}"
"$PY" benchmarks/nb201.py unconstrained $D --subset 20000 --epochs 8 --strategies lightnas,gdas --seeds 3
"$PY" benchmarks/nb201.py unconstrained $D --subset 20000 --epochs 1 --strategies random --seeds 3 --time-budget 150
for ALT in epoch batch; do  # weight and architecture steps alternating per epoch (default) or per batch (DARTS)
    "$PY" benchmarks/nb201.py unconstrained $D --subset 5000 --epochs 8 --strategies lightnas,gdas --seeds 3 \
        $([ $ALT = batch ] && echo --alternate batch)
    "$PY" benchmarks/nb201.py unconstrained $D --subset 5000 --epochs 8 --strategies darts --seeds 1 \
        $([ $ALT = batch ] && echo --alternate batch)
done
B="$D --subset 10000 --epochs 8 --column edgegpu --targets 4,5,6"
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3 --no-accuracy
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3 --lambda-p 0
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 1 --lambda-p 100
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 1 --lambda-p 10000
"$PY" benchmarks/nb201.py budget $B --strategies gdas --seeds 1
"$PY" benchmarks/nb201.py budget $D --subset 10000 --epochs 8 --column raspi4 --targets 16,26,39 --strategies lightnas --seeds 1
# Options of the second wave, each beside the default it would replace: a fair warm-up (every op once per warm-up
# step), GDAS' alpha budget (5x DARTS' steps x lr), and DARTS in NAS-Bench-201's own loop (per batch, no warm-up,
# constant alpha lr)
G="--alpha-budget gdas"
"$PY" benchmarks/nb201.py unconstrained $D --subset 5000 --epochs 8 --strategies lightnas,gdas --seeds 3 --fair-warmup
"$PY" benchmarks/nb201.py unconstrained $D --subset 20000 --epochs 8 --strategies lightnas,gdas --seeds 3 $G
"$PY" benchmarks/nb201.py unconstrained $D --subset 20000 --epochs 8 --strategies lightnas,gdas --seeds 3 $G --fair-warmup
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3 --fair-warmup
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3 $G
"$PY" benchmarks/nb201.py budget $B --strategies lightnas --seeds 3 $G --fair-warmup
"$PY" benchmarks/nb201.py unconstrained $D --subset 5000 --epochs 8 --strategies darts --seeds 3 --warmup-epochs 0 \
    --alternate batch --alpha-lr-schedule constant
# NNI's strategies at the 5k-image budget, with NNI_PYTHON=.venv-nni/bin/python (NNI in its own venv, see
# benchmarks/nni_nb201.py; these search again, about 7 minutes):
if [ -n "${NNI_PYTHON:-}" ]; then
    "$NNI_PYTHON" benchmarks/nni_nb201.py $D --strategies proxyless --subset 5000 --epochs 8 --cells-per-stage 1
    "$NNI_PYTHON" benchmarks/nni_nb201.py $D --strategies gumbel --seeds 3 --subset 5000 --epochs 8 --cells-per-stage 1
    "$NNI_PYTHON" benchmarks/nni_nb201.py $D --strategies darts --seeds 5 --subset 5000 --epochs 8 --cells-per-stage 1
fi
# The loop parity study (DARTS on NNI's loop, then each former choice restored alone; 5 seeds, two one-thread
# workers) and every strategy on the loop that won, with random search at equal wall-clock:
"$PY" benchmarks/nb201_parity.py parity $D --seeds 5
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 5 --rows darts,gdas,lightnas,random
# single path at DARTS' wall-clock (24 epochs; 4 fair warm-up + 16) against random search at theirs, SurgeNAS'
# identity once per cell, FBNet at lambda = 0:
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 5 --rows gdas-24ep,lightnas-24ep,random-long
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 5 --rows gdas-fair-warmup,lightnas-fair-warmup
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 5 --rows surgenas-cell
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 3 --rows fbnet
# every finished search's final alpha read by both derivation rules (argmax; DARTS' nonzero), no search:
"$PY" benchmarks/nb201_parity.py derivations $D
# LightNAS under a latency target on the new loop (constant and cosine alpha lr), and each predictor kind's error
# near those targets:
B="$D --subset 10000 --epochs 8 --column edgegpu --targets 4,5,6 --strategies lightnas --seeds 3"
"$PY" benchmarks/nb201.py budget $B
"$PY" benchmarks/nb201.py budget $B --alpha-lr-schedule cosine
"$PY" benchmarks/nb201_predictor_near_t.py $D
# The longer CPU budget (15k images, 10 epochs; about half an hour per seed at one thread): SurgeNAS per cell
"$PY" benchmarks/nb201_parity.py long $D --seeds 3 --workers 1 --rows surgenas-cell-long
# LightNAS under a latency target with the recipe that reached 91 without one (two fair warm-up epochs) and a cosine
# alpha lr, with and without its accuracy term, on edgegpu and one raspi4 target
B="$D --subset 10000 --epochs 8 --strategies lightnas --seeds 3 --warmup-epochs 2 --fair-warmup --alpha-lr-schedule cosine"
for NOCE in "" --no-accuracy; do
    "$PY" benchmarks/nb201.py budget $B --column edgegpu --targets 4,5,6 $NOCE
    "$PY" benchmarks/nb201.py budget $B --column raspi4 --targets 26 $NOCE
done
# LightNAS with the target in its loss against the target in the landing only (alpha for accuracy alone, the closed
# loop on the tables), both landed by the loop, with and without CE; 4 fair warm-up + 16 epochs at the referee's
# alpha lr (the accuracy-only row's settings), 3 seeds
B="$D --subset 5000 --epochs 20 --warmup-epochs 4 --fair-warmup --strategies lightnas --seeds 3 --alpha-lr 0.01875"
for NOCE in "" --no-accuracy; do
    for TERM in "" "--land 12" "--budget-term landing --land 12"; do
        "$PY" benchmarks/nb201.py budget $B --column edgegpu --targets 4,5,6 $TERM $NOCE
        "$PY" benchmarks/nb201.py budget $B --column raspi4 --targets 26 $TERM $NOCE
    done
done
# DARTS with LightNAS' learned multiplier (thesis Table 4.3's "DARTS + our budget"), one seed
"$PY" benchmarks/nb201.py budget $D --strategies darts --targets 4,5 --seeds 1 --subset 5000 --epochs 8
# single-path alpha's entropy: twice the epochs, three times the alpha lr; then every finished search read under T
# and landed by the closed loop (no search)
"$PY" benchmarks/nb201_parity.py strategies $D --seeds 3 --rows lightnas-fair-warmup-40ep,lightnas-fair-warmup-alr3
"$PY" benchmarks/nb201_parity.py derivations $D
