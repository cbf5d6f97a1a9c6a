"""Exact hyper-synthesis: core == numpy reference bit for bit, any thread count and ISA.

Every kernel the core compiled and the CPU supports is forced in turn (AECODEC_CORE_ISA) and the
core must report that it ran that one. Set AECODEC_EXPECT_CORE_COMPILER (e.g. "clang", as .ci/run
does for its clang build) to check which compiler built the _core under test.
"""

from __future__ import annotations

import os
import platform

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_hyper_synthesis import hyper_synthesis as reference

from aecodec import _core

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_problem(rng, nz, h, w, c1, c2, m, nthr=7):
    def f16(*shape, scale=0.3):
        # float16-representable values, like the shipped weights
        return (rng.standard_normal(shape) * scale).astype(np.float16).astype(np.float32)

    z = rng.integers(-4, 5, (nz, h, w)).astype(np.int32)
    z[rng.random(z.shape) < 0.4] = 0
    args = dict(
        z_hat=z,
        w1=f16(nz, c1, 5, 5),
        b1=f16(c1),
        w2=f16(c1, c2, 5, 5),
        b2=f16(c2),
        w3=f16(2 * m, c2, 3, 3),
        b3=f16(2 * m),
        log_thresholds=np.sort(rng.standard_normal(nthr)).astype(np.float32),
    )
    # -0.0 biases and exact zeros exercise the signed-zero rule
    args["b1"][::2] = -0.0
    args["b3"][-1] = -0.0
    return args


def assert_bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@SETTINGS
@given(
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 19),
    st.integers(1, 21),
    st.integers(1, 9),
    st.integers(0, 2**32 - 1),
)
def test_core_matches_reference_bit_for_bit(nz, h, w, c1, c2, m, seed):
    args = random_problem(np.random.default_rng(seed), nz, h, w, c1, c2, m)
    mu_ref, idx_ref = reference(**args)
    mu, idx = _core.hyper_synthesis(**args, threads=1)
    assert mu.shape == (m, 4 * h, 4 * w) and idx.shape == (m, 4 * h, 4 * w)
    assert_bits_equal(mu, mu_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    mu3, idx3 = _core.hyper_synthesis(**args, threads=3)
    assert_bits_equal(mu3, mu)
    np.testing.assert_array_equal(idx3, idx)


ALL_ISAS = ("avx512", "avx2", "sse2")  # best first
BLOCKS = {"avx512": 64, "avx2": 16, "sse2": 8}  # output channels per weight block


def runnable_isas():
    """The kernels this build compiled and this CPU supports, best first."""
    return [k["isa"] for k in _core.hyper_synthesis_kernels() if k["cpu_supported"]]


def test_core_was_built_by_the_expected_compiler():
    name, _, version = _core.compiler.partition(" ")
    assert name in ("gcc", "clang") and version, _core.compiler
    want = os.environ.get("AECODEC_EXPECT_CORE_COMPILER")
    if want:
        assert name == want, f"{_core.__file__} was built by {_core.compiler}, expected {want}"


def test_kernel_table(monkeypatch):
    kernels = _core.hyper_synthesis_kernels()
    names = [k["isa"] for k in kernels]
    assert names == [isa for isa in ALL_ISAS if isa in names], "not best first"
    assert names[-1] == "sse2" and kernels[-1]["cpu_supported"]
    for k in kernels:
        assert k["block"] == BLOCKS[k["isa"]]
    if platform.machine().lower() in ("x86_64", "amd64"):
        # GCC and clang both compile every kernel; a missing one is the bug this guards against
        assert names == list(ALL_ISAS), f"{_core.compiler} compiled only {names}"
    monkeypatch.delenv("AECODEC_CORE_ISA", raising=False)
    assert _core.hyper_synthesis_isa() == runnable_isas()[0]
    # a name that is not a runnable kernel is ignored: the best one runs, and says so
    for bad in ["nonsense"] + [isa for isa in ALL_ISAS if isa not in runnable_isas()]:
        monkeypatch.setenv("AECODEC_CORE_ISA", bad)
        assert _core.hyper_synthesis_isa() == runnable_isas()[0]


def test_thread_counts_agree():
    rng = np.random.default_rng(1)
    args = random_problem(rng, 16, 5, 7, 24, 40, 20, nthr=63)
    mu, idx = _core.hyper_synthesis(**args, threads=1)
    mu_ref, idx_ref = reference(**args)
    assert_bits_equal(mu, mu_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    for threads in (0, 2, 5, 64):
        m2, i2 = _core.hyper_synthesis(**args, threads=threads)
        assert_bits_equal(m2, mu)
        np.testing.assert_array_equal(i2, idx)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_each_isa_matches_reference(isa, monkeypatch):
    if isa not in runnable_isas():
        pytest.skip(f"{isa} kernel not compiled by {_core.compiler} or not supported by this CPU")
    monkeypatch.setenv("AECODEC_CORE_ISA", isa)
    assert _core.hyper_synthesis_isa() == isa
    rng = np.random.default_rng(11)
    # channel counts below, at, across and not multiples of every block (8, 16, 64)
    for nz, h, w, c1, c2, m in [(16, 5, 7, 24, 40, 20), (3, 2, 9, 70, 17, 33), (5, 3, 2, 8, 16, 64),
                                (1, 1, 1, 1, 1, 1), (9, 2, 3, 129, 65, 7)]:
        args = random_problem(rng, nz, h, w, c1, c2, m, nthr=63)
        mu_ref, idx_ref = reference(**args)
        for threads in (1, 3):
            mu, idx = _core.hyper_synthesis(**args, threads=threads)
            assert _core.hyper_synthesis_last_isa() == isa
            assert_bits_equal(mu, mu_ref)
            np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_each_isa_reproduces_the_golden_hyper_synthesis(isa, monkeypatch):
    if isa not in runnable_isas():
        pytest.skip(f"{isa} kernel not compiled by {_core.compiler} or not supported by this CPU")
    from test_golden import GOLDEN, RECORD, golden_codec, hyper_hash

    codec = golden_codec()
    _, z_hat, _ = codec.decode_latents(GOLDEN)
    monkeypatch.setenv("AECODEC_CORE_ISA", isa)
    mu, index = codec._hyper_synthesis(codec._engine(), z_hat)
    assert _core.hyper_synthesis_last_isa() == isa
    assert hyper_hash(mu, index) == RECORD["hyper_synthesis_sha256"]


def test_layer_semantics_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    args = random_problem(rng, 6, 3, 4, 10, 12, 5)
    h_s = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(6, 10, 5, stride=2, padding=2, output_padding=1),
        torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(10, 12, 5, stride=2, padding=2, output_padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(12, 10, 3, padding=1),
    ).double()
    with torch.no_grad():
        for layer, (wk, bk) in zip(
            [h_s[0], h_s[2], h_s[4]], [("w1", "b1"), ("w2", "b2"), ("w3", "b3")]
        ):
            layer.weight.copy_(torch.from_numpy(args[wk].astype(np.float64)))
            layer.bias.copy_(torch.from_numpy(args[bk].astype(np.float64)))
        out = h_s(torch.from_numpy(args["z_hat"].astype(np.float64))[None])[0].numpy()
    mu, idx = _core.hyper_synthesis(**args)
    np.testing.assert_allclose(mu, out[:5], rtol=1e-4, atol=1e-4)
    expected_idx = np.searchsorted(args["log_thresholds"], out[5:], side="right")
    close = np.abs(out[5:, ..., None] - args["log_thresholds"]).min(-1) < 1e-4
    assert np.all((idx == expected_idx) | close)


def test_kodak_shape_runs():
    rng = np.random.default_rng(3)
    args = random_problem(rng, 128, 2, 3, 128, 192, 192, nthr=63)
    mu, idx = _core.hyper_synthesis(**args, threads=2)
    assert mu.shape == (192, 8, 12) and idx.shape == (192, 8, 12)
    mu_ref, idx_ref = reference(**args)
    assert_bits_equal(mu, mu_ref)
    np.testing.assert_array_equal(idx, idx_ref)


def test_empty_spatial_size():
    rng = np.random.default_rng(4)
    args = random_problem(rng, 2, 1, 1, 3, 3, 2)
    args["z_hat"] = np.zeros((2, 0, 3), np.int32)
    mu, idx = _core.hyper_synthesis(**args)
    assert mu.shape == (2, 0, 12) and idx.shape == (2, 0, 12)


def good():
    return random_problem(np.random.default_rng(5), 2, 2, 2, 3, 4, 2)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            dict(z_hat=np.zeros((2, 2, 2), np.int64)),
            "z_hat must be a C-contiguous numpy array of dtype int32",
        ),
        (dict(z_hat=np.zeros((2, 2), np.int32)), "z_hat must have 3 dimension"),
        (dict(z_hat=np.zeros((3, 2, 2), np.int32)), r"w1 must have shape \(3, 3, 5, 5\)"),
        (dict(w1=np.zeros((2, 3, 5, 5), np.float64)), "w1 must be .* float32"),
        (dict(w1=np.zeros((2, 3, 3, 3), np.float32)), r"w1 must have shape \(2, 3, 5, 5\)"),
        (dict(b1=np.zeros(4, np.float32)), r"b1 must have shape \(3,\)"),
        (dict(w2=np.zeros((2, 4, 5, 5), np.float32)), r"w2 must have shape \(3, 4, 5, 5\)"),
        (dict(b2=np.zeros(3, np.float32)), r"b2 must have shape \(4,\)"),
        (dict(w3=np.zeros((3, 4, 3, 3), np.float32)), "need C1, C2, M >= 1"),
        (dict(w3=np.zeros((4, 5, 3, 3), np.float32)), r"w3 must have shape \(4, 4, 3, 3\)"),
        (dict(b3=np.zeros(3, np.float32)), r"b3 must have shape \(4,\)"),
        (dict(b3=np.array([0, np.nan, 0, 0], np.float32)), "b3 must be finite"),
        (dict(w2=np.full((3, 4, 5, 5), np.inf, np.float32)), "w2 must be finite"),
        (
            dict(log_thresholds=np.array([1, 0], np.float32)),
            "log_thresholds must be sorted ascending",
        ),
        (
            dict(log_thresholds=np.array([np.nan], np.float32)),
            "log_thresholds must not contain NaN",
        ),
        (
            dict(log_thresholds=np.arange((1 << 20) + 1, dtype=np.float32)),
            r"log_thresholds.shape\[0\] must be at most 2\*\*20",
        ),
        (dict(log_thresholds=np.zeros((2, 2), np.float32)), "log_thresholds must have 1 dimension"),
        (dict(threads=-1), r"threads must be an integer in \[0, 65536\]"),
        (dict(threads=1.5), "threads must be an integer"),
    ],
)
def test_value_errors(change, match):
    args = good()
    args.update(change)
    with pytest.raises(ValueError, match=match):
        _core.hyper_synthesis(**args)


def test_exact_whatever_the_callers_flush_to_zero_mode():
    """Subnormal biases and products: the core computes them as IEEE defaults say even when the
    calling thread flushes denormals (torch.set_flush_denormal), and leaves that mode as it was."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    args = random_problem(rng, 2, 2, 2, 3, 4, 2)
    args["w1"][:] = 0
    args["b1"][:] = np.float32(3e-39)  # subnormal: layer 1 outputs exactly this
    args["w2"][:] = 1.0
    args["b2"][:] = 0.0
    args["w3"][:] = np.float32(0.5)  # sums of subnormal products
    args["b3"][:] = 0.0
    mu_ref, idx_ref = reference(**args)
    assert (mu_ref != 0).all()  # flushing the subnormal b1 to zero would give 0 everywhere
    tiny = np.array([3e-39], np.float32)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        assert (tiny * np.float32(1.0))[0] == 0  # flushing is on in this thread
        for threads in (1, 3):
            mu, idx = _core.hyper_synthesis(**args, threads=threads)
            assert_bits_equal(mu, mu_ref)
            np.testing.assert_array_equal(idx, idx_ref)
        assert (tiny * np.float32(1.0))[0] == 0  # the caller's mode is back
    finally:
        torch.set_flush_denormal(False)
    assert (tiny * np.float32(1.0))[0] != 0
