#!/usr/bin/env bash
# Create a separate virtual environment with Matbench Discovery's own kappa code, to check
# phonft's conductivity and SRME against it (scripts/kappa_vs_matbench.py and the live test
# in tests/test_evaluate_kappa.py). It is never phonft's own environment.
#
#   scripts/matbench_env.sh [--venv DIR] [--commit SHA] [--src DIR] [--phono3py SPEC] [--python PY]
#
# --venv DIR    where to create it (default: $PHONFT_MBD_VENV, else
#               ${PHONFT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/phonft}/matbench-venv)
# --commit SHA  install git+https://github.com/janosh/matbench-discovery@SHA with its
#               `phonons` extra (default: the commit below, whose kappa code phonft's
#               golden values were made with)
# --src DIR     install that local source tree instead (with its `phonons` extra), e.g. a
#               checkout of the commit above, or a partial tree rebuilt from it (offline)
# --phono3py SPEC  the phono3py requirement (default: phono3py==3.29.0; see below)
# --python PY   the interpreter that creates the venv (default: python3)
#
# phono3py: the default commit's calculate_conductivity passes
# run_thermal_conductivity(conductivity_type="wigner"), which phono3py 3.29 takes and 3.30
# renamed (transport_type), so 3.29.0, the closest release to 3.30 that runs it, is the
# default; give --phono3py "phono3py==3.30.*" for an upstream commit that uses
# transport_type. pymatviz provides the column names (`pymatviz.enums.Key`).
set -euo pipefail
MBD_COMMIT_DEFAULT=023dca9ae462376355f5a48534366286be3bbdfc
cache_root="${PHONFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phonft}"
VENV="${PHONFT_MBD_VENV:-$cache_root/matbench-venv}"
COMMIT="$MBD_COMMIT_DEFAULT"
SRC=""
PY=python3
PHONO3PY="phono3py==3.29.0"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --commit) COMMIT="$2"; shift 2 ;;
    --src) SRC="$2"; shift 2 ;;
    --phono3py) PHONO3PY="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "matbench_env.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n "$SRC" && ! -f "$SRC/pyproject.toml" && ! -f "$SRC/setup.py" ]]; then
  echo "matbench_env.sh: error: --src $SRC holds no pyproject.toml; give a matbench-discovery source tree" >&2
  exit 2
fi
case "$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/$(basename "$VENV")" in
  */work/main/.venv|"$(pwd)/.venv")
    echo "matbench_env.sh: error: --venv $VENV is phonft's own environment; choose another folder" >&2; exit 2 ;;
esac
"$PY" -m venv "$VENV"
pip_() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pip_ "$PHONO3PY" pymatviz pytest  # pytest: the golden cases live in tests/test_evaluate_kappa.py
if [[ -n "$SRC" ]]; then
  pip_ "$(cd "$SRC" && pwd)[phonons]" "$PHONO3PY"
  echo "matbench-discovery installed from the local tree $SRC"
else
  pip_ "matbench-discovery[phonons] @ git+https://github.com/janosh/matbench-discovery@$COMMIT" "$PHONO3PY"
  echo "matbench-discovery installed from janosh/matbench-discovery@$COMMIT"
fi
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
from matbench_discovery.metrics.phonons import calc_kappa_metrics_from_dfs  # noqa: F401
from matbench_discovery.phonons.thermal_conductivity import calculate_conductivity  # noqa: F401
print("ok:", ", ".join(f"{p} {md.version(p)}" for p in ("matbench-discovery", "phono3py", "phonopy", "pymatviz")))
PY
echo "venv: $VENV  (run: $VENV/bin/python scripts/kappa_vs_matbench.py --help)"
