"""`aecodec train` and `aecodec export` (torch required: pip install "aecodec[train]")."""

from __future__ import annotations

import argparse
import sys

from .train import TrainArgs, Trainer


def train_parser() -> argparse.ArgumentParser:
    d = TrainArgs()
    p = argparse.ArgumentParser(prog="aecodec train", description="Train the hyperprior codec.")
    p.add_argument("--data", default=d.data, help="folder of training images (any Pillow format)")
    p.add_argument("--eval-data", default=d.eval_data, help="folder of evaluation images (Kodak)")
    p.add_argument("--run-dir", default=d.run_dir, help="where the resumable state is kept")
    p.add_argument("--init", default=None,
                   help="model name (e.g. hyperprior-mse: the default package), package folder, "
                        "a GPU job's state.pt, or another run's folder or last.ckpt (its EMA "
                        "weights), to start from when the run is new")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    p.add_argument("--steps", type=int, default=None, help="number of steps this session")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop, help="square crop size in pixels")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-final", type=float, default=None, help="cosine-decay the lr to this")
    p.add_argument("--warmup-steps", type=warmup_steps_value, default=d.warmup_steps, metavar="N",
                   help="raise the lr linearly over this session's first N steps (default 0); "
                        "use ~300 when starting from a package (a fresh Adam)")
    p.add_argument("--ema", type=float, default=d.ema, help="EMA decay of the exported weights")
    p.add_argument("--eval-minutes", type=float, default=d.eval_minutes,
                   help="evaluate on --eval-data every so many minutes (0: never)")
    p.add_argument("--eval-images", type=int, default=d.eval_images)
    p.add_argument("--save-minutes", type=float, default=d.save_minutes)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--rate-quant", choices=("noise", "ste"), default=d.rate_quant,
                   help="rate term on noisy latents, or on rounded ones (straight-through)")
    p.add_argument("--no-level-balance", dest="level_balance", action="store_false",
                   help="plain mean of R + λD over the batch (high rates then dominate)")
    p.add_argument("--lambdas", type=_lambdas, default=None,
                   help="comma-separated increasing λ of a new run's rate levels (default: the "
                        "--init package's or 0.0002…0.0932); from --init, gains are re-gridded")
    p.add_argument("--encoder-scales", action="store_true",
                   help="a new run (from --init) gets per-level channel scales in g_a, starting "
                        "at 1 (networks.Analysis)")
    p.add_argument("--decoder-scales", action="store_true",
                   help="a new run (from --init) gets per-level channel scales in g_s, starting "
                        "at 1 (networks.Synthesis)")
    p.add_argument("--latent-channels", type=_latent_channels, default=None, metavar="M",
                   help="a new run gets M latent channels; from --init, its latent is widened "
                        "without changing what it computes (widen.py); train it without --sga "
                        "first")
    p.add_argument("--only", type=_prefixes, default=None,
                   help="train only the parameters whose names start with one of these "
                        "comma-separated prefixes (e.g. g_a.log_scales); the rest stays fixed")
    p.add_argument("--sga", type=sga_temperatures, default=None, metavar="START,END",
                   help="round the latents by stochastic Gumbel annealing (Yang et al. 2020) at a "
                        "temperature annealed from START to END over the session, instead of "
                        "straight-through (e.g. 0.5,0.1 with --only g_a)")
    p.add_argument("--level-power", type=level_power_value, default=d.level_power, metavar="P",
                   help="draw each sample's level position as (levels − 1)·u^P, u uniform: "
                        "P < 1 trains the high rates more often (default 1: uniform)")
    p.add_argument("--data-limit", type=int, default=None, help="use only the first N images")
    return p


def _prefixes(text: str) -> tuple:
    parts = tuple(v.strip() for v in text.split(",") if v.strip())
    if not parts:
        raise argparse.ArgumentTypeError(f"need at least one parameter-name prefix, got {text!r}")
    return parts


def sga_temperatures(text: str) -> tuple:
    """argparse type of --sga: "START,END" with 0 < END <= START <= 10 (also used by gpu_job)."""
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"need START,END temperatures, got {text!r}") from None
    if not (0 < end <= start <= 10):
        raise argparse.ArgumentTypeError(
            f"need 0 < END <= START <= 10 (annealed downwards), got {text!r}")
    return start, end


def level_power_value(text: str) -> float:
    """argparse type of --level-power: a number in [0.1, 10] (also used by gpu_job)."""
    return _in_range(text, float, 0.1, 10, "P")


def _latent_channels(text: str) -> int:
    return _in_range(text, int, 8, 1024, "M")


def warmup_steps_value(text: str) -> int:
    """argparse type of --warmup-steps: an integer in [0, 10⁶] (also used by gpu_job)."""
    return _in_range(text, int, 0, 1_000_000, "N")


def _in_range(text: str, kind: type, lo: float, hi: float, name: str):
    """text as a `kind` (int or float) with lo <= value <= hi, or an argparse error naming both."""
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"need {lo} <= {name} <= {hi}, got {text!r}")
    return value


def _lambdas(text: str) -> tuple:
    try:
        lam = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if len(lam) < 2 or any(b <= a for a, b in zip(lam, lam[1:])) or lam[0] <= 0:
        raise argparse.ArgumentTypeError(f"need at least two increasing positive λ, got {text!r}")
    return lam


def train_main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    if args.minutes is None and args.steps is None:
        print("aecodec train: give --minutes or --steps", file=sys.stderr)
        return 2
    Trainer(TrainArgs(**vars(args))).run()
    return 0


def export_main(argv: list[str] | None = None) -> int:
    from .export import export_parser, run_export

    return run_export(export_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(train_main())
