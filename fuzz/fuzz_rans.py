"""atheris fuzz target for aecodec._core's rANS coder (and the table validation).

Each input is split by a FuzzedDataProvider into: a table set (valid or deliberately invalid
CDFs), a lane count, symbols/indexes, and a mode:

- round trip: encode arbitrary int32 symbols (any value, escapes included) and decode them back;
  the result must be identical;
- hostile decode: decode (a) the raw remaining bytes or (b) a valid stream after truncation, bit
  flips or byte overwrites chosen by the input; the call must return an int32 array of the right
  shape or raise ValueError — never crash, hang or touch memory out of bounds (run it against the
  AddressSanitizer build, see fuzz/README.md, to check the last part).

Run:  python fuzz/fuzz_rans.py -max_total_time=300 [corpus_dir]
"""

from __future__ import annotations

import sys

import atheris
import numpy as np

from aecodec import _core

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


@atheris.instrument_func
def make_tables(fdp: atheris.FuzzedDataProvider):
    precision = fdp.ConsumeIntInRange(1, 16)
    total = 1 << precision
    n_tables = fdp.ConsumeIntInRange(1, 4)
    rows = []
    for _ in range(n_tables):
        nbins = fdp.ConsumeIntInRange(1, min(total, 40))
        # nbins positive frequencies summing to total
        cuts = (
            sorted({fdp.ConsumeIntInRange(1, total - 1) for _ in range(nbins - 1)})
            if total > 1
            else []
        )
        rows.append(np.array([0, *cuts, total], dtype=np.uint32))
    width = max(len(r) for r in rows) + fdp.ConsumeIntInRange(0, 2)
    cdf = np.full((n_tables, width), total, dtype=np.uint32)
    for t, r in enumerate(rows):
        cdf[t, : len(r)] = r
    cdf_len = np.array([len(r) for r in rows], dtype=np.int32)
    offset = np.array(
        [min(fdp.ConsumeIntInRange(I32_MIN, I32_MAX), I32_MAX - (len(r) - 2) + 1) for r in rows],
        dtype=np.int32,
    )
    if fdp.ConsumeIntInRange(0, 15) == 0:  # occasionally break a table: must be a ValueError
        t = fdp.ConsumeIntInRange(0, n_tables - 1)
        k = fdp.ConsumeIntInRange(0, width - 1)
        cdf[t, k] = fdp.ConsumeIntInRange(0, 2**32 - 1)
    return cdf, cdf_len, offset, precision


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cdf, cdf_len, offset, precision = make_tables(fdp)
    try:
        tables = _core.RansTables(cdf, cdf_len, offset, precision)
    except ValueError:
        return
    n = fdp.ConsumeIntInRange(0, 3000)
    indexes = np.array(
        [fdp.ConsumeIntInRange(0, len(cdf_len) - 1) for _ in range(min(n, 64))], dtype=np.int32
    )
    indexes = np.resize(indexes, n).astype(np.int32) if n else np.zeros(0, np.int32)
    mode = fdp.ConsumeIntInRange(0, 3)
    lanes = [0, 1, 2, 4, 8, 16, 32][fdp.ConsumeIntInRange(0, 6)]
    if mode == 0:  # hostile bytes straight from the input
        stream = fdp.ConsumeBytes(fdp.remaining_bytes())
        check_decode(tables, stream, indexes)
        return
    raw = fdp.ConsumeBytes(4 * min(n, 256))
    base = np.frombuffer(raw + bytes(-len(raw) % 4), dtype=np.int32)
    symbols = np.resize(base, n).astype(np.int32) if len(base) else np.zeros(n, np.int32)
    if fdp.ConsumeBool():  # mostly in-support symbols: deeper into the table lookups
        symbols = (offset[indexes].astype(np.int64) + (symbols.astype(np.int64) % 7)).clip(
            I32_MIN, I32_MAX
        )
        symbols = symbols.astype(np.int32)
    stream = tables.encode(symbols, indexes, lanes=lanes)
    if mode == 1:
        out = tables.decode(stream, indexes)
        if not np.array_equal(out, symbols):
            raise AssertionError("round trip mismatch")
        return
    bad = bytearray(stream)
    if mode == 2 and bad:
        for _ in range(fdp.ConsumeIntInRange(1, 8)):
            pos = fdp.ConsumeIntInRange(0, len(bad) - 1)
            bad[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    else:
        bad = bad[: fdp.ConsumeIntInRange(0, len(bad))]
    check_decode(tables, bytes(bad), indexes)


@atheris.instrument_func
def check_decode(tables, stream: bytes, indexes: np.ndarray) -> None:
    try:
        out = tables.decode(stream, indexes)
    except ValueError:
        return
    if out.shape != indexes.shape or out.dtype != np.int32:
        raise AssertionError("bad output array")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
