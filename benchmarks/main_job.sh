#!/usr/bin/env bash
# The main job, end to end on what every machine here has (Fashion-MNIST, no network):
#   1. install: Debian's dataset-fashion-mnist, a venv, pip install -e .[dev], and the zoo's staged weights (hub/)
#      mirrored into the Hugging Face cache;
#   2. sweep each architecture's newest staged and registered zoo tag (sct_resnet18, sct_mobilenetv2, sct_resnet50;
#      today .sct3j_fmnist, at 32..96 px) through timm's own pretrained=True path on the test images its card used,
#      beside the card and its dedicated plain models: output/zoo_check/check.md, check.json, one plot per architecture.
# About 11 minutes on 2 CPU cores for the sct3j_fmnist tags (9.8 of sweeps); TEST_SAMPLES=1000 is quicker but then
# checks no card difference.
# Training the zoo again is `python benchmarks/zoo.py && python benchmarks/zoo.py --stage` (resumable; the second
# generation, sct5j_fmnist, about 8 h on 2 cores; `--dry-run` prints its rows). Each architecture is checked at its
# newest staged tag.
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
