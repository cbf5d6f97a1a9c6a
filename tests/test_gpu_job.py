"""The GPU launcher works on a machine with torch but without the compiled core (design §5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the GPU job needs torch")

ROOT = Path(__file__).resolve().parents[1]

# Make `aecodec._core` (and onnxruntime, absent there too) unimportable, then run the launcher.
BLOCK = """
import importlib.abc, runpy, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("aecodec._core", "onnxruntime"):
            raise ImportError(f"{name} is blocked: the GPU machine has no such module")

sys.meta_path.insert(0, Block())
sys.argv = [sys.argv[1], "train", "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_gpu_job_launcher_runs_without_the_core(tmp_path):
    r = subprocess.run([sys.executable, "-c", BLOCK, str(ROOT / "scripts" / "gpu_job.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "--minutes" in r.stdout
    assert "blocked" not in r.stderr
