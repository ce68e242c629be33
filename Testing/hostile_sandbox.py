"""What the hostile pass's cases share: a case, the sandbox of fixtures they use, and the edits that make a package
or a result folder lie (``Testing/hostile_pass.py`` runs them)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "tests")]

import numpy as np  # noqa: E402
from bombs import run_capped  # noqa: E402
from cli_helpers import FAST, changed_package, make_package, make_torchscript_package, write_volume  # noqa: E402

TIMEOUT = 120  # seconds: a case that runs longer hangs


@dataclass
class Case:
    """One hostile input: ``argv`` for dida (or ``--worker ...``), what must hold afterwards."""

    name: str
    argv: list
    expect: int = 2  # the exit code a correct dida gives
    markers: list[Path] = field(default_factory=list)  # files that must never appear
    victims: list[Path] = field(default_factory=list)  # files that must keep their content
    out: Path | None = None  # where the case may write
    stdin: bytes | None = None
    timeout: float = TIMEOUT
    env: dict[str, str] = field(default_factory=dict)  # set for the case's process (DIDA_CACHE_DIR)
    also: list[Path] = field(default_factory=list)  # folders it may write besides --out (its cache)


class Sandbox:
    """The fixtures every case uses, made once in ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.ts = make_torchscript_package(root / "ts-package")
        self.timm = make_package(root / "timm-package")
        self.volume = write_volume(root / "volume.nrrd", n=2)
        self.secret = root / "secret" / "id_rsa"
        self.secret.parent.mkdir()
        self.secret.write_bytes(b"\x89PNG\r\n\x1a\n-----BEGIN OPENSSH PRIVATE KEY----- hostile pass")
        self.victim = root / "victim"
        self.victim.mkdir()
        (self.victim / "data.txt").write_text("the user's data")
        self.count = 0

    def path(self, stem: str) -> Path:
        self.count += 1
        return self.root / f"c{self.count:03d}-{stem}"

    def out(self) -> Path:
        return self.path("out")

def _changed(sb: Sandbox, base: Path, text: str | None = None, **fields) -> Path:
    return changed_package(sb.path("pkg"), base, text, **fields)

def _result(sb: Sandbox, argv_root: Path) -> Path:
    """A real result folder, written by the checkout under test."""
    out = sb.path("result")
    code, err, _ = run_capped(["explain", sb.volume, "--model", sb.ts, "--out", out, *FAST], sb.root,
                              root=argv_root)
    if code != 0:
        raise SystemExit(f"the pass cannot make its result folder: {err[-500:]}")
    return out


def _copy_result(sb: Sandbox, result: Path) -> Path:
    return Path(shutil.copytree(result, sb.path("view")))


def _edit_run(folder: Path, **fields) -> Path:
    data = json.loads((folder / "run.json").read_text())
    data.update(fields)
    (folder / "run.json").write_text(json.dumps(data))
    return folder


def _edit_npz(folder: Path, edit: Callable[[dict], None]) -> Path:
    with np.load(folder / "dida_results.npz") as d:
        arrays = dict(d)
    edit(arrays)
    np.savez_compressed(folder / "dida_results.npz", **arrays)
    return folder

def _edit_json(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))
