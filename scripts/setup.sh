#!/usr/bin/env bash
# hdrbench set-up: installs the package with everything it needs, then runs one job.
#
#   bash scripts/setup.sh demo   # install, then run the main job on the embedded `photos` dataset
#   bash scripts/setup.sh test   # install with the test extra, then run the whole test suite
#
# On a machine without torch, the CPU build torch==2.13.0 is installed first: an open-ended `torch`
# requirement would otherwise pull a multi-GB CUDA build. Users with a GPU install their own torch first.
set -euo pipefail
cd "$(dirname "$0")/.."
job="${1:-demo}"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
export OPENCV_IO_ENABLE_OPENEXR=1
case "$job" in
    demo)
        "$PY" -m pip install --quiet -e .
        "$PY" -m hdrbench run --dataset photos --preset demo
        ;;
    test)
        "$PY" -m pip install --quiet -e ".[test]"
        "$PY" -m pytest -q
        ;;
    *)
        echo "usage: bash scripts/setup.sh demo|test" >&2
        exit 2
        ;;
esac
