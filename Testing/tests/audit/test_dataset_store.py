"""The audit's items (ImageFolder, CSV, OCT files; stratified sampling) and its store (a transaction per batch,
each item recorded once, a full disk reported as such and nothing of the batch kept)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from cli_helpers import within
from PIL import Image

from DiDALib.audit.dataset import DatasetError, Item, ItemReader, list_items, sample_items
from DiDALib.audit.explain import ItemRecord
from DiDALib.audit.store import AuditStore
from DiDALib.io.volume import OCTReadError


def png(path, value=100, shape=(20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def test_an_image_folder_lists_every_image_below_its_label_folders(tmp_path):
    png(tmp_path / "CNV" / "a.png")
    png(tmp_path / "CNV" / "sub" / "b.jpg")
    png(tmp_path / "NORMAL" / "c10.png")
    png(tmp_path / "NORMAL" / "c9.png")
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    (tmp_path / "NORMAL" / ".hidden.png").write_bytes(b"")
    (tmp_path / "README.md").write_text("the dataset's readme")
    (tmp_path / "manifest.csv").write_text("path,class\n")
    (tmp_path / "NORMAL" / "broken.png").write_bytes(b"not a png at all")
    items, layout = list_items(tmp_path)
    assert layout == "image-folder"
    assert [(i.id, i.label) for i in items] == [
        ("CNV/a.png", "CNV"), ("CNV/sub/b.jpg", "CNV"), ("NORMAL/broken.png", "NORMAL"),
        ("NORMAL/c9.png", "NORMAL"), ("NORMAL/c10.png", "NORMAL")]
    read = ItemReader()
    assert read(items[0]).shape == (20, 30)
    with pytest.raises(OCTReadError, match="broken.png"):
        read(items[2])  # listed without being opened; its failure is the audit's to record



def test_what_is_no_file_is_never_opened(tmp_path):
    """A named pipe among the images (opening it, e.g. to count a TIFF's pages, blocks for ever) or a link to a
    device is no B-scan: left out as the folder-of-OCT-files layout leaves it; a dataset that is itself a pipe is
    refused, naming what it is."""
    png(tmp_path / "CNV" / "a.png")
    png(tmp_path / "NORMAL" / "b.png")
    os.mkfifo(tmp_path / "CNV" / "pipe.tif")
    os.mkfifo(tmp_path / "NORMAL" / "pipe.png")
    (tmp_path / "NORMAL" / "zero.png").symlink_to("/dev/zero")
    items, layout = within(5, lambda: list_items(tmp_path))
    assert layout == "image-folder" and [i.id for i in items] == ["CNV/a.png", "NORMAL/b.png"]
    os.mkfifo(tmp_path / "data")
    with pytest.raises(DatasetError, match="named pipe"):
        within(5, lambda: list_items(tmp_path / "data"))

def test_a_csv_and_a_folder_of_oct_files(tmp_path):
    import SimpleITK as sitk

    png(tmp_path / "img" / "x.png")
    (tmp_path / "list.csv").write_text("path,label\nimg/x.png,drusen\nimg/missing.png,normal\nimg/x.png\n")
    with pytest.raises(DatasetError, match="more than once"):
        list_items(tmp_path / "list.csv")
    (tmp_path / "list.csv").write_text("img/x.png,drusen\nimg/missing.png,normal\n")
    items, layout = list_items(tmp_path / "list.csv")
    assert layout == "csv" and [i.label for i in items] == ["drusen", "normal"]
    assert items[1].error and "no such file" in items[1].error
    (tmp_path / "bad.csv").write_text("a,b,c\n")
    with pytest.raises(DatasetError, match="3 columns"):
        list_items(tmp_path / "bad.csv")
    oct_dir = tmp_path / "oct"
    oct_dir.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).random((3, 16, 24)).astype(np.float32)),
                    str(oct_dir / "vol.nrrd"))
    png(oct_dir / "one.png")
    items, layout = list_items(oct_dir)
    assert layout == "oct-files"
    assert [i.id for i in items] == ["one.png", "vol.nrrd#b000", "vol.nrrd#b001", "vol.nrrd#b002"]
    assert all(i.label is None for i in items)
    read = ItemReader()
    assert read(items[2]).shape == (16, 24) and read(items[3]).shape == (16, 24)
    with pytest.raises(DatasetError, match="no such file"):
        list_items(tmp_path / "nowhere")


def test_sampling_is_stratified_and_reproducible():
    items = [Item(f"a{i}", "", 0, "A") for i in range(30)] + [Item(f"b{i}", "", 0, "B") for i in range(10)]
    s = sample_items(items, 8, seed=1)
    assert sorted(i.label for i in s).count("A") == 6 and len(s) == 8
    assert s == sample_items(items, 8, seed=1) and s != sample_items(items, 8, seed=2)
    assert [i.id for i in s] == [i.id for i in items if i in s]  # the listing's order
    assert len({i.label for i in sample_items(items, 2, seed=0)}) == 2  # every label while n allows
    assert sample_items(items, 100) == items


def record(i: int, size: int = 10) -> ItemRecord:
    return ItemRecord(f"i{i}", "done", {"n": i}, {"d0": np.full(size, i, np.float32)})


def test_each_item_is_recorded_once_and_a_batch_is_all_or_nothing(tmp_path):
    items = [Item(f"i{i}", "p", 0, None) for i in range(6)]
    store = AuditStore.create(tmp_path / "s.sqlite", {"x": 1}, items)
    assert store.add([(record(0), "w", 1.0), (record(1), "w", 1.0)]) == 2
    again = ItemRecord("i0", "failed", reason="a later copy must not replace the first")
    assert store.add([(again, "w", 1.0), (record(2), "w", 1.0)]) == 1
    assert store.details("i0")[1] == "done" and store.arrays("i0")["d0"][0] == 0
    with pytest.raises(Exception):  # the second row cannot be bound: the whole batch is rolled back
        store.add([(record(3), "w", 1.0), (record(4), object(), 1.0)])
    assert store.finished_ids() == {"i0", "i1", "i2"}
    store.close()
    reopened = AuditStore(tmp_path / "s.sqlite")
    assert reopened.counts() == {"items": 6, "done": 3, "failed": 0} and reopened.settings() == {"x": 1}
    assert [i.id for i in reopened.items()] == [f"i{i}" for i in range(6)]


def test_a_full_disk_is_reported_as_one_and_keeps_every_earlier_batch(tmp_path):
    store = AuditStore.create(tmp_path / "s.sqlite", {}, [Item(f"i{i}", "p", 0, None) for i in range(4)])
    store.add([(record(0), "w", 1.0)])
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # the disk is full after one more page
    noise = ItemRecord("i1", "done", {}, {"d0": np.random.default_rng(0).random(200_000).astype(np.float32)})
    with pytest.raises(OSError) as info:
        store.add([(record(2), "w", 1.0), (noise, "w", 1.0)])
    assert info.value.errno == errno.ENOSPC
    assert store.finished_ids() == {"i0"}
    store._db.execute("PRAGMA max_page_count = 1073741823")  # space freed: the same batch goes in whole
    assert store.add([(record(2), "w", 1.0), (noise, "w", 1.0)]) == 2
