// quantize.cpp — see quantize.hpp. Plain loops the compiler vectorises (no libm calls, no branches).
#include "quantize.hpp"

namespace aec {

void quantize_residual(const float* __restrict y, const float* __restrict mu, int32_t* __restrict out,
                       size_t n) {
    // Round half to even without nearbyint (a libm call on baseline x86-64): for |r| < 2^23,
    // (|r| + 2^23) - 2^23 lands on an integer spacing of 1 and IEEE round-to-nearest-even does the
    // rounding; |r| >= 2^23 is already an integer. Needs the default rounding mode (Python's).
    const float big = 8388608.0f;         // 2^23
    const float lim = 2147483648.0f;      // 2^31
    for (size_t i = 0; i < n; ++i) {
        const float r = y[i] - mu[i];
        const float a = __builtin_fabsf(r);
        const float rounded = a < big ? (a + big) - big : a;  // NaN stays NaN (comparison false)
        const float s = r < 0.0f ? -rounded : rounded;
        // saturate: s >= 2^31 -> INT32_MAX, s < -2^31 -> INT32_MIN, NaN -> 0
        const float c = s < lim ? (s >= -lim ? s : -lim) : 0.0f;  // NaN and s >= 2^31 -> 0 here
        int32_t v = static_cast<int32_t>(c);
        v = s >= lim ? INT32_MAX : v;
        out[i] = v;
    }
}

void dequantize(const int32_t* __restrict s, const float* __restrict mu, float* __restrict out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i]) + mu[i];
}

}  // namespace aec
