"""The ONNX export cache: written atomically, used only when whole and its hash is the one recorded, rebuilt when
damaged or stale (a graph of other weights is caught by the probe and made again), never the user's folder in tests,
and never a reason for a run to fail."""

from __future__ import annotations

import json
import os

import pytest
import torch
from cli_helpers import within
from runtime_models import SmallCNN, trained

from DiDALib.runtime import RuntimeRequest
from DiDALib.runtime.cache import CACHE_ENV, OnnxCache, cache_folder, package_digest
from DiDALib.runtime.choose import choose_runtime
from DiDALib.runtime.context import BuildContext

pytest.importorskip("onnxruntime")


def _package(tmp_path, text="weights v1"):
    folder = tmp_path / "package"
    folder.mkdir(exist_ok=True)
    (folder / "model.json").write_text("{}")
    (folder / "model.safetensors").write_text(text)
    return folder


def _probe() -> torch.Tensor:
    return torch.rand((6, 1, 32, 32), generator=torch.Generator().manual_seed(1))


def _choose(model, package, name="onnxruntime"):
    model.eval()

    def reference(x):
        return model(x)

    return choose_runtime(RuntimeRequest(name, package), model, reference, _probe(), "logits",
                          torch.device("cpu"), torch.float32, passes=10_000)


def test_the_cache_is_the_tests_own_folder(_dida_cache):
    assert cache_folder() == _dida_cache
    assert CACHE_ENV == "DIDA_CACHE_DIR"


def test_entries_round_trip_and_damage_is_never_trusted(tmp_path):
    cache = OnnxCache(tmp_path / "onnx")
    path = cache.put("k1", b"graph bytes", {"exporter": "test"})
    assert cache.get("k1") == path and path.read_bytes() == b"graph bytes"
    assert not [p for p in cache.folder.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    path.write_bytes(b"graph bytez")  # damaged after it was written
    assert cache.get("k1") is None
    cache.put("k1", b"graph bytes")
    record = cache.folder / "k1.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "key": "k2"}))  # a record that is not this entry's
    assert cache.get("k1") is None
    record.write_text("{not json")
    assert cache.get("k1") is None
    assert cache.get("missing") is None
    left = cache.folder / ".k3.onnx.abc.tmp"  # what a run killed mid-write leaves
    left.write_bytes(b"half")
    os.utime(left, (0, 0))
    fresh = cache.folder / ".k4.onnx.def.tmp"  # another run's, being written now
    fresh.write_bytes(b"half")
    cache.put("k5", b"graph")
    assert not left.exists() and fresh.exists()


def test_the_package_digest_follows_every_file(tmp_path):
    folder = _package(tmp_path)
    first = package_digest(folder)
    assert package_digest(folder / "model.json") == first  # the file names its folder
    (folder / "model.safetensors").write_text("weights v2")
    assert package_digest(folder) != first


def test_an_export_is_made_once_then_read_from_the_cache(tmp_path, _dida_cache):
    model, package = trained(SmallCNN()), _package(tmp_path)
    first = _choose(model, package)
    assert first.name == "onnxruntime" and "exported to ONNX by torch's" in first.reason
    assert str(_dida_cache) in first.reason
    second = _choose(model, package)
    assert second.name == "onnxruntime" and "came from the cache" in second.reason


def test_a_corrupt_entry_is_rebuilt(tmp_path):
    model, package = trained(SmallCNN()), _package(tmp_path)
    context = BuildContext(model.eval(), _probe()[:1], package)
    path = context.onnx_file()
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated, as by a full disk
    again = BuildContext(model, _probe()[:1], package)
    assert again.onnx_file() == path and not again.from_cache  # made again, in place
    assert OnnxCache().get(path.stem) == path


def test_a_stale_entry_is_caught_by_the_probe_and_rebuilt(tmp_path):
    """The package's content did not change but the cache holds a graph of other weights (a package edited while
    it was loaded, a hand-made file with a matching record): the probe tells, the export is made again."""
    package = _package(tmp_path)
    old, new = trained(SmallCNN(), seed=1), trained(SmallCNN(), seed=2)
    assert _choose(old, package).name == "onnxruntime"  # caches old's graph under the package's key
    choice = _choose(new, package)
    assert choice.name == "onnxruntime" and "exported to ONNX" in choice.reason
    assert choice.exactness["onnxruntime"] <= 1e-4
    assert "came from the cache" in _choose(new, package).reason  # new's graph replaced it


def test_a_cache_folder_that_cannot_be_written_is_no_failure(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    choice = _choose(trained(SmallCNN()), _package(tmp_path))
    assert choice.name == "onnxruntime" and "kept in" not in choice.reason


@pytest.mark.parametrize("hostile", ["record a FIFO", "graph a FIFO", "graph a link to /dev/zero",
                                     "graph a link to a user's file", "record a link to a user's file"])
def test_a_hostile_entry_is_never_opened(tmp_path, hostile):
    """DiDA writes its entries as plain files: anything else in their place (a named pipe, which would block a run
    for ever, a link to a device that never ends, a link to a file DiDA did not write, even one whose hash the
    record names) is no entry: never read through, never handed to a runtime."""
    cache = OnnxCache(tmp_path / "onnx")
    graph, record = cache.put("k1", b"graph bytes"), cache.folder / "k1.json"
    user = tmp_path / ("notes.json" if hostile.startswith("record") else "notes.onnx")
    user.write_bytes(record.read_bytes() if hostile.startswith("record") else b"graph bytes")
    target = record if hostile.startswith("record") else graph
    target.unlink()
    if "FIFO" in hostile:
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero" if "zero" in hostile else user)
    assert within(5, lambda: cache.get("k1")) is None
    assert user.read_bytes()  # and the user's file is still there


def test_only_the_caches_own_leftovers_are_swept(tmp_path):
    """A killed run's temporary files are removed by their name's full pattern; a user's hidden .tmp file in the
    folder is not DiDA's (nothing DiDA did not write is deleted)."""
    cache = OnnxCache(tmp_path / "onnx")
    cache.folder.mkdir()
    mine = cache.folder / ".draft.tmp"
    mine.write_text("the user's")
    os.utime(mine, (0, 0))
    cache.put("k1", b"graph")
    assert mine.read_text() == "the user's"
