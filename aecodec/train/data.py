"""Training data: every image of a folder held in memory, served as random crops in any of
the eight orientations (flips and transposes: natural photos have no preferred one at 256²)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm"}


def list_images(folder: str | Path) -> list[Path]:
    """All image files directly under folder (any format Pillow reads), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"training folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class CropDataset:
    """Decoded RGB images kept as uint8 arrays; `batch()` draws randomly oriented random crops."""

    def __init__(self, folder: str | Path, crop: int, limit: int | None = None, seed: int = 0):
        paths = list_images(folder)[:limit]
        self.crop = crop
        self.images = []
        for p in paths:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
            if min(arr.shape[:2]) >= crop:
                self.images.append(arr)
        if not self.images:
            raise ValueError(f"no image of at least {crop}×{crop} pixels in {folder}")
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int) -> np.ndarray:
        """uint8 array [size, 3, crop, crop] of random crops, randomly flipped and transposed."""
        out = np.empty((size, 3, self.crop, self.crop), dtype=np.uint8)
        for i in range(size):
            img = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(img.shape[0] - self.crop + 1)
            x = self.rng.integers(img.shape[1] - self.crop + 1)
            c = img[y : y + self.crop, x : x + self.crop]
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            if self.rng.random() < 0.5:
                c = c[::-1]
            # crops are square, so a transpose keeps the shape; with the flips it gives all 8
            out[i] = c.transpose(2, 1, 0) if self.rng.random() < 0.5 else c.transpose(2, 0, 1)
        return out

    def to_device(self, device: str) -> None:
        """Keep equal-sized images as one uint8 tensor on `device` and crop there (GPU runs)."""
        import torch

        if len({im.shape for im in self.images}) != 1:
            return
        stack = np.stack(self.images).transpose(0, 3, 1, 2)
        self.gpu_images = torch.from_numpy(np.ascontiguousarray(stack)).to(device)

    def batch_tensor(self, size: int, device: str):
        """float32 [size, 3, crop, crop] in [0, 1] on `device`."""
        import torch

        if getattr(self, "gpu_images", None) is None:
            return torch.from_numpy(self.batch(size)).to(device).float().div_(255)
        imgs = self.gpu_images
        n, _, h, w = imgs.shape
        idx = torch.from_numpy(self.rng.integers(n, size=size))
        ys = self.rng.integers(h - self.crop + 1, size=size)
        xs = self.rng.integers(w - self.crop + 1, size=size)
        orient = self.rng.random((size, 3)) < 0.5  # flip columns, flip rows, transpose
        return self._gather(idx, ys, xs, orient).float().div_(255)

    def _gather(self, idx, ys, xs, orient):
        """uint8 [size, 3, crop, crop]: all crops in one indexing operation (a GPU run would
        otherwise spend a kernel launch or three per crop). Crop b is image idx[b] at (ys[b],
        xs[b]), columns flipped if orient[b, 0], rows if orient[b, 1], then transposed if
        orient[b, 2]: out[i, j] = flipped[j, i]."""
        import torch

        dev, k = self.gpu_images.device, self.crop
        o = torch.from_numpy(orient).to(dev)
        ar = torch.arange(k, device=dev)
        rows = torch.from_numpy(ys).to(dev)[:, None] + torch.where(o[:, 1:2], k - 1 - ar, ar)
        cols = torch.from_numpy(xs).to(dev)[:, None] + torch.where(o[:, 0:1], k - 1 - ar, ar)
        t = o[:, 2, None, None]
        r = torch.where(t, rows[:, None, :], rows[:, :, None])  # [size, k (i), k (j)]
        c = torch.where(t, cols[:, :, None], cols[:, None, :])
        ch = torch.arange(3, device=dev)[None, :, None, None]
        return self.gpu_images[idx.to(dev)[:, None, None, None], ch, r[:, None], c[:, None]]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def load_eval_images(folder: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """Evaluation images (e.g. Kodak) as uint8 HWC RGB arrays."""
    out = []
    for p in list_images(folder)[:limit]:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out
