// cdf_tables.hpp — validation of indexed integer CDF tables and the coder's lookup structures.
//
// Input format (docs/model-package.md): cdf uint32 [T, L] (rows padded), cdf_len int32 [T],
// offset int32 [T], precision p. Row t uses cdf[t, 0 .. n) with n = cdf_len[t] = S + 2, where S is
// the support size: bin b < S is the symbol offset[t] + b, bin S is the escape bin.
//
// Table invariants established by build_tables (rans.hpp relies on them):
//  (T1) 1 <= p <= 16; cdf[t,0] = 0 < cdf[t,1] < ... < cdf[t,n-1] = 2^p, n >= 2. So every bin has
//       1 <= freq <= 2^p and the bins tile [0, 2^p) exactly (at most 2^p bins, bin < 2^16).
//  (T2) packed[t][b] = start | (freq - 1) << 16 for b <= S (16 bits each suffice by (T1)).
//  (T3) bucket[t][k] = the bin containing slot k << bucket_shift, so its start <= any slot of
//       bucket k, and a forward scan from it reaches the bin containing the slot.
//  (T4) offset[t] + S - 1 <= INT32_MAX: every in-support symbol is an int32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace aec {

struct Tables {
    int precision = 0;
    uint32_t slot_mask = 0;
    int num_tables = 0;
    size_t row_stride = 0;  // bins per packed row (max S + 1)
    int bucket_bits = 0;    // buckets per table = 2^bucket_bits
    int bucket_shift = 0;   // slot >> bucket_shift = bucket
    std::vector<uint32_t> packed;
    std::vector<uint16_t> bucket;
    std::vector<int32_t> offset;
    std::vector<int32_t> support;  // S per table
    bool simd_indexable = false;   // every bucket/packed index fits an int32 (AVX2 gathers)
};

constexpr int kMaxBucketBits = 12;

// Validates and prepares; throws std::invalid_argument (ValueError in Python) naming the argument.
inline Tables build_tables(const uint32_t* cdf, size_t T, size_t L, const int32_t* cdf_len,
                           const int32_t* offset, long long precision) {
    using std::to_string;
    if (precision < 1 || precision > 16)
        throw std::invalid_argument("precision must be an integer in [1, 16], got " + to_string(precision));
    if (T < 1) throw std::invalid_argument("cdf must have at least one row (shape [T, L] with T >= 1)");
    if (L < 2) throw std::invalid_argument("cdf rows must have at least 2 entries (shape [T, L] with L >= 2), got L = " + to_string(L));
    if (T > size_t(INT32_MAX)) throw std::invalid_argument("cdf has too many rows (at most 2^31 - 1)");
    const int p = int(precision);
    const uint32_t total = 1u << p;
    Tables tb;
    tb.precision = p;
    tb.slot_mask = total - 1;
    tb.num_tables = int(T);
    size_t max_n = 2;
    for (size_t t = 0; t < T; ++t) {
        const int32_t n = cdf_len[t];
        if (n < 2 || size_t(n) > L)
            throw std::invalid_argument("cdf_len[" + to_string(t) + "] = " + to_string(n) + " is out of range [2, " +
                                        to_string(L) + "] (L = cdf.shape[1])");
        const uint32_t* row = cdf + t * L;
        if (row[0] != 0)
            throw std::invalid_argument("cdf[" + to_string(t) + ", 0] must be 0, got " + to_string(row[0]));
        if (row[n - 1] != total)
            throw std::invalid_argument("cdf[" + to_string(t) + ", cdf_len[" + to_string(t) + "] - 1] must be 2**precision = " +
                                        to_string(total) + ", got " + to_string(row[n - 1]));
        for (int32_t k = 0; k + 1 < n; ++k)
            if (row[k] >= row[k + 1])
                throw std::invalid_argument("cdf[" + to_string(t) + "] must be strictly increasing over its first cdf_len[" +
                                            to_string(t) + "] entries (every bin needs a non-zero frequency): cdf[" +
                                            to_string(t) + ", " + to_string(k) + "] = " + to_string(row[k]) +
                                            " >= cdf[" + to_string(t) + ", " + to_string(k + 1) + "] = " + to_string(row[k + 1]));
        const int64_t S = n - 2;
        if (S > 0 && int64_t(offset[t]) + S - 1 > INT32_MAX)
            throw std::invalid_argument("offset[" + to_string(t) + "] = " + to_string(offset[t]) + " is out of range: offset + support size - 1 (" +
                                        to_string(S) + " symbols) must be <= 2**31 - 1");
        if (size_t(n) > max_n) max_n = size_t(n);
    }
    // Buckets: at most 2^12 per table, and at most 16x the row length so memory stays bounded by
    // the input size even for many short rows.
    int bb = 1;
    while (bb < kMaxBucketBits && bb < p && (size_t(1) << bb) < 16 * L) ++bb;
    if (bb > p) bb = p;
    tb.bucket_bits = bb;
    tb.bucket_shift = p - bb;
    tb.row_stride = max_n - 1;
    tb.packed.assign(T * tb.row_stride, 0);
    tb.bucket.assign((T << bb) + 2, 0);  // +2: the AVX2 decoder gathers 4 bytes at 2-byte steps
    tb.simd_indexable = (T << bb) + 2 < (size_t(1) << 31) && T * tb.row_stride < (size_t(1) << 31);
    tb.offset.assign(offset, offset + T);
    tb.support.resize(T);
    for (size_t t = 0; t < T; ++t) {
        const uint32_t* row = cdf + t * L;
        const int32_t n = cdf_len[t];
        tb.support[t] = n - 2;
        uint32_t* prow = tb.packed.data() + t * tb.row_stride;
        uint16_t* brow = tb.bucket.data() + (t << bb);
        size_t k = 0;
        for (int32_t b = 0; b + 1 < n; ++b) {
            const uint32_t start = row[b], freq = row[b + 1] - row[b];
            prow[b] = start | (freq - 1) << 16;
            for (; k < (size_t(1) << bb) && (k << tb.bucket_shift) < row[b + 1]; ++k) brow[k] = uint16_t(b);
        }
        // unused tail of the packed row stays 0; it is never reached by (T1)/(T3)
    }
    return tb;
}

}  // namespace aec
