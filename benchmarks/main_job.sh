#!/usr/bin/env bash
# The main job, end to end on the data every machine here has (Fashion-MNIST), on whatever device there is:
#   1. install (Debian's dataset-fashion-mnist, a venv, pip install -e .[dev]);
#   2. train sct_resnet18 with S-BN at scales 64, 48 and 32 and size jitter (sct_timm/configs/sct_resnet18_fmnist.yaml);
#   3. train the plain timm resnet18 baseline at 64 only (sct_timm/configs/resnet18_r64_fmnist.yaml), same recipe;
#   4. sweep both over test resolutions 32..64 on the 10,000 test images: accuracy, latency, throughput, GMACs,
#      CSV/JSON/markdown and the two plots, into benchmarks/results/$RESULTS.
# The CPU budget (TRAIN_SAMPLES images x EPOCHS epochs) keeps it to about 50 minutes on 2 cores; raise both on an
# accelerator (DEVICE=cuda). Usage: bash benchmarks/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/install.sh
BIN="$(dirname "$PY")"

TRAIN_SAMPLES=${TRAIN_SAMPLES:-10000}
VAL_SAMPLES=${VAL_SAMPLES:-2000}
EPOCHS=${EPOCHS:-5}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-output/main_job}
RESULTS=${RESULTS:-fmnist_main_job_${DEVICE}}
budget=(--train-num-samples "$TRAIN_SAMPLES" --val-num-samples "$VAL_SAMPLES" --epochs "$EPOCHS" --device "$DEVICE"
        --output "$OUT")

echo "== SCT: sct_resnet18, S-BN, scales 64,48,32, size jitter 0.5"
"$BIN/sct-train" -c sct_timm/configs/sct_resnet18_fmnist.yaml "${budget[@]}" --experiment sct_resnet18
echo "== baseline: resnet18, plain BN, 64 px only"
"$BIN/sct-train" -c sct_timm/configs/resnet18_r64_fmnist.yaml "${budget[@]}" --experiment resnet18_r64

echo "== resolution sweep 32..64"
"$BIN/sct-bench" \
    --model "sct_resnet18=$OUT/sct_resnet18/model_best.pth.tar" --label sct_resnet18_sbn_64_48_32_jitter \
    --model "resnet18=$OUT/resnet18_r64/model_best.pth.tar" --label resnet18_bn_64 \
    --dataset fmnist --resolutions 32,40,48,56,64 --crop-pct 0.875 --interpolation bilinear --device "$DEVICE" \
    --output "benchmarks/results/$RESULTS"
cp "$OUT/sct_resnet18/summary.csv" "benchmarks/results/$RESULTS/train_summary_sct_resnet18.csv"
cp "$OUT/resnet18_r64/summary.csv" "benchmarks/results/$RESULTS/train_summary_resnet18_r64.csv"
echo "== done: benchmarks/results/$RESULTS (results.md, accuracy_vs_resolution.png, accuracy_vs_latency.png)"
