#!/usr/bin/env bash
# Build IBM aihwkit 1.2.0 from its PyPI source into a separate venv, for benchmarks/bench_rram.py.
#
# Why a separate venv: aihwkit is a benchmark peer only (never part of the user's install), its
# build is a few minutes of C++ and it must not touch .venv's pins. Why from source: 1.2.0 ships
# only as an sdist, and the 1.1.0 wheel fails with torch 2.13 ("weights must be a CPU tensor").
# Why --no-build-isolation and --no-deps: an isolated build would fetch an arbitrary (CUDA) torch;
# aihwkit lists torchvision, which does not import beside the CPU torch 2.13.0 build and which
# aihwkit's tiles never use. torch==2.13.0 is pinned explicitly (pip takes the CPU build from disk).
#
# Idempotent: a stamp file records a finished build; rerunning does nothing then.
# usage: bash benchmarks/aihwkit_setup.sh [VENV]   (default .venv-aihwkit in the repository root)
# Needs: python3, g++, cmake, and OpenBLAS headers (installed with apt-get when missing and root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-aihwkit}"
STAMP="$VENV/.aihwkit-1.2.0-built"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
CONSTRAINTS="$ROOT/constraints-dev.txt"

if [ -f "$STAMP" ] && "$PY" -c "import aihwkit.simulator.rpu_base" 2>/dev/null; then
    echo "aihwkit_setup: $VENV already has aihwkit 1.2.0"
    exit 0
fi

if ! [ -f /usr/include/x86_64-linux-gnu/cblas.h ] && ! [ -f /usr/include/cblas.h ] \
    && ! [ -f /usr/include/openblas/cblas.h ] && ! [ -f /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "aihwkit_setup: installing OpenBLAS headers (libopenblas-dev)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libopenblas-dev >/dev/null
    else
        echo "aihwkit_setup: OpenBLAS headers missing; install libopenblas-dev (Debian) first" >&2
        exit 1
    fi
fi

test -x "$PY" || python3 -m venv "$VENV"
# Build tools and aihwkit's runtime dependencies (less torchvision), torch pinned to the CPU build.
"${PIP[@]}" install -q -c "$CONSTRAINTS" torch==2.13.0 numpy scipy requests protobuf \
    setuptools wheel "scikit-build" pybind11 mypy
# cmake: the system's (>= 3.18) is used when present, else the PyPI one.
command -v cmake >/dev/null || "${PIP[@]}" install -q cmake

# aihwkit's build calls mypy's `stubgen` from PATH, and cmake/ninja may come from the venv.
export PATH="$VENV/bin:$PATH"
# Parallel C++ compile; the default of 2 jobs suits the shared 2-core host.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
# The sdist is unpacked under the venv and built in place, so an interrupted build resumes
# (scikit-build keeps its objects in _skbuild/) instead of recompiling from scratch.
SRC="$VENV/src"
if ! [ -f "$SRC/aihwkit-1.2.0/setup.py" ]; then
    mkdir -p "$SRC"
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d "$SRC" aihwkit==1.2.0
    tar -xzf "$SRC/aihwkit-1.2.0.tar.gz" -C "$SRC"
fi
echo "aihwkit_setup: building aihwkit 1.2.0 from source (several minutes)"
"${PIP[@]}" install --no-build-isolation --no-deps -c "$CONSTRAINTS" "$SRC/aihwkit-1.2.0"

"$PY" -c "import torch, aihwkit.simulator.rpu_base as r; print('aihwkit_setup: ok, torch', torch.__version__)"
touch "$STAMP"
