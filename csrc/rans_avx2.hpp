// rans_avx2.hpp — AVX2 fast path of the rANS decoder in rans.hpp (same stream, same results).
//
// Included by rans.hpp after DecodeState. Eight consecutive lanes form one vector; a group of K
// lanes (K a multiple of 8) is K/8 vectors processed in lane order, so the words are consumed in
// exactly the scalar order (design: lane j of a group pulls its word after lanes 0..j-1).
// Per vector: bucket, packed entry and offset come from three gathers; the rare forward scan of
// the bucket (cdf_tables.hpp (T3)) is a masked re-gather loop; renormalisation loads 8 words and
// spreads the first popcount(need) of them to the lanes that need one (a permutation from a
// 256-entry table, ryg_rans' SIMD idea). Escapes are detected from the packed entry alone: the
// escape bin is the last bin, the only one with start + freq = 2^p (T1), and are decoded by the
// scalar code after the group (step 2 of the canonical order).
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define AEC_RANS_AVX2 1
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

namespace aec {
namespace rans {

// expand[m][j] = index of the word lane j receives when the lanes in mask m pull words in order.
struct ExpandTable {
    alignas(32) uint32_t idx[256][8];
    ExpandTable() {
        for (int m = 0; m < 256; ++m) {
            int k = 0;
            for (int j = 0; j < 8; ++j) idx[m][j] = (m >> j & 1) ? uint32_t(k++) : 0u;
        }
    }
};

inline const ExpandTable& expand_table() {
    static const ExpandTable table;
    return table;
}

// AVX2 present and not disabled by isa = "sse2" (AECODEC_CORE_ISA, read by the caller: for
// testing both paths).
inline bool simd_decode_available(const char* isa) {
    static const bool cpu = [] {
        __builtin_cpu_init();
        return bool(__builtin_cpu_supports("avx2"));
    }();
    return cpu && !(isa && std::strcmp(isa, "sse2") == 0);
}

template <int K>
__attribute__((target("avx2"))) size_t fast_avx2(DecodeState<K>& st) {
    static_assert(K % 8 == 0, "AVX2 path needs a multiple of 8 lanes");
    constexpr int NV = K / 8;
    const DecodeView& v = st.v;
    if (!st.tb.simd_indexable) return st.fast_scalar();
    const ExpandTable& ex = expand_table();
    const int* bucket = reinterpret_cast<const int*>(v.bucket);  // 4-byte gathers at 2-byte steps (padded)
    const int* packed = reinterpret_cast<const int*>(v.packed);
    const int* offset = v.offset;
    const __m256i slot_mask = _mm256_set1_epi32(int(v.slot_mask));
    const __m256i t_max = _mm256_set1_epi32(int(v.num_tables - 1));
    const __m256i stride = _mm256_set1_epi32(int(v.row_stride));
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    const __m256i last = _mm256_set1_epi32(int(v.slot_mask));  // start + freq - 1 of the escape bin
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i zero = _mm256_setzero_si256();
    const __m128i bb = _mm_cvtsi32_si128(v.bucket_bits);
    const __m128i bs = _mm_cvtsi32_si128(v.bucket_shift);
    const __m128i prec = _mm_cvtsi32_si128(v.precision);

    __m256i x[NV];
    for (int k = 0; k < NV; ++k) x[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st.x + 8 * k));
    Reader& r = st.r;
    size_t i0 = 0;
    const size_t full = st.n / K * K;
    for (; i0 < full && size_t(r.end - r.cur) >= 2 * size_t(K); i0 += K) {
        int escape_bits = 0;
        for (int k = 0; k < NV; ++k) {
            const size_t i = i0 + 8 * size_t(k);
            const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st.idx + i));
            // unsigned t <= T - 1, else report the first bad index
            const __m256i ok = _mm256_cmpeq_epi32(_mm256_max_epu32(t, t_max), t_max);
            if (_mm256_movemask_ps(_mm256_castsi256_ps(ok)) != 0xff) {
                for (int j = 0; j < 8; ++j)
                    if (uint32_t(st.idx[i + j]) >= v.num_tables) st.bad_index(i + j);
                // all in range when read again: another thread wrote to indexes meanwhile
                throw std::invalid_argument("indexes changed while being decoded");
            }
            const __m256i slot = _mm256_and_si256(x[k], slot_mask);
            const __m256i bidx = _mm256_add_epi32(_mm256_sll_epi32(t, bb), _mm256_srl_epi32(slot, bs));
            __m256i bin = _mm256_and_si256(_mm256_i32gather_epi32(bucket, bidx, 2), low16);
            __m256i row = _mm256_add_epi32(_mm256_mullo_epi32(t, stride), bin);
            __m256i e = _mm256_i32gather_epi32(packed, row, 4);
            __m256i start = _mm256_and_si256(e, low16);
            __m256i fm1 = _mm256_srli_epi32(e, 16);
            __m256i d = _mm256_sub_epi32(slot, start);  // in [0, 2^16) by (T3)
            __m256i adv = _mm256_cmpgt_epi32(d, fm1);    // slot beyond this bin: scan forward
            while (!_mm256_testz_si256(adv, adv)) {
                bin = _mm256_sub_epi32(bin, adv);  // adv lanes are -1
                row = _mm256_sub_epi32(row, adv);
                e = _mm256_mask_i32gather_epi32(e, packed, row, adv, 4);
                start = _mm256_and_si256(e, low16);
                fm1 = _mm256_srli_epi32(e, 16);
                d = _mm256_sub_epi32(slot, start);
                adv = _mm256_and_si256(adv, _mm256_cmpgt_epi32(d, fm1));
            }
            // x = freq * (x >> p) + slot - start
            __m256i xs = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_add_epi32(fm1, one), _mm256_srl_epi32(x[k], prec)), d);
            const __m256i off = _mm256_i32gather_epi32(offset, t, 4);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(st.out + i), _mm256_add_epi32(off, bin));
            const __m256i esc = _mm256_cmpeq_epi32(_mm256_add_epi32(start, fm1), last);
            escape_bits |= _mm256_movemask_ps(_mm256_castsi256_ps(esc));
            // renormalise: lanes with x < 2^16 take the next words, in lane order
            const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(xs, 16), zero);
            const int m = _mm256_movemask_ps(_mm256_castsi256_ps(need));
            const __m256i words = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.cur)));
            const __m256i spread = _mm256_permutevar8x32_epi32(
                words, _mm256_load_si256(reinterpret_cast<const __m256i*>(ex.idx[m])));
            x[k] = _mm256_blendv_epi8(xs, _mm256_or_si256(_mm256_slli_epi32(xs, 16), spread), need);
            r.cur += 2 * __builtin_popcount(unsigned(m));
        }
        if (escape_bits) {
            for (int k = 0; k < NV; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(st.x + 8 * k), x[k]);
            st.escapes(i0, K);
            for (int k = 0; k < NV; ++k) x[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st.x + 8 * k));
        }
    }
    for (int k = 0; k < NV; ++k) _mm256_storeu_si256(reinterpret_cast<__m256i*>(st.x + 8 * k), x[k]);
    return i0;
}

}  // namespace rans
}  // namespace aec

#else
namespace aec {
namespace rans {
inline bool simd_decode_available(const char*) { return false; }
}  // namespace rans
}  // namespace aec
#endif
