"""scripts/cuda_check.py, the prepared check for a CUDA machine (issue: CUDA decode stays exact),
kept working here by running it on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cuda_check.py"


def test_cuda_check_runs_on_the_cpu_and_checks_every_golden_file(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--images", "0",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    record = json.loads((SCRIPT.parents[1] / "tests/data/model-golden/record.json").read_text())
    assert {g["model"] for g in report["golden"]} == set(record)
    assert all(g["symbols_identical"] and g["max_pixel_difference"] <= 1
               for g in report["golden"])
    assert report["device"] == "cpu" and report["decode"] == []
