#!/usr/bin/env bash
# The GPU check (issue 24), in two halves:
#
#   scripts/gpu-check.sh fetch [PYTHON_VERSION]   here: the wheels the GPU machine lacks into .whl/ (ignored by git)
#   scripts/gpu-check.sh run                      there, from the repository root: the CUDA tests and the benchmark
#
# The lent GPU machine (the `device` tool) has Python 3.12 with PyTorch, numpy, pandas, numba and Lightning, no
# network and no MLflow, BentoML or Redis: tests/gpu and benchmarks/gpu.py need only those plus the wheels fetched
# here (orjson, which the service's answers are serialized with; its version is the runtime lock's). One device call:
#
#   run(command="scripts/gpu-check.sh run", carry=[".whl"], timeout_s=540)
#
# It writes gpu.txt (nvidia-smi), tests.txt (pytest), benchmark.txt and gpu.json under $OUT (the device tool's
# folder that comes back), or under /tmp/gpu-check elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(orjson)

fetch() {
    local python=${1:-3.12} pins=()
    for name in "${WHEELS[@]}"; do
        pins+=("$(grep -oE "^$name==[^ ]+" requirements/lock.txt)")
    done
    rm -rf .whl && mkdir -p .whl
    grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${pins[@]}"
    ls .whl
}

run() {
    local out=${OUT:-/tmp/gpu-check} status=0
    mkdir -p "$out"
    local site
    site=$(mktemp -d)
    # the carried wheels, where the Python running the check lacks them (a development install has them already)
    if ! python3 -c 'import orjson' 2>/dev/null; then
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    fi
    export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: none"; } | tee "$out/gpu.txt"
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee -a "$out/gpu.txt"
    # -c /dev/null --noconftest: the project's pytest settings and fixtures need the full development install
    python3 -m pytest -c /dev/null --noconftest -p no:cacheprovider -q -rs tests/gpu 2>&1 | tee "$out/tests.txt" || status=1
    python3 benchmarks/gpu.py --json "$out/gpu.json" "$@" 2>&1 | tee "$out/benchmark.txt" || status=1
    return $status
}

case "${1:-}" in
    fetch) shift; fetch "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
