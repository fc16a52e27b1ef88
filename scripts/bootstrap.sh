#!/usr/bin/env bash
# Create (or reuse) the Python environment phonft runs in, idempotently.
#
# - Inside an active virtualenv or conda env ($VIRTUAL_ENV / $CONDA_PREFIX), install there.
# - Otherwise create ./.venv with python3.
# - torch: if the environment already imports torch (CUDA or CPU build), keep it.
#   Otherwise install torch==2.13.0 FIRST, so that nothing later pulls a different
#   (CUDA, multi-GB) build. Override with PHONFT_TORCH_SPEC="torch==X --index-url ...".
# - Then install phonft with its ML, test and workflow extras, every other version pinned by
#   constraints.txt (the tested environment's: `make constraints` regenerates it); pip keeps
#   the torch already present.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" && "${PHONFT_USE_CONDA_ENV:-1}" == "1" ]]; then
  PY="$CONDA_PREFIX/bin/python"
else
  VENV="${PHONFT_VENV:-.venv}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[bootstrap] creating $VENV"
    python3 -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
fi

STAMP="$("$PY" -c 'import sys; print(sys.prefix)')/.phonft-bootstrap"
HASH="$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] && "$PY" -c "import phonft, torch" 2>/dev/null; then
  echo "[bootstrap] environment up to date ($PY)"
  exit 0
fi

"$PY" -m pip install --quiet --upgrade pip
if "$PY" -c "import torch" 2>/dev/null; then
  echo "[bootstrap] keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  echo "[bootstrap] installing ${PHONFT_TORCH_SPEC:-torch==2.13.0} first"
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet ${PHONFT_TORCH_SPEC:-torch==2.13.0}
fi
"$PY" -m pip install --quiet -c constraints.txt -e ".[ml,test,workflow]"
"$PY" -c "import torch, phonft; print('[bootstrap] ready: phonft', phonft.__version__, '| torch', torch.__version__)"
echo "$HASH" > "$STAMP"
