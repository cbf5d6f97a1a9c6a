"""The fast-profile student g_s (issue 39): pruning, distillation, export, the training script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="distillation needs torch")

from aecodec import synthesis_fast  # noqa: E402
from aecodec.train import fast_synthesis as fs  # noqa: E402
from aecodec.train.export import write_state  # noqa: E402
from aecodec.train.networks import Config, HyperpriorCodec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CFG = Config(N=8, M=12, Nz=8, C1=8, C2=12, lambdas=(0.001, 0.01, 0.1), encoder_scales=True,
             decoder_scales=True)


def tiny_model(seed: int = 0) -> HyperpriorCodec:
    torch.manual_seed(seed)
    m = HyperpriorCodec(CFG).eval()
    with torch.no_grad():
        m.g_s.log_scales.normal_(0, 0.1)  # distinct per-level scales: the front must use them
    return m


def crops(n=4, seed=1):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("front_width", [None, CFG.N])
def test_full_width_student_with_level_scales_is_the_teacher(front_width):
    m = tiny_model()
    x, t = crops(), torch.tensor([0.0, 0.7, 1.5, 2.0])
    s = fs.from_teacher(m, CFG.N, x, t, front_width, level_scales=True)
    y = fs.latents(m, x, t)
    with torch.no_grad():
        assert torch.allclose(s(y, m.decoder_scales(t)), m.g_s(y, m.decoder_scales(t)),
                              atol=1e-5)


def test_full_width_student_equals_the_teacher():
    m = tiny_model()
    with torch.no_grad():
        m.g_s.log_scales[:, 2] = 0.0  # no third-layer level scale to fold: exact
    x, t = crops(), torch.tensor([0.0, 0.7, 1.5, 2.0])
    s = fs.from_teacher(m, CFG.N, x, t)
    y = fs.latents(m, x, t)
    with torch.no_grad():
        assert torch.allclose(s(y, m.decoder_scales(t)), m.g_s(y, m.decoder_scales(t)),
                              atol=1e-5)


def test_pruned_student_keeps_the_strongest_channels_and_a_bad_width_is_refused():
    m = tiny_model()
    s = fs.from_teacher(m, 3, crops(), torch.ones(4))
    assert s.up.out_channels == 3 and s.last.in_channels == 3
    with pytest.raises(ValueError, match="width must be from 1"):
        fs.FastSynthesis(m.g_s, CFG.N + 1)
    with pytest.raises(ValueError, match="front_width must be from 1"):
        fs.FastSynthesis(m.g_s, 3, front_width=0)
    s = fs.from_teacher(m, 3, crops(), torch.ones(4), front_width=5)
    assert (s.mid.out_channels, s.up.in_channels, s.up.out_channels) == (5, 5, 3)


def test_distillation_trains_only_the_head_and_lowers_the_error():
    m = tiny_model()
    x = crops(2)
    s = fs.from_teacher(m, 4, x, torch.ones(2), front_width=5, level_scales=True)
    front = [p.clone() for p in s.front.parameters()]
    trained = [p.clone() for p in s.trained_parameters()]
    opt = torch.optim.Adam(s.trained_parameters(), lr=3e-3)
    torch.manual_seed(0)
    first = fs.distill_step(m, s, opt, x)
    for _ in range(40):
        last = fs.distill_step(m, s, opt, x)
    assert last < 0.8 * first
    assert all(torch.equal(a, b) for a, b in zip(front, s.front.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(trained, s.trained_parameters()))
    v = fs.validate(m, s, x, torch.ones(2))
    assert v["delta_db"] == pytest.approx(v["student"] - v["teacher"])


@pytest.mark.parametrize("front_width, level_scales", [(None, False), (None, True), (5, False),
                                                      (5, True)])
def test_fast_head_in_phase_form_equals_the_torch_student(tmp_path, front_width, level_scales):
    """What a package ships (the teacher's g_s.onnx + head_arrays as fast.npz) is what trained."""
    import onnxruntime as ort

    from aecodec.train.export import _export_onnx

    m = tiny_model()
    _export_onnx(m.g_s, torch.zeros(1, CFG.M, 4, 4), tmp_path / "g_s.onnx", "y_hat", "x_hat",
                 {"scales": m.decoder_scales(torch.zeros(1)).detach()})
    s = fs.from_teacher(m, 4, crops(), torch.ones(4), front_width, level_scales)
    with torch.no_grad():  # trained-looking maps: not the teacher's own scales
        for p in s.trained_parameters():
            p.add_(0.05 * torch.randn_like(p))
    head = fs.head_arrays(s)
    assert ("mid_w" in head) == (front_width is not None)
    assert ("up_scale_a" in head) == level_scales
    phase = synthesis_fast.build_from_bytes((tmp_path / "g_s.onnx").read_bytes(), head)
    t = torch.tensor([1.3])  # between levels: the map must follow the interpolation
    with torch.no_grad():
        y = fs.latents(m, crops(1), t)
        sc = m.decoder_scales(t)
        want = s(y, sc).numpy()
    out = ort.InferenceSession(phase, providers=["CPUExecutionProvider"]).run(
        None, {"y_hat": y.numpy(), "scales": sc.numpy()})[0]
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_student_exports_to_onnx(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from train_fast_synthesis import export

    m = tiny_model()
    s = fs.from_teacher(m, 4, crops(), torch.ones(4), 5, True)
    export(s, m, tmp_path / "g.onnx")
    import onnxruntime as ort

    t = torch.tensor([1.3])
    with torch.no_grad():
        y = fs.latents(m, crops(1), t)
        sc = m.decoder_scales(t)
        want = s(y, sc).numpy()
    out = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"y_hat": y.numpy(), "scales": sc.numpy()})[0]
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_kmac_per_pixel_of_the_full_width_is_the_teacher_g_s():
    # the reference g_s: 36.8 kMAC/px of transposed convolutions + 5.376 of IGDN (N=128, M=192)
    assert fs.kmac_per_pixel(128, 192, 128) == pytest.approx(36.8 + 5.376)
    assert fs.kmac_per_pixel(128, 192, 48) < 0.55 * fs.kmac_per_pixel(128, 192, 128)
    assert fs.kmac_per_pixel(128, 192, 32, 128) == fs.kmac_per_pixel(128, 192, 32)
    assert fs.kmac_per_pixel(128, 192, 32, 64) < 0.6 * fs.kmac_per_pixel(128, 192, 32)


def test_script_trains_saves_and_resumes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(
            data / f"{i}.png")
    write_state(tiny_model(), tmp_path / "teacher.pt", {"steps": 7})
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_fast_synthesis.py"), "--out", str(out),
           "--model", str(tmp_path / "teacher.pt"), "--data", str(data), "--holdout", "2",
           "--crop", "64", "--batch", "2", "--width", "4", "--validate-every", "2",
           "--threads", "1"]
    r = subprocess.run(cmd + ["--max-steps", "3"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["step"] == 3 and rep["width"] == 4 and [h["step"] for h in rep["history"]] == [
        0, 2, 3]
    assert (out / "g_s_fast.onnx").stat().st_size > 0
    r = subprocess.run(cmd + ["--max-steps", "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    assert json.loads((out / "report.json").read_text())["step"] == 5


def test_script_saves_when_stopped(tmp_path):
    """SIGTERM (a killed job, a Ctrl-C) ends the run with its state saved, not lost."""
    import re
    import signal

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data / f"{i}.png")
    write_state(tiny_model(), tmp_path / "teacher.pt", {"steps": 7})
    out = tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train_fast_synthesis.py"), "--out", str(out),
         "--model", str(tmp_path / "teacher.pt"), "--data", str(data), "--holdout", "1",
         "--crop", "64", "--batch", "2", "--width", "4", "--level-scales", "--threads", "1",
         "--validate-every", "1000000"], stderr=subprocess.PIPE, text=True)
    try:
        started = False
        for line in p.stderr:  # warnings may come first; tqdm's \r updates read as lines
            started = started or "pruned start" in line
            m = re.search(r"distil:.*?(\d+)(?:/\d+|step)", line) if started else None
            if m and int(m.group(1)) >= 1:
                break  # a step is done: the state to save is a trained one
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)  # drains the progress bar's output
        assert p.returncode == 0
    finally:
        p.kill()
    rep = json.loads((out / "report.json").read_text())
    assert rep["step"] >= 1 and rep["level_scales"] is True
    assert set(np.load(out / "fast.npz").files) >= {"up_scale_a", "up_scale_c"}
