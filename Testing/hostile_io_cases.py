"""The hostile pass's cases of files and options: bombs and lying headers, files that are no file, empty and wrong
option values, result folders that link out or lie, staging look-alikes and --force on what DiDA did not write,
and request lines for the worker."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from hostile_sandbox import Case, Sandbox, _copy_result, _edit_npz, _edit_run

from bombs import npz_bomb, nrrd_bomb, png_bomb, tiff_bomb  # noqa: E402 (on the path hostile_sandbox set)
from cli_helpers import CLASSES, FAST  # noqa: E402


def input_cases(sb: Sandbox) -> list[Case]:
    from PIL import Image

    cases = [Case("gzip NRRD bomb, --max-memory 2G", ["explain", nrrd_bomb(sb.path("bomb.nrrd"), chunks=24),
                                                      "--model", sb.ts, "--out", sb.out(), *FAST, "--max-memory",
                                                      "2G"]),
             Case("gzip NRRD bomb, machine memory", ["explain", nrrd_bomb(sb.path("bomb2.nrrd"), chunks=48), "--model",
                                                     sb.ts, "--out", sb.out(), *FAST]),
             Case("multi-page TIFF bomb", ["explain", tiff_bomb(sb.path("bomb.tif"), pages=100), "--model", sb.ts,
                                           "--out", sb.out(), *FAST, "--max-memory", "2G"])]
    png = sb.path("one.png")
    Image.fromarray(np.full((24, 30), 100, np.uint8)).save(png)
    for spec in ("0-60000000", "-1", "5", "3-1", "0,,1", "x", "1e9", "0-" + "9" * 400):
        cases.append(Case(f"--bscans {spec[:20]}", ["explain", png, "--model", sb.ts, "--out", sb.out(), *FAST,
                                                    "--bscans", spec]))
    big_png = sb.path("bomb.png")
    png_bomb(big_png, 14000, 14000)
    cases.append(Case("PNG decompression bomb", ["explain", big_png, "--model", sb.ts, "--out", sb.out(), *FAST]))
    dicom = sb.path("lying.dcm")
    _lying_dicom(dicom)
    cases.append(Case("DICOM header 60000 x 60000 x 500", ["explain", dicom, "--model", sb.ts, "--out", sb.out(),
                                                           *FAST]))
    vol = sb.path("lying.vol")
    vol.write_bytes(b"HSF-OCT-103\x00" + np.array([60000, 60000, 60000], "<u4").tobytes() + bytes(4000))
    cases.append(Case("VOL header 60000^3", ["explain", vol, "--model", sb.ts, "--out", sb.out(), *FAST]))
    for name, make in (("a FIFO", lambda p: os.mkfifo(p)), ("/dev/zero", lambda p: p.symlink_to("/dev/zero")),
                       ("empty", lambda p: p.write_bytes(b"")), ("garbage", lambda p: p.write_bytes(b"x" * 999))):
        path = sb.path("input.nrrd")
        make(path)
        cases.append(Case(f"input NRRD is {name}", ["explain", path, "--model", sb.ts, "--out", sb.out(), *FAST]))
    e2e = sb.path("garbage.e2e")
    e2e.write_bytes(b"CMDb" + bytes(5000))
    cases.append(Case("E2E garbage", ["explain", e2e, "--model", sb.ts, "--out", sb.out(), *FAST]))
    return cases

def _lying_dicom(path: Path) -> None:
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 500
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
    ds.PixelData = bytes(1000)
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def option_cases(sb: Sandbox) -> list[Case]:
    cases = []
    base = ["explain", sb.volume, "--model", sb.ts]
    for option in ("--model", "--classes", "--contrast", "--view", "--bscans", "--fill", "--weights", "--point",
                   "--max-memory", "--grids", "--device", "--out", "--bscan-distance", "--batch-size"):
        opts = [v for i, v in enumerate(FAST) if option not in FAST[max(0, i - 1):i + 1]]
        out = [] if option == "--out" else ["--out", sb.out()]
        cases.append(Case(f"empty {option}", [*base, *out, *opts, option, ""]))
    cases.append(Case("empty input", ["explain", "", "--model", sb.ts, "--out", sb.out(), *FAST]))
    for option, value in (("--device", "meta"), ("--device", "xpu"), ("--device", "fpga"), ("--device", "cuda:x"),
                          ("--batch-size", "0"), ("--batch-size", "-3"), ("--grids", "0"), ("--grids", "999999"),
                          ("--grids", "2,x"), ("--weights", "nan,1"), ("--weights", "inf,1"), ("--fill", "nan"),
                          ("--fill", "-1"), ("--point", "-1,-1"), ("--point", "99999,99999"), ("--max-memory", "0"),
                          ("--max-memory", "-1G"), ("--max-memory", "lots"), ("--bscan-distance", "nan"),
                          ("--bscan-distance", "-1"), ("--bscan-distance", "inf"), ("--contrast", "normal:normal"),
                          ("--contrast", "a:b"), ("--view", "nonsense"), ("--classes", "cataract"),
                          ("--classes", ", ,"), ("--precision", "float8"), ("--score", "bogus")):
        opts = [v for i, v in enumerate(FAST) if option not in FAST[max(0, i - 1):i + 1]]
        cases.append(Case(f"{option} {value}", [*base, "--out", sb.out(), *opts, option, value]))
    for argv in (["explain"], ["explain", sb.volume, "--out", sb.out(), "--bogus"], ["view"], ["nope"], ["package"]):
        cases.append(Case(f"argparse {' '.join(map(str, argv[:1] + argv[-1:]))}", argv))
    cases.append(Case("--out is the input's folder", [*base, "--out", sb.root, *FAST]))
    cases.append(Case("--out is a file", [*base, "--out", sb.volume, *FAST], victims=[sb.volume]))
    return cases


def view_cases(sb: Sandbox, result: Path) -> list[Case]:
    cases = []

    def case(name: str, folder: Path, expect: int = 2) -> None:
        cases.append(Case(f"view {name}", ["view", folder], expect=expect, out=folder))

    folder = _copy_result(sb, result)
    (folder / "figures").mkdir(exist_ok=True)
    (folder / "figures" / "dida_enface_fundus.png").symlink_to(sb.secret)
    data = json.loads((folder / "run.json").read_text())
    _edit_run(folder, enface_on_fundus="figures/dida_enface_fundus.png",
              files=sorted({*data["files"], "figures/dida_enface_fundus.png"}))
    case("linked fundus figure (page written without it)", folder, expect=0)
    for name in ("dida_results.npz", "volume.nrrd", "run.json"):
        folder = _copy_result(sb, result)
        moved = sb.path(name)
        shutil.move(folder / name, moved)
        (folder / name).symlink_to(moved)
        case(f"linked {name}", folder)
    for name, fields in (("contrasts strings", {"contrasts": ["a", "b"]}), ("zero spacing", {"spacing_mm": [0, 0, 0]}),
                         ("spacing text", {"spacing_mm": "1,1,1"}), ("contrast_scale text", {"contrast_scale": "x"}),
                         ("demo_model text", {"demo_model": "false"}), ("grids object", {"grids": {"a": 1}}),
                         ("format other", {"format": "dida-run/9"}), ("files not a list", {"files": "x"})):
        case(f"run.json {name}", _edit_run(_copy_result(sb, result), **fields))
    for name, text in (("deeply nested", "[" * 100000 + "]" * 100000), ("not JSON", "{nope"),
                       ("20 MB", " " * 20_000_000 + "{}")):
        folder = _copy_result(sb, result)
        (folder / "run.json").write_text(text)
        case(f"run.json {name}", folder)
    for name, edit in (("missing array", lambda a: a.pop("base_scores")),
                       ("wrong shape", lambda a: a.update(base_scores=a["base_scores"][:, :2])),
                       ("names do not match", lambda a: a.update(class_names=a["class_names"][:3])),
                       ("repeated names", lambda a: a.update(class_names=np.array(["a", "a", "b", "c"]))),
                       ("bscan_shape 1-D", lambda a: a.update(bscan_shape=np.array([24]))),
                       ("negative B-scan", lambda a: a.update(bscans=-a["bscans"] - 1)),
                       ("score bogus", lambda a: a.update(score=np.array("bogus"))),
                       ("object array", lambda a: a.update(meta=np.array([{"x": 1}], dtype=object)))):
        case(f"npz {name}", _edit_npz(_copy_result(sb, result), edit))
    folder = _copy_result(sb, result)
    small = dict(np.load(folder / "dida_results.npz"))
    n = int(small["grids"][0])
    del small[f"d_{n}"]
    npz_bomb(folder / "dida_results.npz", f"d_{n}", (28, len(CLASSES), 4096, 1024), members=small)
    case("npz bomb (1.9 GB of zeros)", folder)
    folder = _copy_result(sb, result)
    (folder / "dida_results.npz").write_bytes(b"not a zip")
    case("npz not a zip", folder)
    folder = _copy_result(sb, result)
    (folder / "volume.nrrd").write_text(f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 30 24 2\nencoding: raw\n"
                                        f"data file: {sb.secret}\n\n")
    case("detached NRRD header naming another file", folder)
    folder = _copy_result(sb, result)
    nrrd_bomb(folder / "volume.nrrd", chunks=48)
    case("volume.nrrd bomb", folder)
    cases.append(Case("view --out inside the folder", ["view", result, "--out", result / "x.html"]))
    cases.append(Case("view --panel-width 0", ["view", result, "--panel-width", "0"]))
    return cases


def staging_cases(sb: Sandbox, result: Path) -> list[Case]:
    cases = []
    for name in (".mydata.dida-staging-1", ".out.dida-staging-1"):
        parent = sb.path("parent")
        parent.mkdir()
        mine = parent / name
        mine.mkdir()
        (mine / "thesis.txt").write_text("years of work")
        (parent / f".{name.split('.')[1]}.dida-lock").write_text("{}")
        cases.append(Case(f"a user folder named {name}", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                          parent / "out", *FAST], expect=0, out=parent / "out",
                          victims=[mine / "thesis.txt"]))
    folder = _copy_result(sb, result)
    (folder / "notes.txt").write_text("my notes")
    data = json.loads((folder / "run.json").read_text())
    _edit_run(folder, files=[*data["files"], "notes.txt"])
    cases.append(Case("--force on a result whose run.json lists a user file",
                      ["explain", sb.volume, "--model", sb.ts, "--out", folder, *FAST, "--force"],
                      victims=[folder / "notes.txt"]))
    folder = _copy_result(sb, result)
    (folder / "scores.csv").write_text("edited by hand")
    cases.append(Case("--force on a result with an edited file", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                                  folder, *FAST, "--force"],
                      victims=[folder / "scores.csv"]))
    cases.append(Case("--force on a folder of user files", ["explain", sb.volume, "--model", sb.ts, "--out",
                                                            sb.victim, *FAST, "--force"],
                      victims=[sb.victim / "data.txt"]))
    return cases


def worker_cases(sb: Sandbox) -> list[Case]:
    from test_worker_requests import _fuzz, _job

    cases = []

    def home_with(*names: str) -> Path:
        home = sb.path("home")
        home.mkdir()
        for n in names:
            (home / n).mkdir()
        return home

    for name, line in (("[1,2]", b"[1,2]"), ("a string", b'"a string"'), ("a number", b"3"),
                       ("job without dir", b'{"op": "job"}'), ("job with numeric dir", b'{"op": "job", "dir": 5}'),
                       ("not UTF-8", b"\xff\xfe\n"), ("deeply nested", b"[" * 100000), ("cancel without id",
                                                                                         b'{"op": "cancel"}')):
        home = home_with()
        cases.append(Case(f"worker line {name}", ["--worker", "--home", home], expect=0, out=home,
                          stdin=line + b"\n"))
    home = home_with()
    cases.append(Case("worker job dir outside --home", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", sb.victim) + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with("job-1")
    (home / "job-1" / "events.jsonl").symlink_to(sb.victim / "data.txt")
    cases.append(Case("worker events.jsonl a link", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", home / "job-1") + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    (home / "job-link").symlink_to(sb.victim, target_is_directory=True)
    cases.append(Case("worker job folder a link", ["--worker", "--home", home], expect=0, out=home,
                      stdin=_job("1", home / "job-link") + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    cases.append(Case("worker 300 fuzzed lines", ["--worker", "--home", home], expect=0, out=home,
                      stdin=b"\n".join(_fuzz(7, home)) + b"\n", victims=[sb.victim / "data.txt"]))
    home = home_with()
    cases.append(Case("worker argparse error", ["--worker", "--bogus"], expect=2, out=home))
    return cases
