// hyper_synthesis.cpp — exact float32 h_s: ConvT5x5/2 + ReLU, ConvT5x5/2 + ReLU, Conv3x3.
//
// Exactness (design §2). Every output value is computed as
//     acc = bias + 0.0f;  for each tap (ky, kx) in ascending order, for each input channel i in
//     ascending order: acc = acc + (w * x);   then ReLU as (acc > 0 ? acc : 0) for layers 1-2.
// Each product and each sum is one IEEE float32 rounding (compiled with -ffp-contract=off, no
// -ffast-math, no FMA instructions). For the transposed convs the taps of output (Y, X) are those
// with ky = Y (mod 2), kx = X (mod 2), reading input (iy, ix) = ((Y+2-ky)/2, (X+2-kx)/2).
// Taps outside the input read 0 (zero padding). Lemma: that equals skipping them, because acc
// starts at bias + 0.0f (never -0.0), a sum is -0.0 only if both terms are -0.0, so acc is never
// -0.0, and acc + (finite w * 0) = acc + (+-0) = acc exactly. The numpy reference
// (tests/reference_hyper_synthesis.py) does the same operations in the same order.
//
// Determinism across thread counts: every output value is produced by exactly one thread with the
// sequence above; threads only split the set of output rows. Across instruction sets: vectors run
// the same sequence per lane (one output channel per lane), and IEEE add/mul are exact per lane.
//
// Speed: a register tile of P output pixels x (VO vectors of output channels) accumulates over all
// taps and input channels; weights are laid out [tap][in][out] per block of output channels so the
// inner loop streams them; activations are HWC with a one-pixel zero border. The kernel is compiled
// once per instruction set (GCC and clang alike) and chosen at run time from one table, kKernels.
#include "hyper_synthesis.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE2_MATH__))
#include <xmmintrin.h>
#define AEC_HAVE_MXCSR 1
#elif defined(__i386__)
// x87 arithmetic keeps 80-bit intermediates: the one-rounding-per-operation rule above fails.
#error "aecodec's core needs SSE2 float arithmetic on 32-bit x86: build with -msse2 -mfpmath=sse"
#endif

// Vector types never cross a non-inlined call, so the ABI note about them is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace aec {
namespace {

// The IEEE defaults the exactness above assumes (round to nearest, no flush-to-zero, no
// denormals-are-zero), set for the duration of a call on every thread that computes: a caller may
// have changed them (torch.set_flush_denormal, fesetround), and a subnormal bias or product would
// then round differently from the reference and from other machines. The caller's state is
// restored on return. Other architectures: their defaults are assumed.
class IeeeDefaults {
public:
#if defined(AEC_HAVE_MXCSR)
    IeeeDefaults() : saved_(_mm_getcsr()) { _mm_setcsr(0x1F80); }  // all masked, nearest, no FTZ/DAZ
    ~IeeeDefaults() { _mm_setcsr(saved_); }

private:
    unsigned saved_;
#endif
};

// Register tile: kP output pixels (the channel block CB is the kernel's own, see kKernels).
constexpr int kP = 6;

// One layer, as the kernel sees it. The transposed convs have 4 parity classes (py, px), the conv
// one. Offsets are in floats relative to the input pixel of the tile's first output pixel.
struct Layer {
    int cin = 0, cout = 0, coutp = 0;  // coutp: cout rounded up to the channel block
    int ntaps[4] = {0, 0, 0, 0};
    std::vector<ptrdiff_t> toff[4];
    std::vector<float> w[4];  // [block][tap][cin][CB]
    std::vector<float> bias;  // [coutp], bias + 0.0f, zero in the padding
};

// Activations: HWC with a 1-pixel zero border; ps floats per pixel.
struct Act {
    int H = 0, W = 0, ps = 0;
    std::vector<float> data;
    float* px(int y, int x) { return data.data() + (size_t(y + 1) * size_t(W + 2) + size_t(x + 1)) * size_t(ps); }
    size_t row_stride() const { return size_t(W + 2) * size_t(ps); }
};

// Taps in the documented order (ky ascending, kx ascending) for parity (py, px); dy/dx are the
// padded-input offsets relative to (a, b) = (Y >> 1, X >> 1).
void transposed_layer(Layer& L, const float* w, const float* b, int cin, int cout, int CB, size_t rs, int ps) {
    L.cin = cin;
    L.cout = cout;
    L.coutp = (cout + CB - 1) / CB * CB;
    const int nb = L.coutp / CB;
    for (int py = 0; py < 2; ++py)
        for (int px = 0; px < 2; ++px) {
            const int c = py * 2 + px;
            std::vector<int> kys, kxs;
            for (int k = py; k < 5; k += 2) kys.push_back(k);
            for (int k = px; k < 5; k += 2) kxs.push_back(k);
            L.ntaps[c] = int(kys.size() * kxs.size());
            L.toff[c].clear();
            for (int ky : kys)
                for (int kx : kxs) {
                    const int dy = (py + 2 - ky) / 2 + 1, dx = (px + 2 - kx) / 2 + 1;  // in {0, 1, 2}
                    L.toff[c].push_back(ptrdiff_t(dy) * ptrdiff_t(rs) + ptrdiff_t(dx) * ps);
                }
            L.w[c].assign(size_t(nb) * L.ntaps[c] * cin * CB, 0.0f);
            for (int blk = 0; blk < nb; ++blk) {
                int t = 0;
                for (int ky : kys)
                    for (int kx : kxs) {
                        for (int i = 0; i < cin; ++i)
                            for (int oo = 0; oo < CB; ++oo) {
                                const int o = blk * CB + oo;
                                if (o < cout)
                                    L.w[c][((size_t(blk) * L.ntaps[c] + t) * cin + i) * CB + oo] =
                                        w[((size_t(i) * cout + o) * 5 + ky) * 5 + kx];
                            }
                        ++t;
                    }
            }
        }
    L.bias.assign(L.coutp, 0.0f);
    for (int o = 0; o < cout; ++o) L.bias[o] = b[o] + 0.0f;
}

void conv3_layer(Layer& L, const float* w, const float* b, int cin, int cout, int CB, size_t rs, int ps) {
    L.cin = cin;
    L.cout = cout;
    L.coutp = (cout + CB - 1) / CB * CB;
    L.ntaps[0] = 9;
    const int nb = L.coutp / CB;
    L.toff[0].clear();
    for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) L.toff[0].push_back(ptrdiff_t(ky) * ptrdiff_t(rs) + ptrdiff_t(kx) * ps);
    L.w[0].assign(size_t(nb) * 9 * cin * CB, 0.0f);
    for (int blk = 0; blk < nb; ++blk)
        for (int t = 0; t < 9; ++t)
            for (int i = 0; i < cin; ++i)
                for (int oo = 0; oo < CB; ++oo) {
                    const int o = blk * CB + oo;
                    if (o < cout) L.w[0][((size_t(blk) * 9 + t) * cin + i) * CB + oo] = w[((size_t(o) * cin + i) * 3) * 3 + t];
                }
    L.bias.assign(L.coutp, 0.0f);
    for (int o = 0; o < cout; ++o) L.bias[o] = b[o] + 0.0f;
}

// Where a layer's results go.
struct Sink {
    Act* act = nullptr;      // layers 1-2: ReLU into the next activation
    float* mu = nullptr;     // layer 3: mu / index planes
    int32_t* index = nullptr;
    int M = 0, H = 0, W = 0;
    const float* thr = nullptr;
    int nthr = 0;
};

typedef void (*RowFn)(const Layer&, const Act&, const Sink&, bool, int);

}  // namespace

// ---- the kernel, compiled once per instruction set ------------------------------------------
// Each copy is compiled with its own target for the whole region (GCC: `#pragma GCC target`, clang:
// `#pragma clang attribute` giving every function in it `target(...)`), so the vector code is
// generated for that ISA from the start (an always_inline template would otherwise be lowered for
// the baseline ISA first, or be refused by clang for a target mismatch). avx512f gives FMA to
// both compilers, so exactness rests on contraction being off in every kernel: -ffp-contract=off
// (setup.py, both compilers; without it both would fuse a * b + c) and, for clang, the pragma below.
// clang defines __GNUC__ too; GCC-style vectors and __builtin_cpu_supports work in both.
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define AEC_KERNEL_NS k_sse2
#define AEC_VBYTES 16
#define AEC_VO 2
#include "hyper_synthesis_kernel.inc"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define AEC_HAVE_X86_KERNELS 1

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define AEC_KERNEL_NS k_avx2
#define AEC_VBYTES 32
#define AEC_VO 2
#include "hyper_synthesis_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
#define AEC_KERNEL_NS k_avx512
#define AEC_VBYTES 64
#define AEC_VO 4
#include "hyper_synthesis_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

// CPU checks, one per kernel: the features its target region enables.
bool cpu_baseline() { return true; }
#ifdef AEC_HAVE_X86_KERNELS
bool cpu_avx2() {
    static const bool ok = (__builtin_cpu_init(), __builtin_cpu_supports("avx2") != 0);
    return ok;
}
bool cpu_avx512() {
    static const bool ok = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f") != 0);
    return ok;
}
#endif

struct Kernel {
    const char* isa;  // name reported and accepted by AECODEC_CORE_ISA
    int block;        // CB: output channels per weight block, the kernel's compile-time constant
    RowFn row;        // the kernel, compiled for exactly that CB
    bool (*cpu_has)();
};

// The kernels actually compiled into this build, best first; baseline last (always supported).
// Invariant: `block` and `row` of an entry come from the same kernel namespace (k_X::CB and
// k_X::layer_row), and hyper_synthesis packs the weights with the block of the entry whose kernel it
// runs; so packing and kernel can never disagree, whichever kernels a compiler could build.
const Kernel kKernels[] = {
#ifdef AEC_HAVE_X86_KERNELS
    {"avx512", k_avx512::CB, k_avx512::layer_row, cpu_avx512},
    {"avx2", k_avx2::CB, k_avx2::layer_row, cpu_avx2},
#endif
    {"sse2", k_sse2::CB, k_sse2::layer_row, cpu_baseline},
};
constexpr int kNumKernels = int(sizeof(kKernels) / sizeof(kKernels[0]));

// The best supported kernel, or the one `isa` names if it is compiled and supported. The caller
// reads AECODEC_CORE_ISA: getenv is not safe beside another thread's setenv, so the Python
// binding reads it while it holds the GIL.
const Kernel& select_kernel(const char* isa) {
    const Kernel* best = &kKernels[kNumKernels - 1];
    for (const Kernel& k : kKernels)
        if (k.cpu_has()) {
            best = &k;
            break;
        }
    if (isa)
        for (const Kernel& k : kKernels)
            if (!std::strcmp(isa, k.isa)) return k.cpu_has() ? k : *best;
    return *best;
}

std::atomic<const char*> g_last_isa{nullptr};

// Runs rows [0, nrows) of a layer on `threads` threads; which thread computes a row never changes
// its value (see the header comment), so a shared counter balances the load.
void run_rows(RowFn fn, const Layer& L, const Act& in, const Sink& s, bool transposed, int nrows, int threads) {
    std::atomic<int> next{0};
    auto work = [&]() {
        const IeeeDefaults ieee;
        for (int Y; (Y = next.fetch_add(1)) < nrows;) fn(L, in, s, transposed, Y);
    };
    const int nt = threads < nrows ? threads : nrows;
    std::vector<std::thread> pool;
    for (int k = 1; k < nt; ++k) {
        try {
            pool.emplace_back(work);
        } catch (const std::system_error&) {  // no more threads (a limit): fewer do the rows
            break;
        }
    }
    work();
    for (auto& th : pool) th.join();
}

// One 5×5 stride-2 transposed layer + ReLU: `in` (cin channels) → `out`, twice its height and
// width with a zero border; `in` is freed after, so at most two activations are held at once.
void upsample(RowFn fn, int CB, const float* w, const float* b, int cin, int cout, Act& in, Act& out,
              int threads) {
    Layer L;
    transposed_layer(L, w, b, cin, cout, CB, in.row_stride(), in.ps);
    out.H = 2 * in.H, out.W = 2 * in.W, out.ps = L.coutp;
    out.data.assign(size_t(out.H + 2) * size_t(out.W + 2) * size_t(out.ps), 0.0f);
    Sink s;
    s.act = &out;
    run_rows(fn, L, in, s, true, out.H, threads);
    in.data = std::vector<float>();
}

}  // namespace

int hyper_synthesis_kernel_count() { return kNumKernels; }

HyperSynthesisKernelInfo hyper_synthesis_kernel_info(int i) {
    const Kernel& k = kKernels[i];
    return {k.isa, k.block, k.cpu_has()};
}

const char* hyper_synthesis_isa(const char* isa) { return select_kernel(isa).isa; }

const char* hyper_synthesis_last_isa() { return g_last_isa.load(); }

#define AEC_STR2(x) #x
#define AEC_STR(x) AEC_STR2(x)
const char* hyper_synthesis_compiler() {
#if defined(__clang__)
    return "clang " AEC_STR(__clang_major__) "." AEC_STR(__clang_minor__) "." AEC_STR(__clang_patchlevel__);
#elif defined(__GNUC__)
    return "gcc " AEC_STR(__GNUC__) "." AEC_STR(__GNUC_MINOR__) "." AEC_STR(__GNUC_PATCHLEVEL__);
#else
    return "unknown";
#endif
}

void hyper_synthesis(const int32_t* z, const float* w1, const float* b1, const float* w2, const float* b2,
                     const float* w3, const float* b3, const float* thr, const HyperSynthesisShape& sh,
                     int threads, float* mu, int32_t* index, const char* isa) {
    if (threads <= 0) threads = int(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    if (threads > 256) threads = 256;
    const IeeeDefaults ieee;  // also for the input conversion below
    const int M = sh.m2 / 2;
    const int H0 = sh.h, W0 = sh.w, H2 = 4 * H0, W2 = 4 * W0;  // two stride-2 layers
    if (H0 == 0 || W0 == 0 || M == 0) return;
    // One entry gives both the packing block and the kernel (the invariant at kKernels).
    const Kernel& kernel = select_kernel(isa);
    const int CB = kernel.block;
    const RowFn fn = kernel.row;
    g_last_isa.store(kernel.isa);

    Act a0, a1, a2;
    a0.H = H0, a0.W = W0, a0.ps = sh.nz;
    a0.data.assign(size_t(H0 + 2) * size_t(W0 + 2) * size_t(sh.nz), 0.0f);
    for (int i = 0; i < sh.nz; ++i)
        for (int y = 0; y < H0; ++y)
            for (int x = 0; x < W0; ++x) a0.px(y, x)[i] = float(z[(size_t(i) * H0 + y) * W0 + x]);

    upsample(fn, CB, w1, b1, sh.nz, sh.c1, a0, a1, threads);
    upsample(fn, CB, w2, b2, sh.c1, sh.c2, a1, a2, threads);

    Layer l3;
    conv3_layer(l3, w3, b3, sh.c2, sh.m2, CB, a2.row_stride(), a2.ps);
    Sink s3;
    s3.mu = mu, s3.index = index, s3.M = M, s3.H = H2, s3.W = W2, s3.thr = thr, s3.nthr = sh.nthr;
    run_rows(fn, l3, a2, s3, false, H2, threads);
}

}  // namespace aec
