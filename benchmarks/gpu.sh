#!/usr/bin/env bash
# The GPU checks in one script, under 8 minutes: the CUDA tests, then the scale benchmarks (one
# Hessian-vector product against one gradient, eager and under torch.compile; the Monitor's
# peak memory per tier) on a ResNet-18 and a GPT.
#
#     bash benchmarks/gpu.sh                       # on a CUDA machine, from anywhere
#     DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh    # the same steps as a CPU smoke run
#
# Outputs (one log per step, JSON results, summary.txt) go to ${OUT:-benchmarks/out}.
# The venv is $VENV (default .venv, the Makefile's). It is used as it is when it imports torch,
# pytest and optiscope; otherwise it is built the Makefile's way (torch first, $TORCH, default
# torch==2.13.0, which on a CUDA machine is the CUDA build; then optiscope with that torch kept),
# seeing a torch the machine already has (--system-site-packages) so that an offline machine
# with one downloads nothing. src/ is on PYTHONPATH, so a venv that could not install optiscope
# still runs it. Each step runs under `timeout`, at most what is left of $BUDGET seconds (default
# 470) from the start: a step that fails or runs out is reported and the next one runs; one
# that finds no time left is skipped. Exit status 0 when every step passed, else 1.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "${OUT:-$ROOT/benchmarks/out}"
OUT="$(cd "${OUT:-$ROOT/benchmarks/out}" && pwd)"  # a relative OUT is the caller's
cd "$ROOT"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-}"
BUDGET="${BUDGET:-470}"
PY="$VENV/bin/python"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

ready() { test -x "$PY" && "$PY" -c "import torch, pytest, optiscope" >/dev/null 2>&1; }

setup() {
    if ready; then
        echo "using $VENV: $("$PY" -c 'import torch; print("torch", torch.__version__)')"
        return 0
    fi
    if ! test -x "$PY"; then
        if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
            "$PYTHON" -m venv --system-site-packages "$VENV" || return 1
        else
            "$PYTHON" -m venv "$VENV" || return 1
        fi
    fi
    local pip=("$PY" -m pip install -qq --disable-pip-version-check)
    "$PY" -c "import torch" >/dev/null 2>&1 || "${pip[@]}" "$TORCH" || return 1
    # The torch now there is kept, whatever its build (the README's recipe for another torch).
    "$PY" -c 'import torch; print("torch==" + torch.__version__)' > "$OUT/torch-constraints.txt"
    "${pip[@]}" -c "$OUT/torch-constraints.txt" -e . pytest hypothesis ||
        echo "pip could not install optiscope here (offline?): src/ on PYTHONPATH stands in"
    ready || {
        echo "$VENV cannot import torch, pytest and optiscope's dependencies: install them" \
            "(pip install -c $OUT/torch-constraints.txt -e . pytest), or point VENV at a venv" \
            "that has them"
        return 1
    }
}

if [ "${1:-}" = "--setup" ]; then
    setup
    exit
fi

SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
RESERVE=15  # seconds kept for timeout's kill grace and the summary

# step NAME LIMIT COMMAND...: COMMAND under `timeout`, for LIMIT seconds or what the budget has
# left if less, its output to the terminal and $OUT/NAME.log, its outcome to the summary.
step() {
    local name="$1" limit="$2"
    shift 2
    local left=$((BUDGET - SECONDS - RESERVE))
    if ((left < 20)); then
        echo "$name: skipped, the budget of $BUDGET s is spent" | tee -a "$SUMMARY"
        FAILED=1
        return 1
    fi
    ((limit > left)) && limit=$left
    local start=$SECONDS
    echo "== $name (at most $limit s): $*"
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    local what="passed"
    if ((rc == 124 || rc == 137)); then
        what="ran out of its $limit s"
    elif ((rc != 0)); then
        what="failed (exit $rc)"
    fi
    echo "$name: $what in $((SECONDS - start)) s (log: $OUT/$name.log)" | tee -a "$SUMMARY"
    if ((rc != 0)); then
        FAILED=1
        return 1
    fi
}

finish() {
    echo "== summary ($SECONDS s in all; outputs in $OUT)"
    cat "$SUMMARY"
    exit "$FAILED"
}

step setup 200 bash "${BASH_SOURCE[0]}" --setup || finish
step environment 30 "$PY" - "$DEVICE" <<'PY' || finish
import platform, sys
import torch
device = sys.argv[1]
print(f"python {platform.python_version()}, {platform.platform()}")
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN "
      f"{torch.backends.cudnn.version() if torch.cuda.is_available() else None}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"expected a CUDA device, but torch {torch.__version__} (CUDA build "
                 f"{torch.version.cuda}) sees none. A CPU build of torch in the venv? Point "
                 "VENV at a new folder to build one with the CUDA build; on a machine without "
                 "a GPU, DEVICE=cpu QUICK=1 runs the same steps as a smoke run")
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
PY
command -v nvidia-smi >/dev/null && nvidia-smi >> "$OUT/environment.log" 2>&1

# The test modules that hold CUDA tests, alone: collecting the others would import every
# optional extra they test.
mapfile -t CUDA_TESTS < <(grep -l "pytest.mark.cuda" tests/test_*.py)
if ((${#CUDA_TESTS[@]})); then
    step cuda-tests 90 "$PY" -m pytest -q -m cuda -p no:cacheprovider -rs \
        --junitxml="$OUT/cuda-tests.xml" "${CUDA_TESTS[@]}"
else
    echo "cuda-tests: failed, no test module under tests/ is marked cuda" | tee -a "$SUMMARY"
    FAILED=1
fi

# Batches a GPU works at (the CPU's 32 and 8 leave an H200 waiting on kernel launches).
HVP=(benchmarks/hvp_scale.py --device "$DEVICE" --resnet-batch 128 --gpt-batch 32)
MEMORY=(benchmarks/memory.py --device "$DEVICE")
if [ -n "$QUICK" ]; then
    HVP+=(--quick)
    MEMORY+=(--steps 1 --variants plain,update)
fi
step hvp 90 "$PY" "${HVP[@]}" --json "$OUT/hvp.json"
step memory 150 "$PY" "${MEMORY[@]}" --json "$OUT/memory.json"
# Last: compilation takes the longest and is the least predictable.
step hvp-compiled 240 "$PY" "${HVP[@]}" --compile --compiled-only --json "$OUT/hvp-compiled.json"
finish
