"""Exact decoding (design §2): committed .aec files decode to recorded latent symbols, everywhere.

tests/data/golden.aec (format version 1), golden-v2.aec (version 2) and golden-v3.aec (version 3,
the one written now; its HEAD says a half turn) were written by tests/data/make_golden.py with the
tiny test model tests/data/models/golden-tiny (so retraining the shipped model does not touch
them). All hold the same latent symbols; those and the exact hyper-synthesis output are recorded
in tests/data/golden.json; they must not depend on the machine, the instruction set, the thread
count or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aecodec

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden.aec"
GOLDEN_V2 = DATA / "golden-v2.aec"
GOLDEN_V3 = DATA / "golden-v3.aec"
RECORD = json.loads((DATA / "golden.json").read_text())


def symbol_hash(z_hat, s) -> str:
    h = hashlib.sha256()
    for a in (z_hat, s):
        h.update(np.ascontiguousarray(a, dtype="<i4").tobytes())
    return h.hexdigest()


def hyper_hash(mu, index) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mu, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(index, dtype="<i4").tobytes())
    return h.hexdigest()


def golden_codec(threads: int = 0) -> aecodec.Codec:
    return aecodec.Codec("golden-tiny", model_path=[DATA / "models"], threads=threads)


def test_golden_files_are_the_recorded_ones():
    assert hashlib.sha256(GOLDEN.read_bytes()).hexdigest() == RECORD["sha256_of_file"]
    assert hashlib.sha256(GOLDEN_V2.read_bytes()).hexdigest() == RECORD["sha256_of_v2_file"]
    assert hashlib.sha256(GOLDEN_V3.read_bytes()).hexdigest() == RECORD["sha256_of_v3_file"]


@pytest.mark.parametrize("path, major", [(GOLDEN, 1), (GOLDEN_V2, 2), (GOLDEN_V3, 3)],
                         ids=["v1", "v2", "v3"])
def test_golden_symbols_match_the_record(path, major):
    header, z_hat, s = golden_codec().decode_latents(path)
    assert header.version[0] == major
    assert header.n_slices == RECORD["slices"] > 1
    assert list(z_hat.shape) == RECORD["z_shape"] and list(s.shape) == RECORD["y_shape"]
    assert symbol_hash(z_hat, s) == RECORD["latent_symbol_sha256"]


def test_golden_hyper_synthesis_is_bit_exact():
    codec = golden_codec()
    _, z_hat, _ = codec.decode_latents(GOLDEN)
    mu, index = codec._hyper_synthesis(codec._engine(), z_hat)
    assert hyper_hash(mu, index) == RECORD["hyper_synthesis_sha256"]


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_symbols_do_not_depend_on_thread_count(threads):
    codec = golden_codec(threads)
    _, z_hat, s = codec.decode_latents(GOLDEN)
    assert symbol_hash(z_hat, s) == RECORD["latent_symbol_sha256"]
    mu, index = codec._hyper_synthesis(codec._engine(), z_hat)
    assert hyper_hash(mu, index) == RECORD["hyper_synthesis_sha256"]


def test_symbols_do_not_depend_on_instruction_set(tmp_path):
    """The core picks SSE2/AVX2/AVX-512 at run time; forcing the lowest gives the same result."""
    script = (
        "import sys, json, hashlib, numpy as np, aecodec\n"
        "c = aecodec.Codec('golden-tiny', model_path=[sys.argv[1]])\n"
        "h, z, s = c.decode_latents(sys.argv[2])\n"
        "d = hashlib.sha256(); [d.update(np.ascontiguousarray(a, dtype='<i4').tobytes()) "
        "for a in (z, s)]\n"
        "print(d.hexdigest())\n")
    env = dict(os.environ, AECODEC_CORE_ISA="sse2")
    out = subprocess.run([sys.executable, "-c", script, str(DATA / "models"), str(GOLDEN)],
                         env=env, capture_output=True, text=True, timeout=120, check=True,
                         cwd=tmp_path)  # not the checkout: import the installed aecodec
    assert out.stdout.strip() == RECORD["latent_symbol_sha256"]


def test_golden_decodes_to_an_image():
    im = golden_codec().decompress(GOLDEN)
    assert im.size == (200, 120) and im.mode == "RGB"
    assert np.array_equal(np.asarray(im), np.asarray(golden_codec().decompress(GOLDEN_V2)))
    # The same streams with orientation 2: the decoder turns the image back by half a turn.
    turned = golden_codec().decompress(GOLDEN_V3)
    assert RECORD["v3_orientation"] == 2 and turned.size == (200, 120)
    assert np.array_equal(np.asarray(turned), np.asarray(im)[::-1, ::-1])


def test_writer_is_stable():
    """The v3 bytes of the golden streams never change (a reader of them may be anywhere)."""
    from aecodec import container

    f = container.parse(GOLDEN_V3.read_bytes())
    assert f.header.orientation == RECORD["v3_orientation"]
    assert f.to_bytes() == GOLDEN_V3.read_bytes()


def test_a_file_needs_the_model_that_wrote_it(monkeypatch):
    monkeypatch.delenv("AECODEC_MODEL_PATH", raising=False)
    with pytest.raises(aecodec.ModelNotFoundError, match="golden-tiny"):
        aecodec.Codec().decompress(GOLDEN)
