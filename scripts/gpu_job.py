"""Launcher of aecodec.train.gpu_job (design §5) for the GPU machine, run from the checkout.

That machine has torch but neither our compiled core nor an installed aecodec: importing
aecodec (and aecodec.train) loads neither `_core` nor onnxruntime, so the checkout's package
only has to be on the path (tests/test_gpu_job.py checks this without the core).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aecodec.train.gpu_job import main  # noqa: E402

sys.exit(main())
