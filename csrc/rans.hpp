// rans.hpp — interleaved rANS over indexed integer CDF tables (design §3).
//
// One concern: turning int32 symbols + per-symbol table indexes into bytes and back. Table
// validation and the decoder's lookup structures live in cdf_tables.hpp; Python argument checks in
// module.cpp. Written from Duda's paper and the ideas in ryg_rans; no code copied.
//
// ---------------------------------------------------------------------------------------------
// Coder invariants (every function below relies on them; the proofs are one line each)
//
//  (I1) State x is a uint32_t. Between symbols a valid state lies in [L, 2^32) with L = 2^16.
//  (I2) Renormalisation moves exactly one 16-bit word, at most once per coded item.
//  (I3) A coded item is (start, freq) under precision p with 1 <= p <= 16, 1 <= freq <= 2^p and
//       start + freq <= 2^p. Table bins satisfy this (validated in cdf_tables.hpp); a bypass field
//       of k bits (1 <= k <= 16) is the item (value, 1) under precision k.
//
//  Encode (x in [L, 2^32)):  x_max = freq << (32 - p)  (<= 2^32, computed in 64 bits).
//     if x >= x_max: emit x & 0xffff, x >>= 16.  Afterwards x < x_max (if we shifted, x < 2^16
//     <= x_max as p <= 16) and x >= freq << (16 - p) (unshifted: x >= L >= that since freq <= 2^p;
//     shifted: x >= x_max >> 16), so 2^(16-p) <= x / freq < 2^(32-p).
//     x' = ((x / freq) << p) + (x % freq) + start:  x' >= 2^(16-p) * 2^p = L and
//     x' <= (2^(32-p) - 1) * 2^p + 2^p - 1 < 2^32, so (I1) holds again after one emit (I2).
//  Decode (any uint32 x, even a hostile one):  slot = x & (2^p - 1); find the bin with
//     start <= slot < start + freq;  x' = freq * (x >> p) + slot - start  < freq * ((x >> p) + 1)
//     <= 2^32, so nothing overflows for ANY input. If x' < L, pull one word: x' = x' << 16 | w.
//     For a valid stream this restores (I1); for garbage it is merely some other uint32.
//
//  Stream layout (bytes):  [header: 1 byte] [K initial states: 4 bytes each, little-endian]
//                          [16-bit little-endian words, in the order the decoder consumes them]
//     header = 0x10 | log2(K), K = number of interleaved states, 1..32 (high nibble = version 1).
//     Symbol i is coded on lane i % K. The encoder starts every lane at x = L and runs backwards;
//     the decoder therefore must end with every lane at exactly L and every word consumed: that
//     check (plus the header) makes the stream self-checking; anything else raises.
//
//  Canonical order (decoder view), per group g of K symbols i = g*K + j (last group may be short):
//     1. for j = 0..m-1: decode symbol i on lane j (table bin, then renormalise)
//     2. for j = 0..m-1: if the bin was the escape bin, decode its bypass fields on lane j
//  The encoder performs exactly the reverse sequence (groups last to first, step 2 then step 1,
//  lanes and fields in reverse).
//
//  Escape code for a symbol s outside [offset, offset + S) of its table (S = support size):
//     below: side = 0, d = offset - 1 - s;  above: side = 1, d = s - (offset + S).  0 <= d < 2^32.
//     u = d + 1 in [1, 2^32], nb = bit length of u (1..33), mb = nb - 1 mantissa bits (0..32),
//     mantissa = u - 2^mb. Fields in decode order: F1 = (mb << 1 | side) on 7 bits; then the
//     mantissa, low 16 bits first (F2, min(mb,16) bits), then the rest (F3, mb-16 bits),
//     zero-width fields omitted. This is Elias-gamma with the unary length replaced by a fixed
//     6-bit one (an escape costs 7 + mb bits plus the escape bin).
// ---------------------------------------------------------------------------------------------
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cdf_tables.hpp"

namespace aec {
namespace rans {

constexpr uint32_t kL = 1u << 16;   // (I1) lower bound of the normalised interval
constexpr int kMaxLogLanes = 5;     // at most 32 interleaved states
constexpr uint8_t kVersion = 0x10;  // header high nibble

inline void put16(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v);
    p[1] = static_cast<uint8_t>(v >> 8);
}
inline uint32_t get16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

// Interleaving width chosen from the symbol count: wide for speed on big arrays, narrow for small
// ones where each extra state costs 4 bytes of flush.
inline int auto_log_lanes(size_t n) {
    int lg = 0;
    while (lg < kMaxLogLanes && (size_t(2048) << lg) <= n) ++lg;
    return lg;
}

// ---- escape fields ---------------------------------------------------------------------------
struct Escape {
    size_t pos;  // symbol position
    uint64_t u;  // d + 1, in [1, 2^32]
    uint32_t side;
};

inline int bit_length(uint64_t u) { return 64 - __builtin_clzll(u); }  // u != 0

// ---- encoder ---------------------------------------------------------------------------------
// Words are written backwards, ending at `end`; `cur` moves down. The caller sized the buffer
// with room for every word (<= 1 per item by (I2)) plus one spare word below, because the
// branchless emit stores before deciding whether to keep the word.
struct Writer {
    uint8_t* cur;
};

// Encode item (start, freq) under precision p on state x. Precondition (I1), (I3).
inline void enc_put(uint32_t& x, Writer& w, uint32_t start, uint32_t freq, int p) {
    const uint64_t x_max = uint64_t(freq) << (32 - p);
    const bool emit = x >= x_max;
    put16(w.cur - 2, x);           // spare word guaranteed by the caller
    w.cur -= emit ? 2 : 0;
    x = emit ? x >> 16 : x;
    const uint32_t q = x / freq;
    x = (q << p) + (x - q * freq) + start;
}

// k-bit bypass field v (1 <= k <= 16): item (v, 1) under precision k.
inline void enc_bits(uint32_t& x, Writer& w, uint32_t v, int k) {
    const uint64_t x_max = uint64_t(1) << (32 - k);
    if (x >= x_max) {
        w.cur -= 2;
        put16(w.cur, x);
        x >>= 16;
    }
    x = (x << k) | v;
}

// Reverse of the decoder's field order for one escape.
inline void enc_escape(uint32_t& x, Writer& w, const Escape& e) {
    const int mb = bit_length(e.u) - 1;  // 0..32
    const uint64_t mant = e.u - (uint64_t(1) << mb);
    const int low = mb > 16 ? 16 : mb;
    if (mb > 16) enc_bits(x, w, uint32_t(mant >> 16), mb - 16);
    if (low > 0) enc_bits(x, w, uint32_t(mant & ((1u << low) - 1)), low);
    enc_bits(x, w, uint32_t(mb) << 1 | e.side, 7);
}

// Worst-case byte size of a stream (for the single up-front allocation).
inline size_t max_stream_bytes(size_t n, size_t n_escapes, int lanes) {
    return 1 + 4 * size_t(lanes) + 2 * (n + 3 * n_escapes) + 2 /* spare word */;
}

// Encode. `item[i]` = packed (start | (freq-1) << 16) of symbol i's bin (the escape bin for an
// escape); escapes sorted by pos. Writes into buf[0, cap) and returns [first byte, cap).
template <int K>
size_t encode_lanes(const uint32_t* item, size_t n, const std::vector<Escape>& esc, int p,
                    uint8_t* buf, size_t cap) {
    uint32_t x[K];
    for (int j = 0; j < K; ++j) x[j] = kL;
    Writer w{buf + cap};
    size_t e = esc.size();
    const size_t full = n / K * K;
    auto group = [&](size_t i0, int m) {
        // step 2 reversed: escapes of this group, highest lane first (fields reversed inside)
        while (e > 0 && esc[e - 1].pos >= i0) {
            --e;
            enc_escape(x[esc[e].pos - i0], w, esc[e]);
        }
        // step 1 reversed
        for (int j = m - 1; j >= 0; --j) {
            const uint32_t it = item[i0 + j];
            enc_put(x[j], w, it & 0xffffu, (it >> 16) + 1, p);
        }
    };
    if (full < n) group(full, int(n - full));
    for (size_t i0 = full; i0 > 0;) {
        i0 -= K;
        group(i0, K);
    }
    // flush: lane 0's state must come first in the stream
    for (int j = K - 1; j >= 0; --j) {
        w.cur -= 4;
        put16(w.cur, x[j]);
        put16(w.cur + 2, x[j] >> 16);
    }
    *--w.cur = uint8_t(kVersion | __builtin_ctz(unsigned(K)));
    return size_t(w.cur - buf);
}

// ---- decoder ---------------------------------------------------------------------------------
struct DecodeError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

struct Reader {
    const uint8_t* cur;
    const uint8_t* end;  // (end - cur) is even, checked at the stream edge
};

// Bounds-checked bypass field.
inline uint32_t dec_bits(uint32_t& x, Reader& r, int k) {
    const uint32_t v = x & ((1u << k) - 1);
    x >>= k;
    if (x < kL) {
        if (r.cur == r.end) throw DecodeError("rANS stream is truncated or corrupt (escape ran past the end)");
        x = x << 16 | get16(r.cur);
        r.cur += 2;
    }
    return v;
}

// Decode the bypass fields of an escape on table t; returns the symbol.
inline int32_t dec_escape(uint32_t& x, Reader& r, const Tables& tb, uint32_t t) {
    const uint32_t f1 = dec_bits(x, r, 7);
    const int mb = int(f1 >> 1);
    const uint32_t side = f1 & 1;
    if (mb > 32) throw DecodeError("rANS stream is corrupt (escape length out of range)");
    uint64_t mant = 0;
    if (mb > 0) mant = dec_bits(x, r, mb > 16 ? 16 : mb);
    if (mb > 16) mant |= uint64_t(dec_bits(x, r, mb - 16)) << 16;
    const int64_t d = int64_t((uint64_t(1) << mb) + mant) - 1;
    const int64_t off = tb.offset[t];
    const int64_t s = side ? off + tb.support[t] + d : off - 1 - d;
    if (s < INT32_MIN || s > INT32_MAX) throw DecodeError("rANS stream is corrupt (escaped value outside int32)");
    return int32_t(s);
}

// The decoder's view of the tables, copied into locals so that stores of decoded symbols (int32)
// cannot alias them (which would force the compiler to reload every field for every symbol).
struct DecodeView {
    const uint32_t* packed;
    const uint16_t* bucket;
    const int32_t* offset;
    const int32_t* support;
    size_t row_stride;
    uint32_t slot_mask, num_tables;
    int precision, bucket_bits, bucket_shift;
    explicit DecodeView(const Tables& tb)
        : packed(tb.packed.data()), bucket(tb.bucket.data()), offset(tb.offset.data()), support(tb.support.data()),
          row_stride(tb.row_stride), slot_mask(tb.slot_mask), num_tables(uint32_t(tb.num_tables)),
          precision(tb.precision), bucket_bits(tb.bucket_bits), bucket_shift(tb.bucket_shift) {}
};

// Table lookup for one state: returns the bin and advances x (no renormalisation).
// Relies on the table invariants of cdf_tables.hpp (T1)-(T3): the bucket gives a bin whose start
// is <= slot, bins tile [0, 2^p) so the forward scan stops at the bin containing slot.
inline uint32_t dec_bin(uint32_t& x, const DecodeView& v, uint32_t t) {
    const uint32_t slot = x & v.slot_mask;
    const uint32_t* row = v.packed + size_t(t) * v.row_stride;
    uint32_t bin = v.bucket[(size_t(t) << v.bucket_bits) + (slot >> v.bucket_shift)];
    uint32_t e = row[bin];
    while (slot - (e & 0xffffu) > (e >> 16)) e = row[++bin];  // slot - start >= freq
    x = ((e >> 16) + 1) * (x >> v.precision) + slot - (e & 0xffffu);
    return bin;
}

// Decoder state shared by the fast paths (scalar here, AVX2 in rans_avx2.hpp) and the checked tail.
template <int K>
struct DecodeState {
    uint32_t x[K];
    Reader r;
    const int32_t* idx;
    int32_t* out;
    size_t n;
    DecodeView v;
    const Tables& tb;

    DecodeState(Reader rd, const int32_t* ix, size_t cnt, const Tables& t, int32_t* o)
        : r(rd), idx(ix), out(o), n(cnt), v(t), tb(t) {
        for (int j = 0; j < K; ++j) {
            x[j] = get16(r.cur) | get16(r.cur + 2) << 16;  // caller checked 4K bytes exist
            r.cur += 4;
            if (x[j] < kL) throw DecodeError("rANS stream is corrupt (initial state out of range)");
        }
    }

    [[noreturn]] void bad_index(size_t i) const {
        throw std::invalid_argument("indexes[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                                    " is out of range [0, " + std::to_string(v.num_tables) + ")");
    }

    // Step 1 for symbol i on lane j: its bin, stored as offset + bin, x advanced (no
    // renormalisation). Returns whether it is the escape bin (resolved by escapes(), step 2).
    bool decode_bin(size_t i, int j) {
        const uint32_t t = uint32_t(idx[i]);
        if (t >= v.num_tables) bad_index(i);
        const uint32_t bin = dec_bin(x[j], v, t);
        const bool escape = bin == uint32_t(v.support[t]);  // read before the store: out may alias
        out[i] = int32_t(uint32_t(v.offset[t]) + bin);
        return escape;
    }

    // Step 2 of a group: a lane escaped iff its output is offset + S, the escape bin's "symbol"
    // (bins < S give other values, all distinct mod 2^32 since S < 2^16).
    void escapes(size_t i0, int m) {
        for (int j = 0; j < m; ++j) {
            const uint32_t t = uint32_t(idx[i0 + j]);
            if (t >= v.num_tables) bad_index(i0 + j);
            if (uint32_t(out[i0 + j]) != uint32_t(v.offset[t]) + uint32_t(v.support[t])) continue;
            out[i0 + j] = dec_escape(x[j], r, tb, t);
        }
    }

    // Fast path: a group of K symbols pulls at most K words (I2), so while K words remain no read
    // inside the group needs a bounds check; the renormalisation is branchless. Returns where it
    // stopped (a multiple of K).
    size_t fast_scalar() {
        size_t i0 = 0;
        const size_t full = n / K * K;
        for (; i0 < full && size_t(r.end - r.cur) >= 2 * size_t(K); i0 += K) {
            bool any_escape = false;
            for (int j = 0; j < K; ++j) {
                any_escape |= decode_bin(i0 + j, j);
                const bool pull = x[j] < kL;
                const uint32_t wv = get16(r.cur);
                x[j] = pull ? (x[j] << 16 | wv) : x[j];
                r.cur += pull ? 2 : 0;
            }
            if (any_escape) escapes(i0, K);
        }
        return i0;
    }

    // Checked path from symbol i0 (a multiple of K) to the end, then the end-of-stream checks.
    void finish(size_t i0) {
        for (; i0 < n; i0 += K) {
            const int m = int(n - i0 < size_t(K) ? n - i0 : size_t(K));
            bool any_escape = false;
            for (int j = 0; j < m; ++j) {
                any_escape |= decode_bin(i0 + j, j);
                if (x[j] < kL) {
                    if (r.cur == r.end) throw DecodeError("rANS stream is truncated or corrupt (ran past the end)");
                    x[j] = x[j] << 16 | get16(r.cur);
                    r.cur += 2;
                }
            }
            if (any_escape) escapes(i0, m);
        }
        if (r.cur != r.end) throw DecodeError("rANS stream is corrupt (trailing data after the last symbol)");
        for (int j = 0; j < K; ++j)
            if (x[j] != kL) throw DecodeError("rANS stream is corrupt (final state check failed)");
    }
};

}  // namespace rans
}  // namespace aec

#include "rans_avx2.hpp"

namespace aec {
namespace rans {

// Decode n symbols with tables tb; idx is read once per symbol and range-checked (so a caller
// mutating it concurrently can cause an exception, never an out-of-bounds read).
template <int K>
void decode_lanes(Reader r, const int32_t* idx, size_t n, const Tables& tb, int32_t* out, bool simd) {
    DecodeState<K> st(r, idx, n, tb, out);
    size_t i0;
#ifdef AEC_RANS_AVX2
    if constexpr (K % 8 == 0) {
        i0 = simd ? fast_avx2(st) : st.fast_scalar();
    } else {
        i0 = st.fast_scalar();
    }
#else
    (void)simd;
    i0 = st.fast_scalar();
#endif
    st.finish(i0);
}

// ---- whole-array entry points ----------------------------------------------------------------

// Encode symbols with their table indexes. Throws std::invalid_argument for a bad index.
// lanes_log2 < 0 chooses automatically.
inline std::vector<uint8_t> encode(const int32_t* sym, const int32_t* idx, size_t n, const Tables& tb,
                                   int lanes_log2, size_t& first) {
    const uint32_t T = uint32_t(tb.num_tables);
    std::vector<uint32_t> item(n);
    // pass 1: bins (or the escape bin) and the escape count; reads the caller's arrays once
    size_t n_esc = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint32_t t = uint32_t(idx[i]);
        if (t >= T)
            throw std::invalid_argument("indexes[" + std::to_string(i) + "] = " + std::to_string(idx[i]) +
                                        " is out of range [0, " + std::to_string(T) + ")");
        const int64_t b = int64_t(sym[i]) - tb.offset[t];
        const uint32_t S = uint32_t(tb.support[t]);
        const bool in = uint64_t(b) < uint64_t(S);
        n_esc += !in;
        item[i] = tb.packed[size_t(t) * tb.row_stride + (in ? uint32_t(b) : S)];
    }
    std::vector<Escape> esc;
    if (n_esc) {
        esc.reserve(n_esc);
        // pass 1b (only when escapes exist): re-read, re-checking the index, collect them
        for (size_t i = 0; i < n && esc.size() < n_esc; ++i) {
            const uint32_t t = uint32_t(idx[i]);
            if (t >= T) break;
            const int64_t S = tb.support[t];
            const int64_t b = int64_t(sym[i]) - tb.offset[t];
            if (b >= 0 && b < S) continue;
            Escape e;
            e.pos = i;
            e.side = b >= 0;
            e.u = uint64_t(b < 0 ? -b - 1 : b - S) + 1;
            esc.push_back(e);
        }
        if (esc.size() != n_esc)  // only possible if another thread mutates the arrays meanwhile
            throw std::invalid_argument("symbols or indexes changed while being encoded");
    }
    const int lg = lanes_log2 < 0 ? auto_log_lanes(n) : lanes_log2;
    const int K = 1 << lg;
    const size_t cap = max_stream_bytes(n, n_esc, K);
    std::vector<uint8_t> buf(cap);
    const int p = tb.precision;
    switch (lg) {
        case 0: first = encode_lanes<1>(item.data(), n, esc, p, buf.data(), cap); break;
        case 1: first = encode_lanes<2>(item.data(), n, esc, p, buf.data(), cap); break;
        case 2: first = encode_lanes<4>(item.data(), n, esc, p, buf.data(), cap); break;
        case 3: first = encode_lanes<8>(item.data(), n, esc, p, buf.data(), cap); break;
        case 4: first = encode_lanes<16>(item.data(), n, esc, p, buf.data(), cap); break;
        default: first = encode_lanes<32>(item.data(), n, esc, p, buf.data(), cap); break;
    }
    return buf;
}

// Decode n symbols from data[0, size) into out. Throws DecodeError on any inconsistency. isa:
// "sse2" keeps to the scalar decoder (AECODEC_CORE_ISA, read by the caller), else nullptr.
inline void decode(const uint8_t* data, size_t size, const int32_t* idx, size_t n, const Tables& tb,
                   int32_t* out, const char* isa = nullptr) {
    if (size < 1) throw DecodeError("rANS stream is empty (no header byte)");
    const uint8_t h = data[0];
    if ((h & 0xf0) != kVersion || (h & 0x0f) > kMaxLogLanes)
        throw DecodeError("rANS stream has an unknown header byte (corrupt data or a different format)");
    const int lg = h & 0x0f;
    const size_t K = size_t(1) << lg;
    if (size < 1 + 4 * K) throw DecodeError("rANS stream is truncated (shorter than its state flush)");
    if ((size - 1) % 2) throw DecodeError("rANS stream is truncated or corrupt (odd length)");
    Reader r{data + 1, data + size};
    const bool simd = simd_decode_available(isa);
    switch (lg) {
        case 0: decode_lanes<1>(r, idx, n, tb, out, simd); break;
        case 1: decode_lanes<2>(r, idx, n, tb, out, simd); break;
        case 2: decode_lanes<4>(r, idx, n, tb, out, simd); break;
        case 3: decode_lanes<8>(r, idx, n, tb, out, simd); break;
        case 4: decode_lanes<16>(r, idx, n, tb, out, simd); break;
        default: decode_lanes<32>(r, idx, n, tb, out, simd); break;
    }
}

}  // namespace rans
}  // namespace aec
