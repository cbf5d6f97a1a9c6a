#!/usr/bin/env bash
# Build aecodec._core with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) into a scratch copy of
# the package, then run the core's tests and an atheris fuzz target against that build.
#
#   fuzz/sanitizers.sh                  # tests + 180 s of fuzz_rans.py
#   FUZZ_SECONDS=600 CORPUS=/tmp/rans-corpus fuzz/sanitizers.sh
#   TARGET=decoder FUZZ_SECONDS=180 CORPUS=/tmp/dec-corpus fuzz/sanitizers.sh   # fuzz_decoder.py
#   TARGET=model_package FUZZ_SECONDS=120 fuzz/sanitizers.sh                    # fuzz_model_package.py
#   SKIP_TESTS=1 ...                    # fuzz only
#
# Any heap/stack overflow, use-after-free or UB aborts the run with a report.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-/tmp/aecodec-asan}"
rm -rf "$OUT" && mkdir -p "$OUT"
cp -r "$REPO/aecodec" "$OUT/"
rm -f "$OUT"/aecodec/_core*.so
SUFFIX="$(python3-config --extension-suffix)"
echo "building sanitized _core into $OUT/aecodec (a minute or two)"
g++ -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -ffp-contract=off -fno-fast-math -std=c++17 -fPIC -shared -fvisibility=hidden \
    $(python3 -m pybind11 --includes) -I"$REPO/csrc" "$REPO"/csrc/*.cpp \
    -o "$OUT/aecodec/_core$SUFFIX"

# libstdc++ preloaded too: python is not a C++ program, and ASan must find the real __cxa_throw
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$OUT"  # so that `import aecodec` finds the sanitized copy first
export PYTHONPATH="$OUT"  # also for the fuzz targets, run as scripts (sys.path[0] is fuzz/)
python3 -c "import aecodec._core as c, sys; assert c.__file__.startswith('$OUT'), c.__file__; print('using', c.__file__)"
[ -n "${SKIP_TESTS:-}" ] || python3 -m pytest -p no:cacheprovider -q "$REPO"/tests/test_core_rans.py "$REPO"/tests/test_core_hyper_synthesis.py \
    "$REPO"/tests/test_core_quantize.py "$REPO"/tests/test_cdf_tables.py
# Coverage feedback is lost under GCC's ASan (atheris warns), so seed it with a corpus grown by an
# unsanitized, coverage-guided run: CORPUS=/path/to/dir (default: $OUT/corpus, empty).
CORPUS="${CORPUS:-$OUT/corpus}"
mkdir -p "$CORPUS"
TARGET="${TARGET:-rans}"
SEEDS=()
[ "$TARGET" = decoder ] && SEEDS=("$REPO/fuzz/corpus/decoder")
python3 "$REPO/fuzz/fuzz_$TARGET.py" -max_total_time="${FUZZ_SECONDS:-180}" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=0 "$CORPUS" "${SEEDS[@]}"
