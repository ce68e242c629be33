"""``dida view`` reads only what the result is: the folder's own regular files (a symbolic link inside a received
result must not pull ``~/.ssh/id_rsa`` into a page the user shares), arrays whose shapes fit together, and a
``run.json`` whose fields have the types a run writes; anything else is exit code 2 and one line naming the file
or field."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, make_torchscript_package, one_line, run, start, write_volume

from DiDALib import cli

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- dida test secret"


@pytest.fixture(scope="module")
def first_result(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("first")
    package = make_torchscript_package(tmp / "pkg")
    out = tmp / "result"
    assert cli.main(["explain", str(write_volume(tmp / "v.nrrd", n=2)), "--model", str(package), "--out", str(out),
                     *FAST]) == 0
    return out


@pytest.fixture
def result(tmp_path, first_result) -> Path:
    return Path(shutil.copytree(first_result, tmp_path / "result"))


def _edit_run(result: Path, **fields) -> None:
    data = json.loads((result / "run.json").read_text())
    data.update(fields)
    (result / "run.json").write_text(json.dumps(data))


def _refused(capsys, result: Path, match: str) -> str:
    code, _, err = run(capsys, "view", result)
    assert code == cli.EXIT_BAD_INPUT and one_line(err) and err.startswith("dida: error: "), err
    assert match in err, err
    assert not (result / "report.html").exists()
    return err


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_linked_figure_is_never_embedded(result, tmp_path, capsys):
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + SECRET)  # even a file that looks like a PNG
    (result / "figures").mkdir(exist_ok=True)
    os.symlink(secret, result / "figures" / "dida_enface_fundus.png")
    data = json.loads((result / "run.json").read_text())
    _edit_run(result, enface_on_fundus="figures/dida_enface_fundus.png",
              files=sorted({*data["files"], "figures/dida_enface_fundus.png"}))
    code, _, err = run(capsys, "view", result)
    assert code == 0, err
    page = (result / "report.html").read_bytes()
    assert base64.b64encode(SECRET)[:40] not in page and b"id=\"fundus\"" not in page
    assert "symbolic link" in err  # said, not silently dropped


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
@pytest.mark.parametrize("name", ["dida_results.npz", "volume.nrrd", "run.json"])
def test_a_linked_result_file_is_refused(result, tmp_path, capsys, name):
    moved = tmp_path / f"elsewhere-{name}"
    shutil.move(result / name, moved)
    os.symlink(moved, result / name)
    _refused(capsys, result, name)


@pytest.mark.parametrize("hostile", ["deeply nested", "a FIFO"])
def test_a_hostile_run_json_is_refused_by_whatever_reads_it_first(result, tmp_path, hostile):
    """Asking whether a folder is an audit (``dida view AUDIT``) reads run.json before the result reader does: it
    reads it the same way (the folder's own regular file, bounded, any JSON error refused), never blocking on a
    pipe or failing on JSON nested past Python's recursion limit."""
    path = result / "run.json"
    path.unlink()
    if hostile == "a FIFO":
        os.mkfifo(path)
    else:
        path.write_text("[" * 100000 + "]" * 100000)
    proc = start("view", result, cwd=tmp_path)  # a process of its own: a read that blocks must not block the tests
    try:
        _, err = proc.communicate(timeout=120)
    except Exception:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == cli.EXIT_BAD_INPUT and one_line(err) and "run.json" in err, err


@pytest.mark.parametrize("fields, match", [
    ({"contrasts": ["wet_amd", "normal"]}, "'contrasts'"),
    ({"spacing_mm": [0, 0, 0]}, "'spacing_mm'"),
    ({"spacing_mm": "1,1,1"}, "'spacing_mm'"),
    ({"contrast_scale": "high"}, "'contrast_scale'"),
    ({"demo_model": "false"}, "'demo_model'"),
])
def test_run_json_fields_of_the_wrong_type_are_named(result, capsys, fields, match):
    _edit_run(result, **fields)
    _refused(capsys, result, match)


def _edit_npz(result: Path, edit) -> None:
    with np.load(result / "dida_results.npz") as d:
        arrays = dict(d)
    edit(arrays)
    np.savez_compressed(result / "dida_results.npz", **arrays)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a.pop("base_scores"), "no 'base_scores' array"),
    (lambda a: a.update(base_scores=a["base_scores"][:, :2]), "scores of shape"),
    (lambda a: a.update(class_names=a["class_names"][:3]), "3 class names"),
    (lambda a: a.update(bscan_shape=np.array([24], np.int64)), "'bscan_shape' has shape"),
    (lambda a: a.update({k: v[..., :1] for k, v in a.items() if k.startswith("d_")}), "d array"),
    (lambda a: a.update(class_names=np.array(["a", "a", "b", "c"])), "empty or repeated"),
    (lambda a: a.update(format=np.array(3)), "'format' holds"),
], ids=["missing-array", "wrong-shape", "names-do-not-match", "bscan-shape", "grid-size", "repeated-names",
        "format-type"])
def test_results_arrays_that_do_not_fit_are_named(result, capsys, edit, match):
    _edit_npz(result, edit)
    _refused(capsys, result, match)


def test_a_detached_nrrd_header_is_not_followed(result, tmp_path, capsys):
    """A volume.nrrd that names its data file elsewhere would read that file into the page."""
    elsewhere = tmp_path / "elsewhere.raw"
    elsewhere.write_bytes(SECRET.ljust(24 * 30 * 2, b"\0"))
    (result / "volume.nrrd").write_text(f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 30 24 2\nencoding: raw\n"
                                        f"data file: {elsewhere}\n\n")
    _refused(capsys, result, "volume.nrrd")
