"""Memory is bounded before anything is decoded: files that unpack to gigabytes (a gzip NRRD, a multi-page TIFF, a
result's npz), a B-scan range of millions and files that never end (``/dev/zero``, a FIFO) are refused from their
headers, in one line, with exit code 2. Each case runs ``dida`` in a child process whose address space is capped
(``RLIMIT_AS``) and which reports its peak resident memory: a reader that decoded first would die there or show
gigabytes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from bombs import npz_bomb, nrrd_bomb, run_capped, tiff_bomb
from cli_helpers import FAST, make_torchscript_package, one_line, write_volume
from PIL import Image

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")

#: The peak resident memory a refused run may reach: torch and the tiny model (about 0.5-0.7 GB) and little more;
#: each bomb here decodes to 1.5 GB or more.
PEAK = 1.2e9


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_torchscript_package(tmp_path_factory.mktemp("model") / "pkg")


def _refused_capped(tmp_path: Path, argv, match: str) -> str:
    code, err, peak = run_capped(argv, tmp_path)
    assert code == 2, (code, err[-2000:])
    assert one_line(err) and match in err, err[-2000:]
    assert peak < PEAK, f"peak resident memory {peak / 1e9:.2f} GB before refusing"
    return err


def test_a_gzip_nrrd_bomb_is_refused_from_its_header(tmp_path, package):
    bomb = nrrd_bomb(tmp_path / "bomb.nrrd", chunks=24)  # 1.5 GiB of voxels in 1.6 MB
    assert bomb.stat().st_size < 3e6
    err = _refused_capped(tmp_path, ["explain", bomb, "--model", package, "--out", tmp_path / "out", *FAST,
                                     "--max-memory", "2G"], "--max-memory allows 2.0 GB")
    assert "4096 x 16384 x 24 voxels" in err and not (tmp_path / "out").exists()


def test_a_multipage_tiff_bomb_is_refused_from_its_page_headers(tmp_path, package):
    bomb = tiff_bomb(tmp_path / "bomb.tif", pages=100)  # 1.6 GiB of pixels in 30 kB
    _refused_capped(tmp_path, ["explain", bomb, "--model", package, "--out", tmp_path / "out", *FAST,
                               "--max-memory", "2G"], "100 page(s) of 4096 x 4096 pixels")


def test_a_bscan_range_of_millions_is_checked_before_it_is_expanded(tmp_path, package):
    png = tmp_path / "one.png"
    Image.fromarray(np.full((24, 30), 100, np.uint8)).save(png)
    err = _refused_capped(tmp_path, ["explain", png, "--model", package, "--out", tmp_path / "out", *FAST,
                                     "--bscans", "0-60000000"], "the range 0-60000000")
    assert len(err) < 300 and "0..0" in err


def _result(tmp_path: Path, package: Path) -> Path:
    from DiDALib import cli

    out = tmp_path / "result"
    assert cli.main(["explain", str(write_volume(tmp_path / "v.nrrd", n=2)), "--model", str(package),
                     "--out", str(out), *FAST]) == 0
    return out


def test_view_refuses_an_npz_whose_arrays_expand_to_gigabytes(tmp_path, package):
    result = _result(tmp_path, package)
    small = dict(np.load(result / "dida_results.npz"))
    grids = [int(g) for g in small["grids"]]
    n = grids[0]
    del small[f"d_{n}"]
    classes = len(small["class_names"])
    # d_n stored as 28 x K x 4096 x 1024 float32 zeros: 1.9 GB unpacked, a few MB stored.
    npz_bomb(result / "dida_results.npz", f"d_{n}", (28, classes, 4096, 1024), members=small)
    _refused_capped(tmp_path, ["view", result], "dida_results.npz")


def test_a_model_json_that_never_ends_is_refused(tmp_path, package):
    endless = tmp_path / "endless"
    shutil.copytree(package, endless)
    (endless / "model.json").unlink()
    os.symlink("/dev/zero", endless / "model.json")
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    _refused_capped(tmp_path, ["explain", volume, "--model", endless, "--out", tmp_path / "out", *FAST],
                    "character device")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_model_json_fifo_is_refused_not_waited_on(tmp_path, package):
    fifo = tmp_path / "fifo"
    shutil.copytree(package, fifo)
    (fifo / "model.json").unlink()
    os.mkfifo(fifo / "model.json")
    volume = write_volume(tmp_path / "v.nrrd", n=1)
    code, err, _ = run_capped(["explain", volume, "--model", fifo, "--out", tmp_path / "out", *FAST], tmp_path,
                              timeout=120)
    assert code == 2 and one_line(err) and "named pipe" in err, err


def test_the_headers_give_the_decoded_size_of_real_files():
    """The estimates of the readers' real sample files are at least their decoded size, from headers alone."""
    from oct_samples import REAL_VOL

    from DiDALib.io.limits import estimate
    from DiDALib.io.registry import detect_format, load_oct

    for path in (REAL_VOL, Path(__file__).resolve().parents[2] / "Data" / "oct" / "heyex_synthetic_10x40x50.vol"):
        found = estimate(detect_format(path), path)
        volume = load_oct(path)
        assert found is not None and found.peak >= volume.bscans.nbytes, (path, found and found.described)
