// module.cpp — Python bindings of aecodec._core: argument validation at the edge, GIL release
// around whole-array work. The API is specified in docs/model-package.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "cdf_tables.hpp"
#include "hyper_synthesis.hpp"
#include "quantize.hpp"
#include "rans.hpp"

namespace py = pybind11;

namespace {

std::string describe(py::handle h) {
    if (py::isinstance<py::array>(h)) {
        auto a = py::reinterpret_borrow<py::array>(h);
        std::string s = "array of dtype " + std::string(py::str(a.dtype())) + " and shape (";
        for (py::ssize_t k = 0; k < a.ndim(); ++k) s += (k ? ", " : "") + std::to_string(a.shape(k));
        s += a.ndim() == 1 ? ",)" : ")";
        if (!(a.flags() & py::array::c_style)) s += ", not C-contiguous";
        return s;
    }
    return std::string(py::str(py::type::handle_of(h).attr("__name__")));
}

// A C-contiguous, aligned, native-byte-order array of exactly dtype T (no conversion).
template <class T>
py::array_t<T, py::array::c_style> need(py::handle h, const char* name, const char* dtype_name, int ndim = -1) {
    using A = py::array_t<T, py::array::c_style>;
    const std::string want = std::string(name) + " must be a C-contiguous numpy array of dtype " + dtype_name;
    if (!py::isinstance<py::array>(h)) throw py::value_error(want + ", got " + describe(h));
    auto a = py::reinterpret_borrow<py::array>(h);
    if (!py::isinstance<A>(h) || !(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(want + ", got " + describe(h));
    if (ndim >= 0 && a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) + " dimension(s), got " + describe(h));
    return py::reinterpret_borrow<A>(h);
}

// AECODEC_CORE_ISA (a kernel to force, for tests), read while the GIL is held: getenv is not safe
// beside a setenv (os.environ[...] = ...) in another thread, which Python only runs with the GIL.
std::string isa_env() {
    const char* env = std::getenv("AECODEC_CORE_ISA");
    return env ? std::string(env) : std::string();
}

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t k = 0; k < a.ndim(); ++k) s += (k ? ", " : "") + std::to_string(a.shape(k));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

bool same_shape(const py::array& a, const py::array& b) {
    if (a.ndim() != b.ndim()) return false;
    for (py::ssize_t k = 0; k < a.ndim(); ++k)
        if (a.shape(k) != b.shape(k)) return false;
    return true;
}

long long need_int(py::handle h, const char* name, long long lo, long long hi) {
    const std::string msg = std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (py::isinstance<py::bool_>(h) || py::isinstance<py::float_>(h)) throw py::value_error(msg + ", got " + std::string(py::repr(h)));
    PyObject* idx = PyNumber_Index(h.ptr());
    if (!idx) {
        PyErr_Clear();
        throw py::value_error(msg + ", got " + std::string(py::repr(h)));
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    Py_DECREF(idx);
    if (overflow || v < lo || v > hi) throw py::value_error(msg + ", got " + std::string(py::repr(h)));
    return v;
}

// Prepared tables: validated once, reusable for any number of encode/decode calls.
class RansTables {
public:
    RansTables(py::handle cdf, py::handle cdf_len, py::handle offset, py::handle precision) {
        const long long p = need_int(precision, "precision", 1, 16);
        auto c = need<uint32_t>(cdf, "cdf", "uint32", 2);
        auto n = need<int32_t>(cdf_len, "cdf_len", "int32", 1);
        auto o = need<int32_t>(offset, "offset", "int32", 1);
        const size_t T = size_t(c.shape(0)), L = size_t(c.shape(1));
        if (size_t(n.shape(0)) != T)
            throw py::value_error("cdf_len must have shape (T,) = (" + std::to_string(T) + ",) like cdf's rows, got " + shape_str(n));
        if (size_t(o.shape(0)) != T)
            throw py::value_error("offset must have shape (T,) = (" + std::to_string(T) + ",) like cdf's rows, got " + shape_str(o));
        // Copied while the GIL is held: validated and packed from one snapshot, whatever
        // another thread writes to the arrays meanwhile.
        const std::vector<uint32_t> cv(c.data(), c.data() + c.size());
        const std::vector<int32_t> nv(n.data(), n.data() + n.size());
        const std::vector<int32_t> ov(o.data(), o.data() + o.size());
        py::gil_scoped_release nogil;
        tb_ = std::make_shared<const aec::Tables>(aec::build_tables(cv.data(), T, L, nv.data(), ov.data(), p));
    }

    py::bytes encode(py::handle symbols, py::handle indexes, py::handle lanes) const {
        const long long lanes_v = need_int(lanes, "lanes", 0, 32);
        if (lanes_v != 0 && (lanes_v & (lanes_v - 1)))
            throw py::value_error("lanes must be 0 (automatic) or a power of two in [1, 32], got " + std::to_string(lanes_v));
        auto s = need<int32_t>(symbols, "symbols", "int32");
        auto ix = need<int32_t>(indexes, "indexes", "int32");
        if (!same_shape(s, ix))
            throw py::value_error("symbols and indexes must have the same shape, got " + shape_str(s) + " and " + shape_str(ix));
        const int lg = lanes_v == 0 ? -1 : __builtin_ctzll(uint64_t(lanes_v));
        const size_t n = size_t(s.size());
        const int32_t* sp = s.data();
        const int32_t* ip = ix.data();
        std::vector<uint8_t> buf;
        size_t first = 0;
        {
            py::gil_scoped_release nogil;
            buf = aec::rans::encode(sp, ip, n, *tb_, lg, first);
        }
        return py::bytes(reinterpret_cast<const char*>(buf.data() + first), buf.size() - first);
    }

    py::array_t<int32_t> decode(py::handle data, py::handle indexes) const {
        if (!PyObject_CheckBuffer(data.ptr()) || py::isinstance<py::str>(data))
            throw py::value_error("data must be bytes (or a bytes-like object), got " + describe(data));
        py::buffer_info bi = py::reinterpret_borrow<py::buffer>(data).request();  // holds the export
        if (bi.itemsize != 1 || bi.ndim != 1 || (bi.ndim == 1 && bi.strides[0] != 1))
            throw py::value_error("data must be a contiguous buffer of bytes, got " + describe(data));
        auto ix = need<int32_t>(indexes, "indexes", "int32");
        std::vector<py::ssize_t> shape(ix.shape(), ix.shape() + ix.ndim());
        py::array_t<int32_t> out(shape);
        const uint8_t* dp = static_cast<const uint8_t*>(bi.ptr);
        const size_t size = size_t(bi.size);
        const int32_t* ip = ix.data();
        int32_t* op = out.mutable_data();
        const size_t n = size_t(ix.size());
        const std::string isa = isa_env();
        {
            py::gil_scoped_release nogil;
            aec::rans::decode(dp, size, ip, n, *tb_, op, isa.empty() ? nullptr : isa.c_str());
        }
        return out;
    }

    int num_tables() const { return tb_->num_tables; }
    int precision() const { return tb_->precision; }

private:
    std::shared_ptr<const aec::Tables> tb_;
};

py::tuple hyper_synthesis(py::handle z_hat, py::handle w1, py::handle b1, py::handle w2, py::handle b2, py::handle w3,
                          py::handle b3, py::handle log_thresholds, py::handle threads) {
    const long long nthreads = need_int(threads, "threads", 0, 1 << 16);
    auto z = need<int32_t>(z_hat, "z_hat", "int32", 3);
    auto W1 = need<float>(w1, "w1", "float32", 4);
    auto B1 = need<float>(b1, "b1", "float32", 1);
    auto W2 = need<float>(w2, "w2", "float32", 4);
    auto B2 = need<float>(b2, "b2", "float32", 1);
    auto W3 = need<float>(w3, "w3", "float32", 4);
    auto B3 = need<float>(b3, "b3", "float32", 1);
    auto thr = need<float>(log_thresholds, "log_thresholds", "float32", 1);
    // Channel and threshold counts go to the kernel as int: bounded far below INT32_MAX.
    constexpr py::ssize_t kMaxCount = py::ssize_t(1) << 20;
    const std::pair<py::ssize_t, const char*> counts[] = {
        {z.shape(0), "z_hat.shape[0] (Nz)"}, {W1.shape(1), "w1.shape[1] (C1)"}, {W2.shape(1), "w2.shape[1] (C2)"},
        {W3.shape(0), "w3.shape[0] (2M)"}, {thr.shape(0), "log_thresholds.shape[0]"}};
    for (auto& [v, name] : counts)
        if (v > kMaxCount)
            throw py::value_error(std::string(name) + " must be at most 2**20, got " + std::to_string(v));
    aec::HyperSynthesisShape sh;
    sh.nz = int(z.shape(0)), sh.h = int(z.shape(1)), sh.w = int(z.shape(2));
    sh.c1 = int(W1.shape(1)), sh.c2 = int(W2.shape(1)), sh.m2 = int(W3.shape(0));
    sh.nthr = int(thr.shape(0));
    auto expect = [](const py::array& a, const char* name, std::vector<py::ssize_t> want, const char* what) {
        bool ok = a.ndim() == py::ssize_t(want.size());
        for (size_t k = 0; ok && k < want.size(); ++k) ok = a.shape(py::ssize_t(k)) == want[k];
        if (!ok) {
            std::string w = "(";
            for (size_t k = 0; k < want.size(); ++k) w += (k ? ", " : "") + std::to_string(want[k]);
            throw py::value_error(std::string(name) + " must have shape " + w + (want.size() == 1 ? ",)" : ")") + " (" + what +
                                  "), got " + shape_str(a));
        }
    };
    if (z.shape(0) < 1 || z.shape(1) > (1 << 20) || z.shape(2) > (1 << 20))
        throw py::value_error("z_hat must have shape (Nz, h, w) with Nz >= 1 and h, w <= 2**20, got " + shape_str(z));
    if (W1.shape(1) < 1 || W2.shape(1) < 1 || W3.shape(0) < 2 || W3.shape(0) % 2)
        throw py::value_error("w1 [Nz, C1, 5, 5], w2 [C1, C2, 5, 5], w3 [2M, C2, 3, 3] need C1, C2, M >= 1, got shapes " +
                              shape_str(W1) + ", " + shape_str(W2) + ", " + shape_str(W3));
    expect(W1, "w1", {z.shape(0), W1.shape(1), 5, 5}, "[Nz, C1, 5, 5], Nz = z_hat.shape[0]");
    expect(B1, "b1", {W1.shape(1)}, "[C1]");
    expect(W2, "w2", {W1.shape(1), W2.shape(1), 5, 5}, "[C1, C2, 5, 5]");
    expect(B2, "b2", {W2.shape(1)}, "[C2]");
    expect(W3, "w3", {W3.shape(0), W2.shape(1), 3, 3}, "[2M, C2, 3, 3]");
    expect(B3, "b3", {W3.shape(0)}, "[2M]");
    const std::pair<const py::array*, const char*> ws[] = {{&W1, "w1"}, {&B1, "b1"}, {&W2, "w2"}, {&B2, "b2"}, {&W3, "w3"}, {&B3, "b3"}};
    for (auto& [a, name] : ws) {
        const float* p = static_cast<const float*>(a->data());
        for (py::ssize_t k = 0; k < a->size(); ++k)
            if (!std::isfinite(p[k])) throw py::value_error(std::string(name) + " must be finite, found " + std::to_string(p[k]) + " at flat index " + std::to_string(k));
    }
    const float* tp = thr.data();
    for (py::ssize_t k = 0; k < thr.size(); ++k) {
        if (std::isnan(tp[k])) throw py::value_error("log_thresholds must not contain NaN (index " + std::to_string(k) + ")");
        if (k > 0 && !(tp[k - 1] <= tp[k]))
            throw py::value_error("log_thresholds must be sorted ascending, but log_thresholds[" + std::to_string(k - 1) +
                                  "] > log_thresholds[" + std::to_string(k) + "]");
    }
    const py::ssize_t M = W3.shape(0) / 2, H = 4 * z.shape(1), W = 4 * z.shape(2);
    py::array_t<float> mu({M, H, W});
    py::array_t<int32_t> index({M, H, W});
    const int32_t* zp = z.data();
    const float *p1 = W1.data(), *q1 = B1.data(), *p2 = W2.data(), *q2 = B2.data(), *p3 = W3.data(), *q3 = B3.data();
    float* mp = mu.mutable_data();
    int32_t* xp = index.mutable_data();
    const std::string isa = isa_env();
    {
        py::gil_scoped_release nogil;
        aec::hyper_synthesis(zp, p1, q1, p2, q2, p3, q3, tp, sh, int(nthreads), mp, xp,
                             isa.empty() ? nullptr : isa.c_str());
    }
    return py::make_tuple(mu, index);
}

void same_shape_pair(const py::array& a, const py::array& b, const char* na, const char* nb) {
    if (!same_shape(a, b))
        throw py::value_error(std::string(na) + " and " + nb + " must have the same shape, got " + shape_str(a) + " and " + shape_str(b));
}

py::array_t<int32_t> quantize_residual(py::handle y, py::handle mu) {
    auto Y = need<float>(y, "y", "float32");
    auto MU = need<float>(mu, "mu", "float32");
    same_shape_pair(Y, MU, "y", "mu");
    std::vector<py::ssize_t> shape(Y.shape(), Y.shape() + Y.ndim());
    py::array_t<int32_t> out(shape);
    const float *yp = Y.data(), *mp = MU.data();
    int32_t* op = out.mutable_data();
    const size_t n = size_t(Y.size());
    py::gil_scoped_release nogil;
    aec::quantize_residual(yp, mp, op, n);
    return out;
}

py::array_t<float> dequantize(py::handle s, py::handle mu) {
    auto S = need<int32_t>(s, "s", "int32");
    auto MU = need<float>(mu, "mu", "float32");
    same_shape_pair(S, MU, "s", "mu");
    std::vector<py::ssize_t> shape(S.shape(), S.shape() + S.ndim());
    py::array_t<float> out(shape);
    const int32_t* sp = S.data();
    const float* mp = MU.data();
    float* op = out.mutable_data();
    const size_t n = size_t(S.size());
    py::gil_scoped_release nogil;
    aec::dequantize(sp, mp, op, n);
    return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "aecodec native core: rANS entropy coding, exact hyper-synthesis, quantization (docs/model-package.md)";
    py::register_exception<aec::rans::DecodeError>(m, "DecodeError", PyExc_ValueError);

    py::class_<RansTables>(m, "RansTables",
                           "Validated, prepared CDF tables; reuse one for many encode/decode calls.")
        .def(py::init<py::handle, py::handle, py::handle, py::handle>(), py::arg("cdf"), py::arg("cdf_len"),
             py::arg("offset"), py::arg("precision"))
        .def("encode", &RansTables::encode, py::arg("symbols"), py::arg("indexes"), py::kw_only(), py::arg("lanes") = 0,
             "Encode int32 symbols, each under table indexes[i]; returns bytes.")
        .def("decode", &RansTables::decode, py::arg("data"), py::arg("indexes"),
             "Decode as many symbols as indexes has (same shape); raises ValueError on corrupt data.")
        .def_property_readonly("num_tables", &RansTables::num_tables)
        .def_property_readonly("precision", &RansTables::precision);

    m.def(
        "encode",
        [](py::handle symbols, py::handle indexes, py::handle cdf, py::handle cdf_len, py::handle offset, py::handle precision,
           py::handle lanes) { return RansTables(cdf, cdf_len, offset, precision).encode(symbols, indexes, lanes); },
        py::arg("symbols"), py::arg("indexes"), py::arg("cdf"), py::arg("cdf_len"), py::arg("offset"), py::arg("precision"),
        py::kw_only(), py::arg("lanes") = 0, "rANS-encode int32 symbols under indexed CDF tables; returns bytes.");
    m.def(
        "decode",
        [](py::handle data, py::handle indexes, py::handle cdf, py::handle cdf_len, py::handle offset, py::handle precision) {
            return RansTables(cdf, cdf_len, offset, precision).decode(data, indexes);
        },
        py::arg("data"), py::arg("indexes"), py::arg("cdf"), py::arg("cdf_len"), py::arg("offset"), py::arg("precision"),
        "Decode int32 symbols (shape of indexes); raises ValueError on corrupt or truncated data.");
    m.def("hyper_synthesis", &hyper_synthesis, py::arg("z_hat"), py::arg("w1"), py::arg("b1"), py::arg("w2"), py::arg("b2"),
          py::arg("w3"), py::arg("b3"), py::arg("log_thresholds"), py::arg("threads") = 0,
          "Exact h_s: returns (mu float32 [M, 4h, 4w], index int32 [M, 4h, 4w]).");
    m.def("quantize_residual", &quantize_residual, py::arg("y"), py::arg("mu"),
          "round-half-to-even(float32(y - mu)) as int32 (saturating; NaN -> 0).");
    m.def("dequantize", &dequantize, py::arg("s"), py::arg("mu"), "float32(s) + mu.");
    m.def("hyper_synthesis_isa", [] {
              const std::string isa = isa_env();
              return std::string(aec::hyper_synthesis_isa(isa.empty() ? nullptr : isa.c_str()));
          },
          "Instruction set the hyper-synthesis kernel uses (AECODEC_CORE_ISA can force another compiled, "
          "supported one).");
    m.def(
        "hyper_synthesis_kernels",
        []() {
            py::list out;
            for (int i = 0; i < aec::hyper_synthesis_kernel_count(); ++i) {
                const aec::HyperSynthesisKernelInfo k = aec::hyper_synthesis_kernel_info(i);
                py::dict d;
                d["isa"] = k.isa;
                d["block"] = k.block;
                d["cpu_supported"] = k.cpu_supported;
                out.append(d);
            }
            return out;
        },
        "The hyper-synthesis kernels compiled into this build, best first: dicts of isa, block "
        "(output channels per weight block) and cpu_supported.");
    m.def(
        "hyper_synthesis_last_isa",
        []() -> py::object {
            const char* isa = aec::hyper_synthesis_last_isa();
            return isa ? py::object(py::str(isa)) : py::object(py::none());
        },
        "Instruction set of the kernel the most recent hyper_synthesis call ran (None before any).");
    m.attr("compiler") = aec::hyper_synthesis_compiler();
}
