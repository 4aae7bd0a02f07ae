#!/usr/bin/env bash
# Install sct-timm and run every test at the newest timm pip picks and at the lowest pyproject.toml allows: the default
# suite (with the flag parity test against timm's own train.py parser), the slow tests, and timm's own model test suite
# (tests/test_models.py from the timm sdist) over the sct_* models.
# Usage: bash tests/run.sh
#   VENV=path      the main venv (default .venv), upgraded to the newest timm in range
#   VENV_LOW=path  the lowest-timm venv (default .venv-timm-low), made on first use
#   SKIP_SLOW=1    no slow tests and no timm model tests;  SKIP_LOW=1  no lowest-timm pass
#   TIMM_TRAIN_PY  a timm train.py for the flag parity test (default: its committed snapshot,
#                  tests/timm_train_flags.json)
set -euo pipefail
cd "$(dirname "$0")/.."
TIMM_RANGE=$(sed -n 's/^ *"timm\(>=[0-9.]*,<[0-9.]*\)",*$/\1/p' pyproject.toml)
TIMM_LOW=${TIMM_RANGE#>=}; TIMM_LOW=${TIMM_LOW%%,*}
[ -n "$TIMM_LOW" ] || { echo "tests/run.sh: no timm>=X,<Y range in pyproject.toml" >&2; exit 1; }
PIP_QUIET=(-q --disable-pip-version-check)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

source .ci/install.sh
# the zoo's weights load from the cache install.sh mirrored (timm's own tests load every pretrained tag); offline
# mode skips huggingface_hub's retries of a Hub this machine cannot reach
export HF_HUB_OFFLINE=1
echo "== newest timm in $TIMM_RANGE"
"$PY" -m pip install "${PIP_QUIET[@]}" -U "timm${TIMM_RANGE}" 2>&1 | grep -v '^WARNING: Location' || true
timm_version() { "$1" -c 'import timm; print(timm.__version__)'; }
TIMM_HIGH=$(timm_version "$PY")

# timm's TorchScript tests script the default model, which for the zoo architectures is the zoo's close scale set
# (64, 48, 32: its S-BN layers share the stem's scale decision, which TorchScript cannot script); `sct-export` traces
# those models instead (README, "Export")
TIMM_UNSUPPORTED='torchscript and (sct_resnet or sct_mobilenetv2)'
timm_model_tests() {  # $1: python, $2: timm version
    "$1" -m pip download "${PIP_QUIET[@]}" --no-deps --no-binary :all: "timm==$2" -d "$work/sdist-$2" 2>&1 \
        | grep -v '^WARNING: Location' || true
    tar -xzf "$work/sdist-$2/timm-$2.tar.gz" -C "$work" "timm-$2/tests/test_models.py"
    (cd "$work/timm-$2/tests" && \
        "$1" -m pytest -p sct_timm test_models.py -k "sct_ and not ($TIMM_UNSUPPORTED)" -q -p no:cacheprovider \
        -W ignore::pytest.PytestUnknownMarkWarning)
}

echo "== default test suite, timm $TIMM_HIGH"
"$PY" -m pytest tests -q -p no:cacheprovider

if [ "${SKIP_SLOW:-0}" != 1 ]; then
    echo "== slow tests, timm $TIMM_HIGH"
    "$PY" -m pytest tests -q -p no:cacheprovider -m slow || [ $? -eq 5 ]  # 5: none selected
    echo "== timm $TIMM_HIGH tests/test_models.py over sct_* models"
    timm_model_tests "$PY" "$TIMM_HIGH"
fi

if [ "${SKIP_LOW:-0}" = 1 ]; then
    echo "== lowest timm ($TIMM_LOW) pass skipped (SKIP_LOW=1)"
elif [ "$TIMM_LOW" = "$TIMM_HIGH" ]; then
    echo "== lowest timm $TIMM_LOW is the newest: tested above"
else
    VENV_LOW=${VENV_LOW:-.venv-timm-low}
    [ -x "$VENV_LOW/bin/python" ] || python3 -m venv "$VENV_LOW"
    PY_LOW="$(cd "$VENV_LOW" && pwd)/bin/python"
    echo "== pip install -e .[dev] timm==$TIMM_LOW into $VENV_LOW"
    "$PY_LOW" -m pip install "${PIP_QUIET[@]}" -e '.[dev]' "timm==$TIMM_LOW" 2>&1 | grep -v '^WARNING: Location' || true
    echo "== default test suite, timm $(timm_version "$PY_LOW")"
    "$PY_LOW" -m pytest tests -q -p no:cacheprovider
    if [ "${SKIP_SLOW:-0}" != 1 ]; then
        echo "== timm $TIMM_LOW tests/test_models.py over sct_* models"
        timm_model_tests "$PY_LOW" "$TIMM_LOW"
    fi
fi
