"""A faster g_s graph, generated at load time from the package's own g_s.onnx (same weights).

onnxruntime runs a 5×5 stride-2 ConvTranspose as one GEMM into a kernel-taps × channels × area
column buffer followed by a scatter-add (col2im): memory-bound and ~2-3× slower than its plain
convolutions. Each such layer is re-expressed here with ordinary convolutions on the input grid:

* sub-pixel ("phase") form: output pixel (2m+p, 2n+q) of the transposed convolution is a 3×3,
  3×2, 2×3 or 2×2 convolution of the input around (m, n), one per phase (p, q) — exactly the 25
  taps of the original, so the MACs are unchanged; the four phase outputs are interleaved by
  Concat + DepthToSpace.
* the largest layer (the second-last, N×N at half resolution, ~70 % of the MACs) keeps its four
  phase outputs apart: the pointwise IGDN and level scale apply to each phase as they are, and the
  last layer (N → 3) reads the four phases directly (a 2×2 convolution per input phase into all
  16 output phases of the 4× finer grid, summed), so the N-channel half-resolution tensor is
  never interleaved; one DepthToSpace of the 3-channel result finishes.
* the IGDN parameters (gamma, beta: the exporter's lower-bound reparametrisation) are folded to
  constants in float32 with the graph's own operations, in its order.

The result equals the reference graph up to float rounding (the sums are taken in a different
order: ~1e-6 of the [0, 1] output; tests check it). The graph is read and written with the
minimal protobuf code below (the `onnx` package is not a runtime dependency); a g_s that does not
have the expected structure is run as it is (`build` returns None).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelPackageError
from .geometry import PREVIEW_SCALES
from .model_package import load_npz

if TYPE_CHECKING:
    import os

    from .model_package import ModelPackage

# ---------------------------------------------------------------------------------------------
# minimal protobuf wire format (ONNX's ModelProto subset)


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def _fields(b: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of a serialized message: int or bytes."""
    out, i, n = [], 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        elif wt == 2:
            ln, i = _varint(b, i)
            v, i = b[i : i + ln], i + ln
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, v))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(fields, num) -> list[int]:
    out = []
    for n, wt, v in fields:
        if n != num:
            continue
        if wt == 0:
            out.append(_signed(v))
        else:  # packed
            i = 0
            while i < len(v):
                x, i = _varint(v, i)
                out.append(_signed(x))
    return out


def _str(fields, num) -> str:
    return next((bytes(v).decode() for n, _, v in fields if n == num), "")


_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}


def _tensor(b: bytes) -> tuple[str, np.ndarray]:
    f = _fields(b)
    dims = _ints(f, 1)
    dt = _ints(f, 2)
    dtype = _DTYPES.get(dt[0] if dt else 0)
    if dtype is None:
        raise ValueError(f"unsupported tensor data type {dt}")
    raw = [v for n, _, v in f if n == 9]
    if raw:
        a = np.frombuffer(bytes(raw[0]), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    elif dtype == np.float32:
        vals = []
        for n, wt, v in f:
            if n == 4:
                vals += ([struct.unpack("<f", v)[0]] if wt == 5 else
                         list(struct.unpack(f"<{len(v) // 4}f", v)))
        a = np.array(vals, dtype=np.float32)
    elif dtype in (np.int64, np.int32):
        a = np.array(_ints(f, 7 if dtype == np.int64 else 5), dtype=dtype)
    else:
        raise ValueError("unsupported tensor encoding")
    return _str(f, 8), a.reshape(dims)


class _Node:
    def __init__(self, b: bytes):
        f = _fields(b)
        self.inputs = [bytes(v).decode() for n, _, v in f if n == 1]
        self.outputs = [bytes(v).decode() for n, _, v in f if n == 2]
        self.op = _str(f, 4)
        self.domain = _str(f, 7)
        self.attrs: dict = {}
        for n, _, v in f:
            if n != 5:
                continue
            af = _fields(v)
            name = _str(af, 1)
            if any(k == 8 for k, _, _ in af):
                self.attrs[name] = _ints(af, 8)
            elif any(k == 3 for k, _, _ in af):
                self.attrs[name] = _ints(af, 3)[0]
            elif any(k == 5 for k, _, _ in af):
                self.attrs[name] = _tensor(next(x for k, _, x in af if k == 5))[1]
            elif any(k == 2 for k, _, _ in af):
                self.attrs[name] = struct.unpack("<f", next(x for k, _, x in af if k == 2))[0]


def _read_graph(data: bytes):
    model = _fields(data)
    graph = _fields(next(v for n, _, v in model if n == 7))
    nodes = [_Node(v) for n, _, v in graph if n == 1]
    inits = dict(_tensor(v) for n, _, v in graph if n == 5)
    inputs = [_str(_fields(v), 1) for n, _, v in graph if n == 11]
    outputs = [_str(_fields(v), 1) for n, _, v in graph if n == 12]
    return nodes, inits, [i for i in inputs if i not in inits], outputs


def _key(num: int, wt: int) -> bytes:
    return _enc_varint(num << 3 | wt)


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _key(num, 2) + _enc_varint(len(payload)) + payload


def _vi(num: int, v: int) -> bytes:
    return _key(num, 0) + _enc_varint(v)


def _enc_tensor(name: str, a: np.ndarray) -> bytes:
    code = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[a.dtype]
    return (b"".join(_vi(1, d) for d in a.shape) + _vi(2, code) + _ld(8, name.encode())
            + _ld(9, np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()))


def _enc_attr(name: str, v) -> bytes:
    if isinstance(v, (list, tuple)):
        return _ld(1, name.encode()) + b"".join(_vi(8, x) for x in v) + _vi(20, 7)
    if isinstance(v, str):
        return _ld(1, name.encode()) + _ld(4, v.encode()) + _vi(20, 3)
    return _ld(1, name.encode()) + _vi(3, v) + _vi(20, 2)


def _enc_node(op: str, inputs, outputs, **attrs) -> bytes:
    return (b"".join(_ld(1, i.encode()) for i in inputs)
            + b"".join(_ld(2, o.encode()) for o in outputs) + _ld(3, outputs[0].encode())
            + _ld(4, op.encode()) + b"".join(_ld(5, _enc_attr(k, v)) for k, v in attrs.items()))


def _enc_value_info(name: str, dims) -> bytes:
    shape = b"".join(_ld(1, _vi(1, d) if isinstance(d, int) else _ld(2, d.encode()))
                     for d in dims)
    tensor = _vi(1, 1) + _ld(2, shape)
    return _ld(1, name.encode()) + _ld(2, _ld(1, tensor))


# ---------------------------------------------------------------------------------------------
# recognising the reference g_s


class _Unsupported(Exception):
    pass


class _Graph:
    def __init__(self, data: bytes):
        self.nodes, self.inits, self.inputs, self.outputs = _read_graph(data)
        self.producer = {o: n for n in self.nodes for o in n.outputs}
        self.consumers: dict = {}
        for n in self.nodes:
            for i in dict.fromkeys(n.inputs):
                self.consumers.setdefault(i, []).append(n)

    def users(self, name: str, op: str) -> list:
        return [n for n in self.consumers.get(name, []) if n.op == op]

    def fold(self, name: str) -> np.ndarray:
        """The value of a tensor computed from constants only, in float32 as the graph does."""
        if name in self.inits:
            return self.inits[name]
        n = self.producer.get(name)
        if n is None:
            raise _Unsupported(f"{name} is not constant")
        if n.op == "Constant" and "value" in n.attrs:
            return n.attrs["value"]
        if n.op in ("Identity", "Reshape"):  # a Reshape's target shape is applied by the caller
            return self.fold(n.inputs[0])
        args = [self.fold(i) if i else None for i in n.inputs]
        if n.op == "Clip":
            x = args[0]
            if len(args) > 1 and args[1] is not None:
                x = np.maximum(x, args[1].astype(x.dtype))
            if len(args) > 2 and args[2] is not None:
                x = np.minimum(x, args[2].astype(x.dtype))
            return x
        ops = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
        if n.op in ops:
            return ops[n.op](args[0], args[1]).astype(args[0].dtype)
        if n.op == "Sqrt":
            return np.sqrt(args[0])
        raise _Unsupported(f"cannot fold {n.op}")


def _check_convt(n) -> None:
    want = {"kernel_shape": [5, 5], "strides": [2, 2], "pads": [2, 2, 2, 2],
            "output_padding": [1, 1]}
    for k, v in want.items():
        if n.attrs.get(k) != v:
            raise _Unsupported(f"ConvTranspose {k}={n.attrs.get(k)}")
    if n.attrs.get("group", 1) != 1 or n.attrs.get("dilations", [1, 1]) != [1, 1]:
        raise _Unsupported("ConvTranspose group/dilations")


def _layers(g: _Graph) -> list[dict]:
    """The chain ConvTranspose → [IGDN → ×scales[k]] … of the reference graph, as arrays."""
    x, layers = g.inputs[0], []
    while True:
        ct = g.users(x, "ConvTranspose")
        if len(ct) != 1 or ct[0].inputs[0] != x:
            raise _Unsupported("expected one ConvTranspose")
        ct = ct[0]
        _check_convt(ct)
        layer = {"w": g.fold(ct.inputs[1]).astype(np.float32),
                 "b": g.fold(ct.inputs[2]).astype(np.float32)}
        layers.append(layer)
        t = ct.outputs[0]
        if t in g.outputs:
            return layers
        sq = [n for n in g.users(t, "Mul") if n.inputs == [t, t]]
        if len(sq) != 1:
            raise _Unsupported("expected an IGDN")
        conv = g.users(sq[0].outputs[0], "Conv")
        if len(conv) != 1 or conv[0].attrs.get("kernel_shape", [1, 1]) != [1, 1]:
            raise _Unsupported("expected IGDN's 1×1 convolution")
        gamma, beta = g.fold(conv[0].inputs[1]), g.fold(conv[0].inputs[2])
        c = beta.shape[0]
        if gamma.size != c * c:
            raise _Unsupported("IGDN gamma shape")
        sqrt = g.users(conv[0].outputs[0], "Sqrt")
        if len(sqrt) != 1:
            raise _Unsupported("expected IGDN's Sqrt (inverse GDN)")
        r = sqrt[0].outputs[0]
        mul = [n for n in g.users(r, "Mul") if sorted(n.inputs) == sorted([t, r])]
        if len(mul) != 1:
            raise _Unsupported("expected IGDN's product")
        layer["gamma"] = gamma.astype(np.float32).reshape(c, c, 1, 1)
        layer["beta"] = beta.astype(np.float32)
        x = mul[0].outputs[0]
        layer["scale"] = None
        muls = g.users(x, "Mul")
        if len(muls) == 1:  # × the level's channel scales: Gather(scales, k, axis=1) [→ Unsqueeze]
            other = [i for i in muls[0].inputs if i != x][0]
            n = g.producer.get(other)
            while n is not None and n.op in ("Unsqueeze", "Reshape", "Identity"):
                n = g.producer.get(n.inputs[0])
            if (n is None or n.op != "Gather" or n.inputs[0] not in g.inputs[1:]
                    or n.attrs.get("axis") != 1):
                raise _Unsupported("unexpected product after IGDN")
            layer["scale"] = int(g.fold(n.inputs[1]))
            x = muls[0].outputs[0]
        elif muls:
            raise _Unsupported("unexpected products after IGDN")


# ---------------------------------------------------------------------------------------------
# building the phase graph


def _taps(a: int, r: int, pin: int) -> dict:
    """ConvTranspose 5×5/2 (pads 2, output_padding 1) on an input held as `pin` phases per axis:
    output phase a (of 2·pin) reads input phase r at offset o (input-grid units) with kernel tap
    ky, for each o → ky returned."""
    out = {}
    for o in range(-2, 3):
        ky = a + 2 - 2 * r - 2 * pin * o
        if 0 <= ky < 5:
            out[o] = ky
    return out


class _Builder:
    def __init__(self):
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.n = 0

    def name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem: str, a: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(_enc_tensor(name, a))
        return name

    def node(self, op: str, inputs, stem: str = "t", out: str | None = None, **attrs) -> str:
        out = out or self.name(stem)
        self.nodes.append(_enc_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, w: np.ndarray, b: np.ndarray | None, pads, stem="conv") -> str:
        ins = [x, self.const("w", np.ascontiguousarray(w, dtype=np.float32))]
        if b is not None:
            ins.append(self.const("b", np.ascontiguousarray(b, dtype=np.float32)))
        return self.node("Conv", ins, stem, kernel_shape=list(w.shape[2:]), pads=list(pads))


def _phase_conv(bld: _Builder, x: str, w: np.ndarray, b: np.ndarray, p: int, q: int) -> str:
    """Phase (p, q) of a ConvTranspose layer: output pixels (2m+p, 2n+q) on the input grid."""
    ty, tx = _taps(p, 0, 1), _taps(q, 0, 1)
    oy, ox = sorted(ty), sorted(tx)
    k = np.zeros((w.shape[1], w.shape[0], len(oy), len(ox)), np.float32)
    for i, o in enumerate(oy):
        for j, o2 in enumerate(ox):
            k[:, :, i, j] = w[:, :, ty[o], tx[o2]].T
    return bld.conv(x, k, b, [-oy[0], -ox[0], oy[-1], ox[-1]], stem=f"phase{p}{q}")


def _phase_convs(bld: _Builder, x: str, w: np.ndarray, b: np.ndarray) -> list[str]:
    """The four phase outputs (p, q) = (0,0), (0,1), (1,0), (1,1) of a ConvTranspose layer."""
    return [_phase_conv(bld, x, w, b, p, q) for p in range(2) for q in range(2)]


def _igdn(bld: _Builder, x: str, layer: dict, consts: dict, scales_input: str | None) -> str:
    """IGDN, then × the layer's level scales: the teacher's own (`scale`: Gather of scales[:, k])
    or a fast head's (`scale_map` (k, A, c): exp(A · log scales[:, k] + c))."""
    if "gamma" not in consts:
        consts["gamma"] = bld.const("gamma", layer["gamma"])
        consts["beta"] = bld.const("beta", layer["beta"])
        smap = layer.get("scale_map")
        k = layer["scale"] if smap is None else smap[0]
        if k is not None:
            s = bld.node("Gather", [scales_input, bld.const("k", np.array(k, np.int64))],
                         axis=1)
            if smap is not None:
                a = np.ascontiguousarray(smap[1].T, dtype=np.float32)  # [N, width]
                s = bld.node("MatMul", [bld.node("Log", [s], "log"), bld.const("a", a)])
                s = bld.node("Exp", [bld.node("Add", [s, bld.const("c", smap[2])])], "exp")
            consts["scale"] = bld.node("Reshape", [s, bld.const("shape", np.array(
                [1, -1, 1, 1], np.int64))], "scale")
    sq = bld.node("Mul", [x, x], "sq")
    n = bld.node("Conv", [sq, consts["gamma"], consts["beta"]], "norm",
                 kernel_shape=[1, 1], pads=[0, 0, 0, 0])
    y = bld.node("Mul", [x, bld.node("Sqrt", [n], "sqrt")], "igdn")
    if "scale" in consts:
        y = bld.node("Mul", [y, consts["scale"]], "scaled")
    return y


def _parse(data: bytes):
    """(graph, layers) of a reference g_s, or None if it is not one this module knows (a
    damaged graph included: onnxruntime then refuses it with a message of its own)."""
    try:
        g = _Graph(data)
        layers = _layers(g)
    except (_Unsupported, ValueError, KeyError, IndexError, StopIteration, TypeError,
            AttributeError, struct.error, OverflowError):  # a field of another wire type, etc.
        return None
    if len(layers) < 2 or any("gamma" not in ly for ly in layers[:-1]):
        return None
    return g, layers


def _interleaved(bld: _Builder, x: str, layers: list, scales_input) -> str:
    """Layers (each with its IGDN and level scale) as sub-pixel convolutions, Concat and
    DepthToSpace: the features at the resolution after the last of them."""
    for ly in layers:
        cat = bld.node("Concat", _phase_convs(bld, x, ly["w"], ly["b"]), "concat", axis=1)
        x = _igdn(bld, bld.node("DepthToSpace", [cat], "d2s", blocksize=2, mode="DCR"), ly,
                  {}, scales_input)
    return x


def _model(bld: _Builder, g: _Graph, layers: list, out_name: str, out_channels: int) -> bytes:
    x_in = g.inputs[0]
    ins = [_enc_value_info(x_in, [1, layers[0]["w"].shape[0], "height", "width"])]
    if len(g.inputs) > 1:
        ins.append(_enc_value_info(g.inputs[1], [1, 3, layers[0]["w"].shape[1]]))
    graph = (b"".join(_ld(1, n) for n in bld.nodes) + _ld(2, b"g_s_phase")
             + b"".join(_ld(5, t) for t in bld.inits) + b"".join(_ld(11, v) for v in ins)
             + _ld(12, _enc_value_info(out_name, [1, out_channels, "out_height", "out_width"])))
    opset = _ld(1, b"") + _vi(2, 17)
    return _vi(1, 8) + _ld(2, b"aecodec.synthesis_fast") + _ld(8, opset) + _ld(7, graph)


def build_from_bytes(data: bytes, head: dict | None = None) -> bytes | None:
    """The phase-form g_s (serialized ONNX) equivalent to the reference g_s `data`, or None if
    that graph is not a chain of 5×5/2 ConvTransposes with IGDNs this module knows.

    head (the fast profile, `fast_head`): its last two layers (or three, if the head has a
    `mid` layer) replaced by the head's lighter ones (_with_head). Raises ValueError if the
    head does not fit this g_s."""
    parsed = _parse(data)
    if parsed is None:
        return None
    g, layers = parsed
    if head is not None:
        layers = _with_head(layers, head)
    bld = _Builder()
    out_name = g.outputs[0]
    scales_input = g.inputs[1] if len(g.inputs) > 1 else None
    x = _interleaved(bld, g.inputs[0], layers[:-2], scales_input)
    big, last = layers[-2], layers[-1]
    consts: dict = {}
    w = last["w"]  # [N, cout, 5, 5]
    cout = w.shape[1]
    parts = []
    # One phase at a time (convolution, IGDN, its share of the last layer), so that only one
    # N-channel phase tensor is alive at once.
    for i, (r, s) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        phase = _igdn(bld, _phase_conv(bld, x, big["w"], big["b"], r, s), big, consts,
                      scales_input)
        ty = [_taps(a, r, 2) for a in range(4)]
        tx = [_taps(a, s, 2) for a in range(4)]
        oy = sorted({o for t in ty for o in t})
        ox = sorted({o for t in tx for o in t})
        k = np.zeros((4, 4, cout, w.shape[0], len(oy), len(ox)), np.float32)
        for a in range(4):
            for c in range(4):
                for o, ky in ty[a].items():
                    for o2, kx in tx[c].items():
                        k[a, c, :, :, oy.index(o), ox.index(o2)] = w[:, :, ky, kx].T
        k = k.reshape(16 * cout, w.shape[0], len(oy), len(ox))
        bias = np.tile(last["b"], 16) if i == 0 else None
        parts.append(bld.conv(phase, k, bias, [-oy[0], -ox[0], oy[-1], ox[-1]], "last"))
    bld.node("DepthToSpace", [bld.node("Sum", parts, "sum")], out=out_name, blocksize=4,
             mode="DCR")
    return _model(bld, g, layers, out_name, cout)


def _with_head(layers: list, head: dict) -> list:
    """The layer list with the fast head's layers in place of g_s's last two (three with a
    `mid` layer). A head's level-scale map reads the scales of the layer it replaces."""
    mid = "mid_w" in head
    replaced = 3 if mid else 2
    if len(layers) <= replaced:
        raise ValueError(f"g_s has {len(layers)} layers, too few for this head")
    first = head["mid_w"] if mid else head["up_w"]
    if first.shape[0] != layers[-replaced]["w"].shape[0]:
        raise ValueError(f"its head reads {first.shape[0]} channels, g_s's layer "
                         f"{layers[-replaced]['w'].shape[0]}")

    def smap(prefix: str, ly: dict):
        if f"{prefix}_scale_a" not in head:
            return None
        if ly.get("scale") is None:  # that layer of g_s is not level-scaled
            raise ValueError("its head has level scales, g_s has none there")
        return ly["scale"], head[f"{prefix}_scale_a"], head[f"{prefix}_scale_c"]

    new = [{"w": head["up_w"], "b": head["up_b"], "scale": None,
            "scale_map": smap("up", layers[-2]), "gamma": head["gamma"][:, :, None, None],
            "beta": head["beta"]},
           {"w": head["last_w"], "b": head["last_b"]}]
    if mid:
        new.insert(0, {"w": head["mid_w"], "b": head["mid_b"], "scale": None,
                       "scale_map": smap("mid", layers[-3]),
                       "gamma": head["mid_gamma"][:, :, None, None], "beta": head["mid_beta"]})
    return [*layers[:-replaced], *new]


def build_preview_from_bytes(data: bytes, depth: int, head_w: np.ndarray, head_b: np.ndarray,
                             block: int) -> bytes | None:
    """A preview synthesis: the first `depth` layers of the reference g_s `data` (0: none, the
    head reads ŷ), then a learned head (a convolution, `head_w` [block²·3, C, k, k] with "same"
    padding) and DepthToSpace(block): an image at 2^depth·block / 16 of the full size. Output
    "preview" float32 [1, 3, ·, ·] in [0, 1] nominally. None if the g_s is not one this module
    knows."""
    parsed = _parse(data)
    if parsed is None or not 0 <= depth < len(parsed[1]):
        return None
    g, layers = parsed
    bld = _Builder()
    scales_input = g.inputs[1] if len(g.inputs) > 1 else None
    x = _interleaved(bld, g.inputs[0], layers[:depth], scales_input)
    k = head_w.shape[2]
    x = bld.conv(x, head_w, head_b, [k // 2] * 4, "head")
    if block > 1:
        bld.node("DepthToSpace", [x], out="preview", blocksize=block, mode="DCR")
    else:
        bld.node("Identity", [x], out="preview")
    return _model(bld, g, layers, "preview", head_w.shape[0] // (block * block))


PREVIEW_FILE = "preview.npz"  # decoder-side extra of a package: the heads of build_preview


def preview_graph(package: ModelPackage, k: int) -> bytes | None:
    """The preview synthesis (1/k of the full size) of a loaded package, from its `preview.npz`
    (listed, hence verified, in its manifest's `files`), or None if it has none for 1/k. A head
    that does not fit (shapes, values) is a damaged package: ModelPackageError."""
    path = package.extra(PREVIEW_FILE)
    if k not in PREVIEW_SCALES or path is None:
        return None
    z = load_npz(path)  # any damage: ModelPackageError
    if f"w{k}" not in z:
        return None
    if f"b{k}" not in z:
        raise ModelPackageError(f"{path} has w{k} but no b{k}")
    try:
        w, b = z[f"w{k}"].astype(np.float32), z[f"b{k}"].astype(np.float32)
    except (ValueError, TypeError) as e:  # e.g. a string array
        raise ModelPackageError(f"cannot read {path}: {e}") from e
    block = 16 // k  # ŷ is at 1/16: the head's DepthToSpace makes it 1/k
    want = (3 * block * block, package.latent_channels)
    if (w.ndim != 4 or w.shape[:2] != want or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0
            or b.shape != want[:1] or not (np.isfinite(w).all() and np.isfinite(b).all())):
        raise ModelPackageError(f"{path} does not fit model {package.name}: w{k} {w.shape}, "
                                f"b{k} {b.shape}, want {want} + odd square kernel, finite")
    return build_preview_from_bytes(package.onnx_path("g_s").read_bytes(), 0, w, b, block)


FAST_FILE = "fast.npz"  # decoder-side extra of a package: the fast profile's head
FAST_KEYS = ("up_w", "up_b", "gamma", "beta", "last_w", "last_b")
# optional, each group all or none: a trained second layer; per-level scales of a trained layer
FAST_GROUPS = (("mid_w", "mid_b", "mid_gamma", "mid_beta"), ("up_scale_a", "up_scale_c"),
               ("mid_scale_a", "mid_scale_c"))


def fast_head(package: ModelPackage) -> dict | None:
    """The fast profile's layers (float32) from a loaded package's `fast.npz` (listed, hence
    verified, in its manifest's `files`), or None if it has none. Shapes are checked against
    each other (and, when the graph is built, against the package's g_s): a mismatch is a
    damaged package."""
    path = package.extra(FAST_FILE)
    if path is None:
        return None
    z = load_npz(path)  # any damage: ModelPackageError
    keys = list(FAST_KEYS)
    for group in FAST_GROUPS:
        if any(k in z for k in group):
            keys += group  # all or none: a partial group is reported as missing
    missing = sorted(k for k in keys if k not in z)
    if missing:
        raise ModelPackageError(f"cannot read {path}: {', '.join(missing)} missing")
    try:
        head = {k: np.ascontiguousarray(z[k], dtype=np.float32) for k in keys}
    except (ValueError, TypeError) as e:  # e.g. a string array
        raise ModelPackageError(f"cannot read {path}: {e}") from e
    bad = [k for k, shape in _fast_shapes(head).items() if head[k].shape != shape]
    if bad or head["up_b"].size < 1 or not all(np.isfinite(v).all() for v in head.values()):
        raise ModelPackageError(f"{path} does not fit model {package.name}: "
                                f"{', '.join(bad) or 'non-finite values'}")
    return head


def _fast_shapes(head: dict) -> dict:
    """The shape each array of a fast head must have, from the sizes its biases declare (g_s's
    N from the first layer's weights: building the graph checks it)."""
    def size(k, axis=0):
        return head[k].shape[axis] if head[k].ndim > axis else -1

    w = size("up_b")
    first = "mid_w" if "mid_w" in head else "up_w"
    n = size(first) if head[first].ndim == 4 else -1
    v = size("mid_b") if "mid_b" in head else n
    want = {"up_w": (v, w, 5, 5), "up_b": (w,), "gamma": (w, w), "beta": (w,),
            "last_w": (w, 3, 5, 5), "last_b": (3,)}
    if "mid_w" in head:
        want |= {"mid_w": (n, v, 5, 5), "mid_b": (v,), "mid_gamma": (v, v), "mid_beta": (v,)}
    if "up_scale_a" in head:
        want |= {"up_scale_a": (w, n), "up_scale_c": (w,)}
    if "mid_scale_a" in head and "mid_w" in head:
        want |= {"mid_scale_a": (v, n), "mid_scale_c": (v,)}
    return {k: shape for k, shape in want.items() if k in head} | {
        k: None for k in head if k not in want}  # a key of no use here (a stray scale map)


def fast_graph(package: ModelPackage) -> bytes | None:
    """The fast-profile g_s of a loaded package (its g_s's first layers and its `fast.npz`
    head, in phase form), or None if it has no fast profile."""
    head = fast_head(package)
    if head is None:
        return None
    try:
        return build_from_bytes(package.onnx_path("g_s").read_bytes(), head)
    except ValueError as e:
        raise ModelPackageError(f"{package.path / FAST_FILE} does not fit model "
                                f"{package.name}: {e}") from e


def build(path: str | os.PathLike) -> bytes | None:
    """build_from_bytes of the g_s.onnx at `path`."""
    return build_from_bytes(Path(path).read_bytes())
