"""benchmarks/common.py: the warning that the runtime would load another model than the repo's."""

import importlib.util
import json
from pathlib import Path

from aecodec import model_package

_spec = importlib.util.spec_from_file_location(
    "aecodec_bench_common", Path(__file__).resolve().parents[1] / "benchmarks" / "common.py"
)
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def _fake_repo(tmp_path: Path, content_hash: str) -> Path:
    d = tmp_path / "models" / model_package.find().name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"content_hash": content_hash}))
    return tmp_path


def test_stale_model_note_names_both_hashes(tmp_path):
    used = json.loads((model_package.find() / "manifest.json").read_text())["content_hash"]
    other = ("0" if used[0] != "0" else "1") * 64
    note = common.stale_model_note(None, repo=_fake_repo(tmp_path, other))
    assert note is not None and used[:12] in note and other[:12] in note


def test_stale_model_note_silent_when_same(tmp_path):
    used = json.loads((model_package.find() / "manifest.json").read_text())["content_hash"]
    assert common.stale_model_note(None, repo=_fake_repo(tmp_path, used)) is None


def test_stale_model_note_silent_without_repo_package(tmp_path):
    assert common.stale_model_note(None, repo=tmp_path) is None
