// hyper_synthesis.hpp — the exact h_s kernel (design §2, docs/model-package.md).
#pragma once

#include <cstddef>
#include <cstdint>

namespace aec {

struct HyperSynthesisShape {
    int nz, h, w;  // z_hat [nz, h, w]
    int c1, c2;    // channels after layer 1 and 2
    int m2;        // 2M output channels of layer 3 (mu then log sigma)
    int nthr;      // number of log-scale thresholds (T - 1)
};

// Computes mu float32 [M, 4h, 4w] and the table index int32 [M, 4h, 4w] (M = m2 / 2).
// Weights in PyTorch layouts: w1 [nz, c1, 5, 5], w2 [c1, c2, 5, 5] (ConvTranspose2d: in, out, kh,
// kw), w3 [m2, c2, 3, 3] (Conv2d: out, in, kh, kw). Weights and biases must be finite, thr sorted
// ascending without NaN (checked by the caller). threads <= 0 means hardware concurrency.
// Bit-identical results for any thread count and any instruction set (see the .cpp).
void hyper_synthesis(const int32_t* z, const float* w1, const float* b1, const float* w2, const float* b2,
                     const float* w3, const float* b3, const float* thr, const HyperSynthesisShape& shape,
                     int threads, float* mu, int32_t* index);

// The vector instruction set hyper_synthesis uses: "avx512", "avx2" or "sse2". The environment
// variable AECODEC_CORE_ISA (same names) can force a lower one (for testing exactness across ISAs).
const char* hyper_synthesis_isa();

}  // namespace aec
