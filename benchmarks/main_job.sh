#!/usr/bin/env bash
# The main job, end to end on what every machine here has (Fashion-MNIST, no network):
#   1. install: Debian's dataset-fashion-mnist, a venv, pip install -e .[dev], and the zoo's staged weights (hub/)
#      mirrored into the Hugging Face cache;
#   2. sweep each zoo tag (sct_resnet18, sct_mobilenetv2, sct_resnet50 .sct3j_fmnist) through timm's own
#      pretrained=True path at 32..96 px on the test images its card used, beside the card and the dedicated plain
#      models trained at 64, 48 and 32 px: output/zoo_check/check.md, check.json and one plot per architecture.
# About 11 minutes on 2 CPU cores (9.8 of sweeps); TEST_SAMPLES=1000 is quicker but then checks no card difference.
# Training the zoo again is the one command `python benchmarks/zoo.py && python benchmarks/zoo.py --stage` (~2 h).
# Usage: bash benchmarks/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/install.sh
DEVICE=${DEVICE:-cpu}
# the weights come from the mirrored cache: offline mode skips huggingface_hub's ~25 s of retries per file on a machine
# without network (HF_HUB_OFFLINE=0 lets it look for newer published revisions first)
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
echo "== the zoo through pretrained=True, beside its cards and the dedicated models"
"$PY" benchmarks/zoo.py --check --device "$DEVICE" ${TEST_SAMPLES:+--test-samples "$TEST_SAMPLES"}
echo "== done: output/zoo_check (check.md, accuracy_vs_resolution_<arch>.png)"
