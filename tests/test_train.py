"""Training side: a few steps on tiny generated data, resume, deterministic export, ONNX parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aecodec.errors import ModelPackageError

torch = pytest.importorskip("torch", reason="the training tests need the train extra (torch)")

from aecodec.train.export import content_hash, export_package, load_model  # noqa: E402
from aecodec.train.networks import Config, HyperpriorCodec, regrid_log_gains  # noqa: E402
from aecodec.train.train import TrainArgs, Trainer  # noqa: E402

TINY = Config(N=8, M=12, Nz=8, C1=8, C2=12)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Six smooth random 80×96 images in mixed formats."""
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((96, 80), Image.BICUBIC)
        im.save(folder / f"im{i}.{'png' if i % 2 else 'webp'}", lossless=True)
    return folder


def test_training_reduces_loss_and_resumes(image_folder, tmp_path):
    run = tmp_path / "run"
    args = TrainArgs(data=str(image_folder), eval_data=str(image_folder), run_dir=str(run),
                     steps=3, batch=2, crop=64, eval_minutes=0, threads=1,
                     config=TINY.to_dict())
    tr = Trainer(args)
    first = tr.step(1e-3)["loss"]
    for _ in range(15):
        last = tr.step(1e-3)["loss"]
    assert np.isfinite(last) and last < first
    tr.run()
    assert (run / "last.ckpt").exists()
    resumed = Trainer(args)
    assert resumed.provenance["steps"] == 3
    resumed.run()
    assert resumed.provenance["steps"] == 6
    assert len(resumed.provenance["history"]) == 2


def test_level_weights_equalise_the_levels_losses(image_folder, tmp_path):
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=1, batch=16,
                     crop=64, eval_minutes=0, threads=1, config=TINY.to_dict())
    tr = Trainer(args)
    top = tr.model.levels - 1
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):  # a loss that grows 10× from the lowest level to the highest
        t = torch.rand(16, generator=gen) * top
        w = tr._level_weights(t, 10 ** (t / top))
    ref = 10 ** (torch.arange(top + 1) / top)
    assert torch.allclose(tr.level_loss, ref, rtol=0.1)
    weighted = w * 10 ** (t / top)
    assert weighted.max() / weighted.min() < 1.3  # every level now pulls about equally
    tr.args.level_balance = False
    assert torch.all(tr._level_weights(t, 10 ** (t / top)) == 1)


def test_ste_rate_is_the_rounded_rate():
    model = HyperpriorCodec(TINY)
    x = torch.rand(2, 3, 64, 64)
    t = torch.tensor([0.0, 4.5])
    torch.manual_seed(1)
    ste = model(x, t, noisy=True, rate_quant="ste")["bpp"]
    rounded = model(x, t, noisy=False)["bpp"]
    noisy = model(x, t, noisy=True)["bpp"]
    assert torch.equal(ste, rounded) and not torch.equal(noisy, rounded)
    ste.sum().backward()  # the straight-through path carries a gradient to g_a
    assert model.g_a[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rate_quant"):
        model(x, t, rate_quant="round")


def test_gain_interpolation_is_monotone_in_rate():
    model = HyperpriorCodec(TINY)
    t = torch.linspace(0, model.levels - 1, 25)
    g = model.gain(t).mean(1)
    assert torch.all(g[1:] > g[:-1])  # larger gain → finer quantization → more bits
    lam = model.lmbda(t)
    assert torch.allclose(lam[0], torch.tensor(TINY.lambdas[0]))
    assert torch.allclose(lam[-1], torch.tensor(TINY.lambdas[-1]))


def test_new_rate_levels_regrid_the_init_gains(image_folder, tmp_path):
    pkg = tmp_path / "pkg"
    torch.save({"state_dict": HyperpriorCodec(TINY).state_dict(), "config": TINY.to_dict()},
               pkg.with_suffix(".pt"))
    lam = (TINY.lambdas[0] / 2,) + TINY.lambdas  # one level below the trained range
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=1, batch=2,
                     crop=64, eval_minutes=0, threads=1, init=str(pkg.with_suffix(".pt")),
                     lambdas=lam)
    tr = Trainer(args)
    old = HyperpriorCodec(TINY).log_gains.detach()
    new = tr.model.log_gains.detach()
    assert tr.model.cfg.lambdas == lam and new.shape[0] == len(lam)
    assert torch.allclose(new[1:], old)  # the trained levels keep their gains
    step = (old[1] - old[0]) * np.log(2) / np.log(lam[2] / lam[1])
    assert torch.allclose(new[0], old[0] - step, atol=1e-5)  # extended along log λ
    with pytest.raises(ValueError, match="increasing"):
        regrid_log_gains(old, TINY.lambdas[::-1], lam)
    tr.run()
    # Resuming without --init/--lambdas/config keeps the run's own architecture and levels.
    resumed = Trainer(TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=1,
                                batch=2, crop=64, eval_minutes=0, threads=1))
    assert resumed.model.cfg == tr.model.cfg
    assert torch.equal(resumed.model.log_gains, tr.model.log_gains)


def test_export_is_deterministic_and_onnx_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    import onnxruntime as ort

    torch.manual_seed(0)
    model = HyperpriorCodec(TINY).eval()
    prov = {"steps": 0}
    m1 = export_package(model, tmp_path / "a", "tiny", prov)
    m2 = export_package(model, tmp_path / "b", "tiny", prov)
    assert m1["content_hash"] == m2["content_hash"] == content_hash(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["architecture"]["M"] == TINY.M

    x = torch.rand(1, 3, 64, 128)
    sess = ort.InferenceSession(str(tmp_path / "a" / "g_a.onnx"))
    y_ort = sess.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        y_torch = model.g_a(x).numpy()
    assert y_ort.shape == (1, TINY.M, 4, 8)
    np.testing.assert_allclose(y_ort, y_torch, rtol=1e-4, atol=1e-5)
    sess = ort.InferenceSession(str(tmp_path / "a" / "g_s.onnx"))
    x_ort = sess.run(None, {"y_hat": y_torch})[0]
    with torch.no_grad():
        x_torch = model.g_s(torch.from_numpy(y_torch)).numpy()
    np.testing.assert_allclose(x_ort, x_torch, rtol=1e-4, atol=1e-5)

    tables = np.load(tmp_path / "a" / "tables.npz")
    assert tables["z_cdf"].dtype == np.uint32 and tables["z_cdf"].shape[0] == TINY.Nz
    assert np.all(tables["z_cdf"][:, 0] == 0)
    assert tables["gains"].shape == (len(TINY.lambdas), TINY.M)

    # The package is enough to resume from, with no second copy of the weights: rebuilt from
    # its graphs and tables, the model is the exported one exactly (the same content hash).
    assert not (tmp_path / "a" / "state.pt").exists()
    assert set(manifest["files"]) == {p.name for p in (tmp_path / "a").iterdir()} - {
        "manifest.json"}
    reloaded, prov2 = load_model(tmp_path / "a")
    assert prov2["steps"] == 0
    with torch.no_grad():
        y2 = reloaded.g_a(x).numpy()
    np.testing.assert_array_equal(y2, y_torch)
    m3 = export_package(reloaded, tmp_path / "c", "tiny", prov)
    assert m3["content_hash"] == m1["content_hash"]
    assert m3["files"] == m1["files"]  # encoder graphs and training file too


def test_gpu_job_runs_on_cpu_from_a_package(image_folder, tmp_path):
    """The prepared GPU script, run here for two steps: starts from a package, writes state.pt."""
    pytest.importorskip("onnx")
    from aecodec.train.gpu_job import main

    torch.manual_seed(0)
    export_package(HyperpriorCodec(TINY), tmp_path / "pkg", "tiny", {"steps": 5, "history": []})
    out = tmp_path / "out"
    rc = main(["train", "--init", str(tmp_path / "pkg"), "--data", str(image_folder),
               "--eval-data", str(image_folder), "--run-dir", str(tmp_path / "run"),
               "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "64", "--cpu"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 2 and len(report["estimate_after"]) == 5
    assert report["total_steps"] == 7 and report["steps_per_s"] > 0
    assert report["sga"] == [0.035, 0.025] and report["level_power"] == 0.5  # the CPU recipe's
    model, prov = load_model(out / "state.pt")
    assert prov["steps"] == 7 and model.cfg.M == TINY.M
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "state.pt"]  # no temp files


def test_gpu_job_returns_weights_at_every_save(image_folder, tmp_path):
    """A kill at the device's limit must not lose the run: each checkpoint reaches --out."""
    pytest.importorskip("onnx")
    from aecodec.train import gpu_job

    torch.manual_seed(0)
    export_package(HyperpriorCodec(TINY), tmp_path / "pkg", "tiny", {"steps": 5, "history": []})
    seen = []
    real = gpu_job._write_out
    gpu_job._write_out = lambda tr, out, rep: (real(tr, out, rep), seen.append(tr.session_steps))
    try:
        gpu_job.main(["train", "--init", str(tmp_path / "pkg"), "--data", str(image_folder),
                      "--eval-data", str(image_folder), "--run-dir", str(tmp_path / "run"),
                      "--out", str(tmp_path / "out"), "--steps", "3", "--batch", "2",
                      "--crop", "64", "--cpu", "--save-minutes", "0"])
    finally:
        gpu_job._write_out = real
    assert seen[:3] == [1, 2, 3]  # after every step (--save-minutes 0), then the final write


def test_gpu_job_refuses_what_would_not_come_back(tmp_path):
    from aecodec.train.gpu_job import check_returned

    for i in range(9):
        (tmp_path / f"f{i}").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="9 files"):
        check_returned(tmp_path)


def test_shipped_model_codes_within_3_percent_of_its_estimate(tmp_path):
    """Parity of the default package: real file bits vs the torch model's rate estimate."""
    from pathlib import Path

    from aecodec import model_package
    from aecodec.train.figures import parity

    data = Path(__file__).resolve().parent / "data" / "kodim23.webp"
    with Image.open(data) as im:
        im.convert("RGB").save(tmp_path / "kodim23.png")  # full size: fixed overheads are small
    rows = parity(model_package.find(), [tmp_path / "kodim23.png"], qualities=(20, 80))
    pixels = 768 * 512
    for r in rows:
        assert abs(r["ratio_streams"] - 1) < 0.03, r  # the entropy coder realises the estimate
        framing = (r["bpp_coded"] - r["bpp_streams"]) * pixels / 8
        assert 60 < framing < 90, r  # docs/format.md "Overhead": prefix, chunk heads, HEAD
        assert abs(r["psnr_decoded"] - r["psnr_estimated"]) < 0.1, r
        # The whole file too, even at ~0.1 bpp (q20 on this easy image), where version 1's
        # ~150 bytes of framing were 3 % of the file.
        assert abs(r["ratio"] - 1) < 0.03, r


@pytest.mark.parametrize("option, good, parsed, bads, message", [
    ("--lambdas", "0.001,0.01", (0.001, 0.01), ("0.01,0.001", "0.01", "a,b", "0,0.1"),
     "increasing"),
    ("--sga", "0.5,0.1", (0.5, 0.1), ("0.1,0.5", "0,0", "0.5", "a,b"), "START,END"),
    ("--level-power", "0.6", 0.6, ("0", "11", "a"), "0.1 <= P <= 10"),
    ("--latent-channels", "320", 320, ("4", "2000", "3.5"), "8 <= M <= 1024"),
    ("--warmup-steps", "300", 300, ("-1", "2.5", "a"), "0 <= N <= 1000000"),
])
def test_train_options_are_checked(capsys, option, good, parsed, bads, message):
    from aecodec.train.cli import train_parser

    dest = option.lstrip("-").replace("-", "_")
    assert getattr(train_parser().parse_args([option, good]), dest) == parsed
    for bad in bads:
        with pytest.raises(SystemExit):
            train_parser().parse_args([option, bad])
    assert message in capsys.readouterr().err


def test_compare_models_reads_run_folders_and_checkpoints(image_folder, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "compare_models", Path(__file__).resolve().parents[1] / "benchmarks" / "compare_models.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    kodak = tmp_path / "kodak"  # the tool reads .png only, as rd.py does
    kodak.mkdir()
    for p in sorted(image_folder.iterdir())[:2]:
        Image.open(p).save(kodak / f"{p.stem}.png")
    run = tmp_path / "run"
    Trainer(TrainArgs(data=str(image_folder), run_dir=str(run), steps=2, batch=2, crop=64,
                      eval_minutes=0, threads=1, config=TINY.to_dict())).run()
    assert compare.main([str(run), str(run / "last.ckpt"), "--data", str(kodak),
                         "--stride", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("steps")[0].split()[1:] for line in out.splitlines() if "steps 2" in line]
    assert len(rows) == 2 and rows[0] == rows[1]  # the folder means its last.ckpt
    assert len(rows[0]) == len(compare.QUALITIES)
    assert out.count("vs WebP") == 2 and "last.ckpt vs " in out
    with pytest.raises(SystemExit):
        compare.main([str(run), "--stride", "0"])


def test_gpu_data_subset_covers_photos_and_datasets_first():
    """A small GPU budget takes crop 0 of every photo, datasets interleaved, before any crop 1."""
    from pathlib import Path

    from aecodec.train.gpu_job import spread_order

    names = [f"aa_{i}_c{k}.webp" for i in range(4) for k in range(2)] + [
        f"bb_{i}_c0.webp" for i in range(2)] + ["odd.png"]
    order = [p.name for p in spread_order([Path(n) for n in sorted(names)])]
    assert sorted(order) == sorted(names)
    firsts = order[:7]
    assert all("_c1" not in n for n in firsts)  # every photo's first crop comes first
    assert {n.split("_")[0] for n in order[:2]} == {"aa", "bb"}  # datasets take turns
    assert order.index("bb_1_c0.webp") < order.index("aa_3_c0.webp")  # interleaved, not sorted


def _scales_trained_alone(image_folder, tmp_path, stage: str, inp: torch.Tensor):
    """A run from a plain tiny package that adds `stage`'s level scales and trains only them
    (--only): they start at 1, so the stage first computes what the package's does, and no
    other parameter moves. Returns the trained model (eval mode)."""
    torch.manual_seed(0)
    plain = HyperpriorCodec(TINY).eval()
    export_package(plain, tmp_path / "plain", "tiny", {"steps": 4, "history": []})
    key = f"{stage}.log_scales"
    kind = "encoder_scales" if stage == "g_a" else "decoder_scales"
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=3, batch=2,
                     crop=64, eval_minutes=0, threads=1, init=str(tmp_path / "plain"),
                     only=(key,), lr=0.05, **{kind: True})
    tr = Trainer(args)
    t = torch.tensor([0.5, 2.0])
    with torch.no_grad():  # scales start at 1: the same function as the fp16 package state
        start = getattr(tr.model, stage)(inp, getattr(tr.model, kind)(t))
        want = getattr(load_model(tmp_path / "plain")[0], stage)(inp)
        np.testing.assert_allclose(start.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.run()
    changed = {n for n, p in tr.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {key}
    return tr.model.eval()


def test_level_conditioned_encoder_exports_and_codes(image_folder, tmp_path):
    """g_a with per-level scales: starts as the plain model, trains alone (--only), exports a
    second ONNX input that the codec feeds per quality, and round-trips through a file."""
    pytest.importorskip("onnx")
    from aecodec.codec import Codec
    from aecodec.model_package import load

    model = _scales_trained_alone(image_folder, tmp_path, "g_a", torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        model.g_a.log_scales.normal_(0, 0.3)  # clearly level-dependent
    cond = tmp_path / "pkgs" / "tiny-cond"
    export_package(model, cond, "tiny-cond", {"steps": 7, "history": []})
    pkg = load(str(cond))
    for q in (0.0, 37.5, 100.0):
        t = torch.full((1,), q / 100 * (model.levels - 1))
        want = model.encoder_scales(t)[0].detach().numpy()
        np.testing.assert_allclose(pkg.encoder_scales(q), want, rtol=1e-5)
    codec = Codec(str(cond), model_path=[str(cond.parent)])
    img = np.asarray(Image.open(next(image_folder.glob("*.png"))).convert("RGB"))[:64, :64]
    y_lo = codec._engine().transforms.analysis(img, pkg.encoder_scales(0))
    y_hi = codec._engine().transforms.analysis(img, pkg.encoder_scales(100))
    with torch.no_grad():
        xt = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
        y_t = model.g_a(xt, model.encoder_scales(torch.full((1,), model.levels - 1.0)))[0]
    np.testing.assert_allclose(y_hi, y_t.numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(y_lo, y_hi)
    with pytest.raises(ModelPackageError, match="needs level scales"):
        codec._engine().transforms.analysis(img)
    data = codec.compress(img, quality=60)
    assert np.asarray(codec.decompress(data)).shape == img.shape


def test_level_conditioned_decoder_exports_and_decodes(image_folder, tmp_path):
    """g_s with per-level scales: starts as the plain model, trains alone (--only), exports a
    second ONNX input that the decoder feeds from the file's quality, and decodes what torch
    reconstructs."""
    pytest.importorskip("onnx")
    from aecodec.codec import Codec
    from aecodec.model_package import load

    model = _scales_trained_alone(image_folder, tmp_path, "g_s", torch.randn(2, TINY.M, 4, 4))
    with torch.no_grad():
        model.g_s.log_scales.normal_(0, 0.3)  # clearly level-dependent
    cond = tmp_path / "pkgs" / "tiny-dec"
    export_package(model, cond, "tiny-dec", {"steps": 7, "history": []})
    pkg = load(str(cond))
    assert pkg.encoder_scales(50) is None
    for q in (0.0, 37.5, 100.0):
        want = model.decoder_scales(torch.full((1,), q / 100 * (model.levels - 1)))[0]
        np.testing.assert_allclose(pkg.decoder_scales(q), want.detach().numpy(), rtol=1e-5)
    codec = Codec(str(cond), model_path=[str(cond.parent)])
    img = np.asarray(Image.open(next(image_folder.glob("*.png"))).convert("RGB"))[:64, :64]
    xt = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    for q in (10, 90):
        data = codec.compress(img, quality=q)
        got = np.asarray(codec.decompress(data)).astype(int)
        with torch.no_grad():
            x_hat = model(xt, torch.full((1,), q / 100 * (model.levels - 1)), noisy=False)["x_hat"]
        want = np.rint(x_hat[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(int)
        assert np.abs(got - want).max() <= 1  # fp16 h_s and float ties aside, what torch draws
    y_hat = np.zeros((TINY.M, 4, 4), np.float32)
    lo = codec._engine().transforms.synthesis(y_hat + 1, 64, 64, pkg.decoder_scales(0))
    hi = codec._engine().transforms.synthesis(y_hat + 1, 64, 64, pkg.decoder_scales(100))
    assert not np.array_equal(lo, hi)
    with pytest.raises(ModelPackageError, match="needs level scales"):
        codec._engine().transforms.synthesis(y_hat, 64, 64)


def test_cosine_lr_and_sga_temperature_follow_the_budget(image_folder, tmp_path):
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=10, batch=1,
                     crop=64, eval_minutes=0, threads=1, config=TINY.to_dict(), lr=1e-3,
                     lr_final=1e-5, sga=(0.5, 0.05))
    tr = Trainer(args)
    assert tr._lr(tr._progress(0.0, None)) == pytest.approx(1e-3)
    assert tr._tau(tr._progress(0.0, None)) == pytest.approx(0.5)
    tr.session_steps = 5
    half = tr._progress(0.0, None)
    assert tr._lr(half) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert tr._tau(half) == pytest.approx((0.5 * 0.05) ** 0.5)  # exponential: geometric mean
    assert tr._progress(50.0, 60.0) > half  # the budget further along wins
    tr.session_steps = 10
    assert tr._lr(tr._progress(0.0, None)) == pytest.approx(1e-5)
    assert tr._tau(tr._progress(0.0, None)) == pytest.approx(0.05)


def test_warmup_ramps_the_lr_then_follows_the_schedule(image_folder, tmp_path):
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=100, batch=1,
                     crop=64, eval_minutes=0, threads=1, config=TINY.to_dict(), lr=1e-3,
                     warmup_steps=10)
    tr = Trainer(args)
    assert tr._lr(None) == pytest.approx(1e-4)  # first step: 1/10 of the lr
    tr.session_steps = 4
    assert tr._lr(None) == pytest.approx(5e-4)
    tr.session_steps = 50
    assert tr._lr(None) == pytest.approx(1e-3)


def test_level_power_draws_high_rates_more_often(image_folder, tmp_path):
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), batch=1, crop=64,
                     eval_minutes=0, threads=1, config=TINY.to_dict())
    tr = Trainer(args)
    top = tr.model.levels - 1
    torch.manual_seed(0)
    uniform = tr._draw_levels(20000)
    tr.args.level_power = 0.5
    skewed = tr._draw_levels(20000)
    for t in (uniform, skewed):
        assert t.min() >= 0 and t.max() <= top
    assert uniform.mean().item() == pytest.approx(top / 2, rel=0.03)
    assert skewed.mean().item() == pytest.approx(top * 2 / 3, rel=0.03)  # E[u^0.5] = 2/3


def test_sga_training_rounds_stochastically_and_trains_the_encoder(image_folder, tmp_path):
    """With --sga the residual is rounded to a mix of floor and ceil (integers as tau → 0);
    evaluation keeps plain rounding; `--only g_a` with it changes only g_a."""
    torch.manual_seed(0)
    model = HyperpriorCodec(TINY)
    x, t = torch.rand(1, 3, 64, 64), torch.tensor([3.0])
    model.eval()
    with torch.no_grad():
        plain = model(x, t, noisy=False, rate_quant="ste")["bpp"]
        assert torch.equal(model(x, t, noisy=False, rate_quant="ste", sga_tau=0.5)["bpp"], plain)
    model.train()
    with torch.no_grad():  # near-zero temperature: as good as rounding
        cold = model(x, t, rate_quant="ste", sga_tau=1e-4)["bpp"]
        warm = model(x, t, rate_quant="ste", sga_tau=1.0)["bpp"]
    assert cold.item() == pytest.approx(plain.item(), rel=1e-3)
    assert warm.item() != pytest.approx(plain.item(), rel=1e-3)

    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=3, batch=2,
                     crop=64, eval_minutes=0, threads=1, config=TINY.to_dict(), lr=1e-2,
                     only=("g_a",), sga=(0.5, 0.1), rate_quant="ste")
    tr = Trainer(args)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.run()
    changed = {n for n, p in tr.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("g_a.") for n in changed)


@pytest.mark.parametrize("on_device", [False, True])
def test_crops_come_in_all_eight_orientations(tmp_path, on_device):
    from aecodec.train.data import CropDataset

    img = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)  # every pixel distinct
    Image.fromarray(img).save(tmp_path / "one.png")
    ds = CropDataset(tmp_path, crop=6, seed=1)
    chw = img.transpose(2, 0, 1)
    orientations = {
        np.ascontiguousarray(o).tobytes()
        for k in range(4)
        for o in (np.rot90(chw, k, axes=(1, 2)), np.rot90(chw, k, axes=(1, 2))[:, ::-1])
    }
    assert len(orientations) == 8
    if on_device:
        ds.to_device("cpu")
        crops = (ds.batch_tensor(200, "cpu") * 255).round().to(torch.uint8).numpy()
    else:
        crops = ds.batch(200)
    seen = {np.ascontiguousarray(c).tobytes() for c in crops}
    assert seen == orientations  # nothing else, and every one of them drawn


def test_widened_latent_computes_the_same_and_its_new_channels_learn(image_folder, tmp_path):
    """--latent-channels from --init adds channels that leave bits and image unchanged, and the
    straight-through gradient reaches g_a's new rows through g_s's new inputs."""
    torch.manual_seed(0)
    small = HyperpriorCodec(TINY).eval()
    pkg = tmp_path / "pkg.pt"
    torch.save({"state_dict": small.state_dict(), "config": TINY.to_dict()}, pkg)
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=2, batch=2,
                     crop=64, eval_minutes=0, threads=1, init=str(pkg), latent_channels=20,
                     rate_quant="ste", lr=1e-3)
    tr = Trainer(args)
    wide = tr.model.eval()
    assert wide.cfg.M == 20 and wide.log_gains.shape == (len(TINY.lambdas), 20)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for t in (0.0, len(TINY.lambdas) - 1.0):
            a = small(x, torch.tensor([t]), noisy=False, rate_quant="ste")
            b = wide(x, torch.tensor([t]), noisy=False, rate_quant="ste")
            assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)
            assert b["bpp"].item() == pytest.approx(a["bpp"].item(), rel=1e-3)
    new_rows = wide.g_a[-1].weight[TINY.M:].detach().clone()
    wide.train()
    tr.run()
    assert not torch.equal(tr.model.g_a[-1].weight[TINY.M:], new_rows)
    with pytest.raises(ValueError, match="must grow"):
        Trainer(TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run2"), steps=1,
                          init=str(pkg), latent_channels=TINY.M - 2, threads=1))


def test_device_crops_are_the_drawn_crops(tmp_path):
    """The one-shot gather of a GPU run cuts, flips and transposes exactly as drawn."""
    from aecodec.train.data import CropDataset

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.png")
    ds = CropDataset(tmp_path, crop=8, seed=1)
    ds.to_device("cpu")
    idx, ys, xs = rng.integers(3, size=64), rng.integers(13, size=64), rng.integers(17, size=64)
    orient = rng.random((64, 3)) < 0.5
    got = ds._gather(torch.from_numpy(idx), ys, xs, orient).numpy()
    for b in range(64):
        c = ds.images[idx[b]][ys[b]:ys[b] + 8, xs[b]:xs[b] + 8].transpose(2, 0, 1)
        c = c[:, :, ::-1] if orient[b, 0] else c
        c = c[:, ::-1] if orient[b, 1] else c
        c = c.transpose(0, 2, 1) if orient[b, 2] else c
        assert np.array_equal(got[b], c), b


def test_bf16_transforms_train_and_estimate_close_to_fp32(image_folder, tmp_path):
    """--amp bf16 (GPU runs): g_a and g_s under autocast, the rate in float32."""
    torch.manual_seed(0)
    model = HyperpriorCodec(TINY).eval()
    x, t = torch.rand(2, 3, 64, 64), torch.tensor([0.0, 9.0])
    with torch.no_grad():
        ref = model(x, t, noisy=False, rate_quant="ste")
        amp = model(x, t, noisy=False, rate_quant="ste", amp_dtype=torch.bfloat16)
    assert amp["x_hat"].dtype == torch.float32 and amp["bpp"].dtype == torch.float32
    assert torch.allclose(amp["x_hat"], ref["x_hat"], atol=0.05)
    assert not torch.equal(amp["x_hat"], ref["x_hat"])  # autocast did run the transforms
    args = TrainArgs(data=str(image_folder), run_dir=str(tmp_path / "run"), steps=2, batch=2,
                     crop=64, eval_minutes=0, threads=1, config=TINY.to_dict(), amp="bf16")
    tr = Trainer(args)
    assert np.isfinite(tr.step(1e-4)["loss"])
