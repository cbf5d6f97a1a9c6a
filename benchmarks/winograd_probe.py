"""Probe: would Winograd convolutions, written as ONNX graphs, speed up g_s in onnxruntime?

Times, on random weights and a Kodak-sized input of g_s's big layer (128 channels at 1/4
resolution, 192×128), in one process, interleaved:
- one 3×3 convolution, direct against Winograd F(2,3) and F(4,3);
- the big layer's four phase convolutions (3×3, 3×2, 2×3, 2×2: the phase form of the 5×5/2
  transposed convolution) against one Winograd F(4,3) of them zero-padded to 3×3 (N → 4N).

The Winograd graph: input transform as a depthwise convolution (stride m, one output per
transform component), Reshape + Transpose to [components, C, tiles], one batched MatMul with
the transformed weights, output transform as a MatMul, DepthToSpace. Needs `onnx` (the
`train` extra). Note: docs/notes/2026-12-05-winograd-synthesis.md.

    python benchmarks/winograd_probe.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

C = 128
H, W = 128, 192


def _transforms(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Bᵀ, G, Aᵀ) of Winograd F(m, 3) (Lavin & Gray 2016), float64."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"m must be 2 or 4, got {m}")
    return np.array(bt, float), np.array(g, float), np.array(at, float)


def _model(nodes, inits, outputs) -> bytes:
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.ascontiguousarray(a), n) for n, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def direct(ws: list[np.ndarray]) -> bytes:
    """Plain convolutions of x, each padded like a phase convolution (top/left 1)."""
    nodes, inits = [], {}
    for i, w in enumerate(ws):
        kh, kw = w.shape[2:]
        inits[f"w{i}"] = w
        nodes.append(helper.make_node("Conv", ["x", f"w{i}"], [f"y{i}"],
                                      pads=[1, 1, kh - 2, kw - 2]))
    return _model(nodes, inits, [f"y{i}" for i in range(len(ws))])


def winograd(w: np.ndarray, m: int) -> bytes:
    """A 3×3 convolution (pads 1) of x by w [K, C, 3, 3] as Winograd F(m, 3)."""
    bt, g, at = _transforms(m)
    a, k = m + 2, w.shape[0]
    t2, h2, w2 = a * a, H // m, W // m
    dw = np.tile(np.einsum("pu,qv->pquv", bt, bt).reshape(t2, 1, a, a), (C, 1, 1, 1))
    inits = {
        "dw": dw.astype(np.float32),
        "u": np.einsum("pu,kcuv,qv->pqkc", g, w.astype(float), g).reshape(t2, k, C).astype(
            np.float32),
        "a2": np.einsum("rp,sq->rspq", at, at).reshape(m * m, t2).astype(np.float32),
        "s1": np.array([C, t2, h2 * w2], np.int64),
        "s2": np.array([t2, k * h2 * w2], np.int64),
        "s3": np.array([1, m * m * k, h2, w2], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "dw"], ["v0"], group=C, strides=[m, m],
                         pads=[1, 1, a - m - 1, a - m - 1]),
        helper.make_node("Reshape", ["v0", "s1"], ["v1"]),
        helper.make_node("Transpose", ["v1"], ["v2"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["u", "v2"], ["mm"]),
        helper.make_node("Reshape", ["mm", "s2"], ["mm2"]),
        helper.make_node("MatMul", ["a2", "mm2"], ["y0"]),
        helper.make_node("Reshape", ["y0", "s3"], ["y1"]),
        helper.make_node("DepthToSpace", ["y1"], ["y"], blocksize=m, mode="DCR"),
    ]
    return _model(nodes, inits, ["y"])


def _time(sessions: dict, x: np.ndarray, rounds: int) -> dict:
    times: dict = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"x": x})
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)

    def session(model: bytes) -> ort.InferenceSession:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    w3 = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    one = {"direct 3×3": session(direct([w3])), "F(2,3)": session(winograd(w3, 2)),
           "F(4,3)": session(winograd(w3, 4))}
    shapes = [(3, 3), (3, 2), (2, 3), (2, 2)]
    ws = [(rng.standard_normal((C, C, kh, kw)) / np.sqrt(kh * kw * C)).astype(np.float32)
          for kh, kw in shapes]
    padded = np.zeros((4 * C, C, 3, 3), np.float32)
    for i, (kh, kw) in enumerate(shapes):
        padded[i * C:(i + 1) * C, :, :kh, :kw] = ws[i]
    layer = {"four phase convs": session(direct(ws)), "F(4,3) of the padded 3×3 (N → 4N)":
             session(winograd(padded, 4))}

    ref = one["direct 3×3"].run(None, {"x": x})[0]
    refs = np.concatenate(layer["four phase convs"].run(None, {"x": x}), axis=1)
    print(f"threads {args.threads}; max |error| against direct (activations ~1):")
    for k, s in one.items():
        print(f"  {k}: {np.abs(s.run(None, {'x': x})[0] - ref).max():.1e}")
    err = np.abs(layer["F(4,3) of the padded 3×3 (N → 4N)"].run(None, {"x": x})[0] - refs).max()
    print(f"  F(4,3) big layer: {err:.1e}")
    for group in (one, layer):
        t = _time(group, x, args.rounds)
        base = next(iter(t.values()))
        for k, v in t.items():
            print(f"  {k}: {1000 * v:.1f} ms ({base / v:.2f}×)")


if __name__ == "__main__":
    main()
