#!/usr/bin/env bash
# Shared set-up of the README's two commands: Debian's Fashion-MNIST files, a venv ($VENV, default .venv) and
# `pip install -e .[dev]`, then the staged zoo weights (hub/) mirrored into the Hugging Face cache (`sct-hub mirror`)
# so `pretrained=True` works with no network. Source it from the repo root; it sets PY to the venv's python.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    echo "== installing Debian's dataset-fashion-mnist"
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$(cd "$VENV" && pwd)/bin/python"
echo "== pip install -e .[dev] into $VENV"
"$PY" -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
"$PY" -c 'import sct_timm, timm; timm.create_model("sct_resnet50"); print("sct_timm", sct_timm.__version__, "timm", timm.__version__)'
if compgen -G 'hub/*/config.json' >/dev/null; then
    echo "== sct-hub mirror: the staged zoo weights into the Hugging Face cache, so pretrained=True loads offline"
    "$(dirname "$PY")/sct-hub" mirror --hub-dir hub
fi
