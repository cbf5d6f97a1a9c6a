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
// Bit-identical results for any thread count and any instruction set (see the .cpp). isa: the
// kernel to force (as AECODEC_CORE_ISA names it, read by the caller while it may), or nullptr.
void hyper_synthesis(const int32_t* z, const float* w1, const float* b1, const float* w2, const float* b2,
                     const float* w3, const float* b3, const float* thr, const HyperSynthesisShape& shape,
                     int threads, float* mu, int32_t* index, const char* isa = nullptr);

// The kernels compiled into this build, best first (see the kernel table in the .cpp). Each has an
// instruction-set name ("avx512", "avx2", "sse2"), its channel block (output channels per weight
// block and register tile) and whether this CPU can run it. "sse2" (baseline vectors) is always
// compiled and always supported; it is the last entry.
struct HyperSynthesisKernelInfo {
    const char* isa;
    int block;
    bool cpu_supported;
};
int hyper_synthesis_kernel_count();
HyperSynthesisKernelInfo hyper_synthesis_kernel_info(int i);  // 0 <= i < hyper_synthesis_kernel_count()

// The kernel hyper_synthesis selects for `isa`: the best compiled kernel the CPU supports, or the
// one `isa` names (the environment variable AECODEC_CORE_ISA, for testing exactness across ISAs)
// if that one is compiled and supported; any other value, or nullptr, is ignored.
const char* hyper_synthesis_isa(const char* isa);

// The kernel the most recent hyper_synthesis call (any thread) ran, or nullptr before the first
// call with a non-empty output. Diagnostic, for tests that force a kernel.
const char* hyper_synthesis_last_isa();

// The compiler that built the kernels, e.g. "gcc 12.2.0" or "clang 14.0.6".
const char* hyper_synthesis_compiler();

}  // namespace aec
