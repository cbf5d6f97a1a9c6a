"""Training loop: resumable, wall-clock budgeted, EMA of weights, periodic Kodak evaluation."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import CropDataset, load_eval_images
from .evaluate import estimate
from .networks import (
    Config,
    HyperpriorCodec,
    interpolate_levels,
    level_split,
    psnr,
    regrid_log_gains,
)
from .widen import widen_latent


@dataclass
class TrainArgs:
    """Options of `aecodec train` (see cli.py for their help texts)."""

    data: str = "../shared/data/train"
    eval_data: str = "../shared/data/kodak"
    run_dir: str = "runs/default"
    init: str | None = None  # a model package folder or state.pt to start from
    minutes: float | None = None
    steps: int | None = None
    batch: int = 3  # per pixel 1.38× faster than batch 4 at 256² on 2 cores (training.md)
    crop: int = 256  # whole training crops: at 128² the hyper-latent is all padding (training.md)
    lr: float = 5e-4
    lr_final: float | None = None  # cosine decay to this over --minutes or --steps
    warmup_steps: int = 0  # lr rises linearly over this session's first N steps
    ema: float = 0.999
    eval_minutes: float = 20.0
    eval_images: int = 4
    save_minutes: float = 5.0
    device: str = "cpu"
    threads: int | None = None
    compile: bool = False
    seed: int = 0
    data_limit: int | None = None
    rate_quant: str = "noise"  # "noise" or "ste": what the rate term sees (networks.forward)
    level_balance: bool = True  # weight each sample by 1 / running loss of its level
    config: dict | None = None  # architecture of a new run (default: Config())
    lambdas: tuple | None = None  # rate levels of a new run (from --init: its gains re-gridded)
    encoder_scales: bool = False  # a new run gets level-conditioned g_a (networks.Analysis)
    decoder_scales: bool = False  # a new run gets level-conditioned g_s (networks.Synthesis)
    only: tuple | None = None  # train only parameters whose names start with one of these
    sga: tuple | None = None  # (start, end) SGA temperature of the residual's rounding, or None
    level_power: float = 1.0  # level positions drawn as (L − 1)·u^P: P < 1 favours high rates
    latent_channels: int | None = None  # a new run from --init gets M widened to this (widen.py)
    amp: str | None = None  # "bf16": g_a and g_s under bf16 autocast (networks.forward)


def load_state_file(path: str | Path, use_ema: bool = True) -> tuple[Config, dict, dict]:
    """(config, state_dict, provenance) from a model name (the installed package of that name:
    the default model for hyperprior-mse), a package folder (rebuilt from its files), a
    state.pt (a GPU job's fp16 weights), or a run's folder or last.ckpt (its EMA weights, or
    the raw ones if not use_ema, in full precision)."""
    from ..model_package import MANIFEST_FILE, find

    path = Path(path)
    if not path.exists() and len(path.parts) == 1:  # a model name: its installed package
        path = find(str(path))
    if (path.is_dir() and (path / MANIFEST_FILE).exists()
            and not (path / "state.pt").exists()):
        from .export import package_state

        state, manifest = package_state(path)
        return Config.from_dict(manifest["architecture"]), state, manifest.get("provenance", {})
    if path.is_dir():
        path = path / ("last.ckpt" if (path / "last.ckpt").exists() else "state.pt")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if "ema" in blob:  # a run's checkpoint: full precision
        state = blob["ema" if use_ema else "model"]
    else:  # a package's fp16 state
        state = {k: v.float() for k, v in blob["state_dict"].items()}
    return Config.from_dict(blob["config"]), state, blob.get("provenance", {})


# Per-level channel scales of g_a and g_s: a run from --init may add them (they start at 1).
LEVEL_SCALES = ("g_a.log_scales", "g_s.log_scales")


class Trainer:
    """Owns the model, its EMA, the optimizer and the run directory."""

    def __init__(self, args: TrainArgs) -> None:
        self.args = args
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.run_dir = Path(args.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.run_dir / "last.ckpt"
        self.provenance = {"steps": 0, "wall_seconds": 0.0, "history": []}
        init_state, blob = None, None
        if self.ckpt.exists():  # a resumed run keeps its own architecture and levels
            blob = torch.load(self.ckpt, map_location=args.device, weights_only=True)
            cfg = Config.from_dict(blob["config"])
        else:  # a new run: architecture from --init or config, then --lambdas
            cfg = Config.from_dict(args.config) if args.config else Config()
            if args.init:
                cfg, init_state, prov = load_state_file(args.init)
                self.provenance = {**self.provenance, **prov}
            if args.lambdas and tuple(args.lambdas) != tuple(cfg.lambdas):
                if init_state is not None:
                    for key in ("log_gains", *LEVEL_SCALES):
                        if key in init_state:
                            init_state[key] = regrid_log_gains(
                                init_state[key], cfg.lambdas, tuple(args.lambdas))
                cfg = replace(cfg, lambdas=tuple(args.lambdas))
            if args.encoder_scales:
                cfg = replace(cfg, encoder_scales=True)
            if args.decoder_scales:
                cfg = replace(cfg, decoder_scales=True)
            if args.latent_channels and args.latent_channels != cfg.M:
                if init_state is None:
                    cfg = replace(cfg, M=args.latent_channels)
                else:
                    cfg, init_state = widen_latent(cfg, init_state, args.latent_channels,
                                                   seed=args.seed)
        self.model = HyperpriorCodec(cfg).to(args.device)
        if init_state is not None:
            missing, unexpected = self.model.load_state_dict(init_state, strict=False)
            if unexpected or set(missing) - set(LEVEL_SCALES):  # only new scales start fresh
                raise ValueError(f"--init {args.init} does not fit this architecture: missing "
                                 f"{missing}, unexpected {unexpected}")
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.Adam(self._trainable(), lr=args.lr)
        self.data = CropDataset(args.data, args.crop, limit=args.data_limit, seed=args.seed)
        if args.device != "cpu":
            self.data.to_device(args.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.session_steps = 0
        self.session_seconds = 0.0
        self.level_loss: torch.Tensor | None = None  # running loss of each level
        if blob is not None:
            self._resume(blob)
        self.step_fn = torch.compile(self.model) if args.compile else self.model
        self._stop = False
        # Called after every checkpoint (periodic and final): a GPU job copies weights out
        # with it, so a run killed at its time limit still returns them.
        self.on_save: Callable[[Trainer], None] | None = None

    def _trainable(self) -> list[torch.nn.Parameter]:
        """The parameters this run trains (--only: names with one of the given prefixes)."""
        named = list(self.model.named_parameters())
        if not self.args.only:
            return [p for _, p in named]
        keep = [p for n, p in named if n.startswith(tuple(self.args.only))]
        if not keep:
            raise ValueError(f"--only {','.join(self.args.only)} matches no parameter; names "
                             f"start with {sorted({n.split('.')[0] for n, _ in named})}")
        for n, p in named:
            p.requires_grad_(n.startswith(tuple(self.args.only)))
        return keep

    # -- state ------------------------------------------------------------------------------
    def _resume(self, blob: dict) -> None:
        self.model.load_state_dict(blob["model"])
        self.ema.load_state_dict(blob["ema"])
        self.opt.load_state_dict(blob["opt"])
        self.provenance = blob["provenance"]
        self.data.set_state(blob["data_rng"])
        if blob.get("level_loss") is not None:
            self.level_loss = blob["level_loss"].to(self.args.device)
        torch.set_rng_state(blob["torch_rng"].cpu())  # map_location moved it
        tqdm.write(f"resumed {self.ckpt} at step {self.provenance['steps']}")

    def save(self) -> None:
        """Atomically write the full training state (model, EMA, optimizer, RNGs)."""
        blob = {
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(), "provenance": self.provenance,
            "data_rng": self.data.state(), "torch_rng": torch.get_rng_state(),
            "config": self.model.cfg.to_dict(), "level_loss": self.level_loss,
        }
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, self.ckpt)
        if self.on_save is not None:
            self.on_save(self)

    def _log(self, record: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- loop -------------------------------------------------------------------------------
    def _progress(self, elapsed: float, budget: float | None) -> float | None:
        """How far this session is, 0 … 1: the fraction of the wall-clock budget or of the step
        count spent, whichever is further along (None without either)."""
        fracs = [elapsed / budget] if budget else []
        if self.args.steps:
            fracs.append(self.session_steps / self.args.steps)
        return min(1.0, max(fracs)) if fracs else None

    def _lr(self, frac: float | None) -> float:
        """The cosine schedule's lr (a constant --lr without --lr-final), ramped up linearly
        over the session's first --warmup-steps: a run from a package starts with a fresh Adam,
        whose first steps move every weight by ~lr whatever its gradient (training.md)."""
        a = self.args
        lr = a.lr
        if a.lr_final is not None and frac is not None:
            lr = a.lr_final + 0.5 * (a.lr - a.lr_final) * (1 + math.cos(math.pi * frac))
        if a.warmup_steps:
            lr *= min(1.0, (self.session_steps + 1) / a.warmup_steps)
        return lr

    def _tau(self, frac: float | None) -> float | None:
        """SGA temperature (--sga START,END), annealed exponentially over the session."""
        if self.args.sga is None:
            return None
        start, end = self.args.sga
        return start * (end / start) ** (frac or 0.0)

    def step(self, lr: float, sga_tau: float | None = None) -> dict:
        """One optimisation step on a random batch at random continuous rate levels."""
        a, m = self.args, self.model
        for g in self.opt.param_groups:
            g["lr"] = lr
        x = self.data.batch_tensor(a.batch, a.device)
        t = self._draw_levels(a.batch)
        amp = {None: None, "bf16": torch.bfloat16}[a.amp]
        out = self.step_fn(x, t, rate_quant=a.rate_quant, sga_tau=sga_tau, amp_dtype=amp)
        mse = ((out["x_hat"] - x) ** 2).mean((1, 2, 3))
        per_sample = out["bpp"] + m.lmbda(t) * 255**2 * mse
        loss = per_sample.mean()
        objective = (per_sample * self._level_weights(t, per_sample.detach())).mean()
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], 1.0)
        self.opt.step()
        self._update_ema()
        return {"loss": loss.item(), "bpp": out["bpp"].mean().item(), "mse": mse.mean().item()}

    def _draw_levels(self, size: int) -> torch.Tensor:
        """Continuous level positions in [0, levels − 1]: uniform, or skewed up by --level-power."""
        u = torch.rand(size, device=self.args.device)
        return u ** self.args.level_power * (self.model.levels - 1)

    @torch.no_grad()
    def _level_weights(self, t: torch.Tensor, per_sample: torch.Tensor) -> torch.Tensor:
        """Per-sample weights that give every rate level the same share of the gradient.

        R + λD grows ~10× from the lowest to the highest λ, so an unweighted mean lets the
        high-rate samples steer the shared transforms and the low rates drift (measured: level
        0's loss rose 0.54 → 0.88 while the batch loss fell). Each sample is divided by the
        running loss at its level (log-interpolated between levels); the geometric mean
        of those running means keeps the objective's scale, hence the learning rate's meaning.
        """
        levels = self.model.levels
        k, f = level_split(t, levels)
        if self.level_loss is None:  # first step: every level starts at this batch's mean
            self.level_loss = per_sample.mean().repeat(levels)
        # A running least-squares fit of log-loss, piecewise linear in t (so the end levels,
        # seen from one side only, are not biased): each sample's log error moves its two
        # neighbouring levels by their interpolation weights.
        log_ref = self.level_loss.log()
        err = per_sample.clamp(min=1e-9).log() - interpolate_levels(log_ref, t)
        share = torch.zeros(levels, device=t.device)
        pull = torch.zeros(levels, device=t.device)
        for idx, wgt in ((k, 1 - f), (k + 1, f)):
            share.index_add_(0, idx, wgt)
            pull.index_add_(0, idx, wgt * err)
        rate = (0.02 * share).clamp(max=1.0)
        self.level_loss = torch.exp(log_ref + rate * pull / share.clamp(min=1e-12))
        if not self.args.level_balance:
            return torch.ones_like(t)
        log_ref = self.level_loss.log()
        return torch.exp(log_ref.mean() - interpolate_levels(log_ref, t))

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Short warm-up so a fresh run's EMA is not dominated by its random init.
        d = min(self.args.ema, (1 + self.provenance["steps"]) / (10 + self.provenance["steps"]))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p, 1 - d)

    def _request_stop(self, *_):
        self._stop = True

    def run(self) -> dict:
        """Train until the step count or the wall-clock budget is reached, or until Ctrl-C."""
        a = self.args
        old = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        budget = a.minutes * 60 if a.minutes else None
        evals = load_eval_images(a.eval_data, a.eval_images) if a.eval_minutes > 0 else []
        start = last_save = last_eval = time.time()
        bar = tqdm(total=a.steps, unit="step", dynamic_ncols=True, mininterval=5)
        smooth = None
        try:
            while not self._stop:
                now = time.time()
                if a.steps is not None and self.session_steps >= a.steps:
                    break
                if budget and now - start >= budget:
                    break
                frac = self._progress(now - start, budget)
                r = self.step(self._lr(frac), self._tau(frac))
                self.provenance["steps"] += 1
                self.session_steps += 1
                smooth = r if smooth is None else {k: 0.98 * smooth[k] + 0.02 * r[k] for k in r}
                bar.update(1)
                bar.set_postfix(loss=f"{smooth['loss']:.3f}", bpp=f"{smooth['bpp']:.3f}",
                                psnr=f"{psnr(smooth['mse']):.2f}", refresh=False)
                if self.provenance["steps"] % 50 == 0:
                    self._log({"step": self.provenance["steps"], "time": time.time(), **smooth})
                now = time.time()
                if evals and now - last_eval >= a.eval_minutes * 60:
                    self._evaluate(evals)
                    last_eval = time.time()
                if now - last_save >= a.save_minutes * 60:
                    self._account(start)
                    self.save()
                    last_save = time.time()
        finally:
            bar.close()
            for s, h in old.items():
                signal.signal(s, h)
            self._account(start)
            self.provenance["history"].append({
                "date": time.strftime("%Y-%m-%d %H:%M"), "device": a.device,
                "steps": self.session_steps, "seconds": round(self.session_seconds, 1),
                "batch": a.batch, "crop": a.crop, "lr": a.lr, "command": " ".join(sys.argv),
            })
            self.save()
        steps_per_s = self.session_steps / max(self.session_seconds, 1e-9)
        tqdm.write(f"stopped at step {self.provenance['steps']} ({steps_per_s:.3f} steps/s); "
                   f"state saved to {self.ckpt}")
        return self.provenance

    def _account(self, start: float) -> None:
        """Add this session's wall time since the last accounting to the provenance."""
        now = time.time()
        since = getattr(self, "_accounted_at", start)
        self.provenance["wall_seconds"] += now - since
        self.session_seconds += now - since
        self._accounted_at = now

    def _evaluate(self, images: list[np.ndarray]) -> None:
        res = estimate(self.ema, images, device=self.args.device)
        ref = self.level_loss
        levels = None if ref is None else [round(v, 4) for v in ref.tolist()]
        self._log({"step": self.provenance["steps"], "eval": res, "level_loss": levels})
        tqdm.write("eval " + "  ".join(f"q{r['quality']}: {r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                                       for r in res))
