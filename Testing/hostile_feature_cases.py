"""The hostile pass's cases of the features that came after it: unrelated B-scans (``--images``) among which a
decompression bomb hides, a runtime export cache (``DIDA_CACHE_DIR``) whose entries are pipes or links, absurd
Shapley permutation counts, and ``dida audit`` datasets that are, or hold, named pipes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from hostile_sandbox import Case, Sandbox

from bombs import run_capped, tiff_bomb  # noqa: E402 (on the path hostile_sandbox set)
from cli_helpers import FAST  # noqa: E402


def _png(path: Path, depth: int, width: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((depth, width), 100, np.uint8)).save(path)
    return path


def images_cases(sb: Sandbox) -> list[Case]:
    folder = sb.path("images")
    _png(folder / "a.png", 24, 30)
    _png(folder / "b.png", 28, 36)  # sizes differ: explained as unrelated B-scans even without --images
    tiff_bomb(folder / "c.tif", pages=100)
    bomb = tiff_bomb(sb.path("bomb.tif"), pages=100)
    cases = []
    for name, target in (("a folder with a TIFF bomb among B-scans", folder), ("a TIFF bomb", bomb)):
        for limit in ((), ("--max-memory", "2G")):
            cases.append(Case(f"--images {name}{', --max-memory 2G' if limit else ''}",
                              ["explain", target, "--images", "--model", sb.ts, "--out", sb.out(), *FAST, *limit]))
    return cases


def cache_cases(sb: Sandbox, root: Path) -> list[Case]:
    """Each case runs on ONNX Runtime with a cache of its own whose one entry (made by a first run) was replaced."""
    seed = sb.path("cache")
    argv = ["explain", sb.volume, "--model", sb.ts, *FAST, "--runtime", "onnxruntime"]
    code, err, _ = run_capped([*argv, "--out", sb.out()], sb.root, root=root, env={"DIDA_CACHE_DIR": str(seed)})
    entries = sorted((seed / "onnx").glob("*.json")) if code == 0 else []
    if not entries:
        raise SystemExit(f"the pass cannot make its cache entry: {err[-500:]}")
    cases = []
    for name, suffix, make in (("record a FIFO", ".json", os.mkfifo),
                               ("graph a link to /dev/zero", ".onnx", lambda p: p.symlink_to("/dev/zero")),
                               ("graph a FIFO", ".onnx", os.mkfifo)):
        cache = Path(shutil.copytree(seed, sb.path("cache")))
        entry = (cache / "onnx" / entries[0].name).with_suffix(suffix)
        entry.unlink()
        make(entry)
        out = sb.out()
        cases.append(Case(f"DIDA_CACHE_DIR entry: {name}", [*argv, "--out", out], expect=0, out=out,
                          env={"DIDA_CACHE_DIR": str(cache)}, also=[cache]))
    return cases


def shapley_cases(sb: Sandbox) -> list[Case]:
    return [Case(f"--permutations {value}", ["explain", sb.volume, "--model", sb.ts, "--out", sb.out(), *FAST,
                                             "--estimator", "shapley", "--permutations", value])
            for value in ("1000000000000", "100000000000000000000", "0", "-4", "5", "4,4,4", "1e9")]


def audit_cases(sb: Sandbox) -> list[Case]:
    pipe = sb.path("dataset")
    os.mkfifo(pipe)
    folder = sb.path("dataset")
    (folder / "CNV").mkdir(parents=True)
    os.mkfifo(folder / "CNV" / "scan.tif")  # opened to count its pages, a pipe blocks for ever
    options = ["--model", sb.ts, "--grids", "2,3", "--device", "cpu", "--quiet"]
    return [Case("audit of a dataset that is a FIFO", ["audit", pipe, "--out", sb.out(), *options]),
            Case("audit of a label folder holding only a FIFO", ["audit", folder, "--out", sb.out(), *options])]
