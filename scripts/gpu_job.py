"""Launcher for aecodec.train.gpu_job that works without the native core being built.

The device has torch but not our compiled extension: register `aecodec` as a bare namespace so
importing aecodec.train does not run aecodec/__init__.py (which loads the runtime and its core).
"""

import sys
import types
from pathlib import Path

root = Path(__file__).resolve().parents[1]
pkg = types.ModuleType("aecodec")
pkg.__path__ = [str(root / "aecodec")]
sys.modules["aecodec"] = pkg

from aecodec.train.gpu_job import main  # noqa: E402

sys.exit(main())
