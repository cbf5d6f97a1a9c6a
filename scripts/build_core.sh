#!/usr/bin/env bash
# Build the aecodec package, native core included, with a chosen compiler into a directory outside
# the checkout (which keeps its own, GCC-built, _core), e.g. for CI's clang check:
#
#   scripts/build_core.sh clang /tmp/aecodec-clang
#   cd /tmp/aecodec-clang && PYTHONPATH=$PWD AECODEC_EXPECT_CORE_COMPILER=clang \
#       python3 -m pytest /path/to/checkout/tests/test_core_hyper_synthesis.py ...
#
# OUTDIR then holds an importable `aecodec` (Python sources, models, _core). Compile flags are
# setup.py's (-O3 -ffp-contract=off -fno-fast-math for both compilers).
set -euo pipefail
usage="usage: $0 gcc|clang OUTDIR"
family=${1:?$usage}
out=${2:?$usage}
case "$family" in
    gcc) cc=gcc cxx=g++ ;;
    clang) cc=clang cxx=clang++ ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
work="$out.build"  # objects and egg-info: nothing is written into the checkout
rm -rf "$out" "$work"
mkdir -p "$work"
CC=$cc CXX=$cxx python3 setup.py -q egg_info --egg-base "$work" \
    build --build-base "$work" --build-lib "$out" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
ls "$out"/aecodec/_core.*
