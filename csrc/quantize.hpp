// quantize.hpp — latent quantization helpers (design §1: s = round(y - mu), y_hat = s + mu).
#pragma once

#include <cstddef>
#include <cstdint>

namespace aec {

// out[i] = round-half-to-even(float32(y[i] - mu[i])) as int32; values beyond the int32 range
// saturate to INT32_MIN / INT32_MAX, NaN gives 0.
void quantize_residual(const float* y, const float* mu, int32_t* out, size_t n);

// out[i] = float32(s[i]) + mu[i] (one rounding for the conversion when |s| > 2^24, one for the sum).
void dequantize(const int32_t* s, const float* mu, float* out, size_t n);

}  // namespace aec
