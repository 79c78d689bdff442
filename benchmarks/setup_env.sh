#!/usr/bin/env bash
# Build .bench-venv: optiscope plus the peer packages it is benchmarked against (see
# shared/PEERS.md). Peers never go into the dev venv. Idempotent: re-running only checks.
#
# torch is pinned to the local CPU build first and constrained for everything after: any other
# torch version pulls several GB of CUDA wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${BENCH_VENV:-.bench-venv}"
TORCH="${TORCH:-torch==2.13.0}"
CONSTRAINTS="$ROOT/constraints.txt"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -qq --disable-pip-version-check)
STAMP="$VENV/.bench-installed"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt constraints.txt ] \
    && [ "$STAMP" -nt benchmarks/setup_env.sh ]; then
    exit 0
fi

test -x "$PY" || "$PYTHON" -m venv "$VENV"
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "$TORCH"
"${PIP[@]}" -c "$CONSTRAINTS" -e . scikit-learn threadpoolctl
# Peers at the versions described in shared/PEERS.md. hessian-eigenthings' release is a
# pre-release, so it is named exactly.
"${PIP[@]}" -c "$CONSTRAINTS" PyHessian==0.1 hessian-eigenthings==1.0.0a5 loss-landscapes==3.0.6
# backpack-for-pytorch (and curvlinops through it) requires torchvision, whose wheel cannot load
# against the CPU torch build (`operator torchvision::nms does not exist`); neither package
# imports it. Install their real dependencies, then both packages without dependencies.
"${PIP[@]}" -c "$CONSTRAINTS" "einops>=0.3,<1" "unfoldNd>=0.2,<1" einconv linear_operator \
    opt-einsum tqdm
"${PIP[@]}" -c "$CONSTRAINTS" --no-deps backpack-for-pytorch==1.7.1 curvlinops-for-pytorch==3.0.1
# cockpit-for-pytorch declares backpack-for-pytorch (hence torchvision again): its other
# dependencies first, then cockpit itself without dependencies. It imports pkg_resources, which
# setuptools removed in 81.
"${PIP[@]}" -c "$CONSTRAINTS" "setuptools<81" json-tricks "matplotlib>=3.4" pandas seaborn
"${PIP[@]}" -c "$CONSTRAINTS" --no-deps cockpit-for-pytorch==1.0.2
# A torchvision left by an earlier install would break `import backpack` in some versions.
"$PY" -m pip uninstall -qq -y torchvision 2>/dev/null || true

"$PY" - <<'PY'
import importlib.util
import warnings

# cockpit's `import pkg_resources` warns that it is deprecated: expected, hence setuptools<81.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
names = ["torch", "optiscope", "sklearn", "threadpoolctl", "pyhessian", "hessian_eigenthings"]
names.append("loss_landscapes")
for name in [*names, "curvlinops", "backpack", "cockpit"]:
    importlib.import_module(name)
assert importlib.util.find_spec("torchvision") is None, "torchvision got in: it breaks imports"
PY
touch "$STAMP"
