#!/usr/bin/env bash
# The edgenas demo: each stage of the pipeline adds its step here as it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGENAS=.venv/bin/edgenas
OUT=runs/demo
mkdir -p "$OUT"

echo "== 1. sample three architectures of the CIFAR MobileNetV2 space"
$EDGENAS arch sample mbv2-cifar --n 3 --seed 0 -o "$OUT/archs.jsonl"

echo "== 2. their cost figures"
$EDGENAS arch show "$OUT/archs.jsonl"

echo "== 3. export the first one to ONNX and verify it with ONNX Runtime"
$EDGENAS arch export "$OUT/archs.jsonl" --index 0 -o "$OUT/arch0.onnx"

echo "== 4. train the first one for one short epoch on the CIFAR-10 sample shipped with edgenas (CPU: about a minute)"
rm -rf "$OUT/train"
$EDGENAS train "$OUT/archs.jsonl" --index 0 --data sample --epochs 1 --batch-size 50 --lr 0.05 -o "$OUT/train"

echo "== 5. evaluate the trained network again from its run directory"
$EDGENAS eval "$OUT/train" --data sample

echo "== 6. measure its latency on this CPU with ONNX Runtime (batch 1, 1 thread)"
$EDGENAS measure "$OUT/archs.jsonl" --runtime ort-cpu --threads 1

echo "== 7. graft every block of the trained network (Domino: inner activations become identities)"
$EDGENAS graft "$OUT/train" --mask all -o "$OUT/grafted.pt"

echo "== 8. collapse each grafted block into one conv, check it is exact, export and verify the ONNX model"
$EDGENAS reparam "$OUT/grafted.pt" --check -o "$OUT/grafted.onnx"

echo "== 9. LightNAS: fit a latency predictor on the 2,000 measurements shipped in benchmarks/results (ort-cpu on"
echo "      the maintainers' 2-core CPU; profile your own device with 'edgenas profile' for real use)"
$EDGENAS predictor fit --table benchmarks/results/mbv2_cifar_ortcpu_latency.csv --space mbv2-cifar \
  --arch-column arch --value-column value --store-device this-cpu --kind lut -o "$OUT/predictor.pt"

# The target is the median latency of the three sampled archs on *this* machine (step 6): CPUs differ by 2x and
# more, so a fixed number of milliseconds can lie outside what this device reaches.
TARGET=$($EDGENAS measure "$OUT/archs.jsonl" --runtime ort-cpu --threads 1 --json | .venv/bin/python -c \
  'import json, statistics, sys; print(round(statistics.median(m["median_ms"] for m in json.load(sys.stdin)["measurements"]), 2))')
echo "== 10. one LightNAS search for a $TARGET ms target (the median of step 6 on this CPU) on the CIFAR-10 sample (tiny"
echo "       budget), with the device in the loop: 4 archs near the target measured first to calibrate the predictor,"
echo "       then up to 2 correction rounds"
rm -rf "$OUT/lightnas"
$EDGENAS search lightnas --space mbv2-cifar --predictor "$OUT/predictor.pt" --target-ms "$TARGET" --data sample \
  --epochs 3 --warmup-epochs 1 --batch-size 50 --alpha-batch-size 10 --alpha-lr 0.01 --subset 500 \
  --runtime ort-cpu --calibrate 4 --correct-rounds 2 -o "$OUT/lightnas"
