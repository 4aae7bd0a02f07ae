#!/usr/bin/env bash
# Install sct-timm in a fresh virtual environment and run every test: the default suite, the slow tests, and timm's
# own model test suite (tests/test_models.py from the timm sdist we pin) over the sct_* models.
# Usage: bash tests/run.sh            (VENV=path to reuse another venv; SKIP_SLOW=1 for the fast suite only)
set -euo pipefail
cd "$(dirname "$0")/.."
TIMM_VERSION=1.0.31

source .ci/install.sh

echo "== default test suite"
"$PY" -m pytest tests -q -p no:cacheprovider

if [ "${SKIP_SLOW:-0}" != 1 ]; then
    echo "== slow tests"
    "$PY" -m pytest tests -q -p no:cacheprovider -m slow || [ $? -eq 5 ]  # 5: none selected

    echo "== timm ${TIMM_VERSION} tests/test_models.py over sct_* models"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "timm==${TIMM_VERSION}" -d "$work" 2>&1 | grep -v '^WARNING: Location' || true
    tar -xzf "$work/timm-${TIMM_VERSION}.tar.gz" -C "$work" "timm-${TIMM_VERSION}/tests/test_models.py"
    (cd "$work/timm-${TIMM_VERSION}/tests" && \
        "$PY" -m pytest -p sct_timm test_models.py -k sct_ -q -p no:cacheprovider \
        -W ignore::pytest.PytestUnknownMarkWarning)
fi
