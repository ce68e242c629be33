"""What DiDA's Slicer module needs installed, checked from package metadata without importing any of it.

Two sets, asked for when they are needed: reading OCT files (``Resources/requirements-read.txt``: eyepy, pydicom,
pillow; OCT-Converter only for a file of the vendors it reads) never installs PyTorch; explaining does
(``Resources/requirements-explain.txt``). PyTorch and torchvision come first, and from the PyTorch extension (a
build that matches the GPU); then the packages of the explaining set. The order matters: timm depends on
torchvision, and installing timm while torchvision is missing makes pip pull a generic torchvision from PyPI, which
can replace the GPU build of torch. An installed torch older than DiDA needs counts as missing.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Version rules for PyTorchUtils' installTorch (the same floors as pyproject.toml).
TORCH_VERSION = ">=2.4"
TORCHVISION_VERSION = ">=0.19"
#: The two sets, in the module's Resources folder.
READ_REQUIREMENTS = "requirements-read.txt"
EXPLAIN_REQUIREMENTS = "requirements-explain.txt"
#: The reader of these formats (``io.octconverter``), as pyproject.toml's 'vendors' extra names it.
OCT_CONVERTER = "oct-converter>=0.7"
VENDOR_FORMATS = ("topcon-fda", "topcon-fds", "zeiss-img", "bioptigen-oct", "optovue-oct")


def read_requirements(path: str | os.PathLike) -> list[str]:
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    with open(path, encoding="utf-8") as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def unmet(requirements: Iterable[str]) -> list[str]:
    """The requirement lines that the installed distributions do not satisfy: missing, or of another version."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # without packaging only presence is checked
        Requirement = None
    out = []
    for line in requirements:
        if Requirement is not None:
            req = Requirement(line)
            name, specifier = req.name, req.specifier
        else:
            name = line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip()
            specifier = None
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(line)
            continue
        if specifier is not None and not specifier.contains(version, prereleases=True):
            out.append(line)
    return out


def torch_unmet() -> list[str]:
    """torch and torchvision as DiDA needs them, where they are not installed so (both go through PyTorchUtils)."""
    return unmet([f"torch{TORCH_VERSION}", f"torchvision{TORCHVISION_VERSION}"])


def name_of(requirement: str) -> str:
    """The distribution a requirement line names (``"eyepy>=0.21"`` -> ``"eyepy"``)."""
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


@dataclass(frozen=True)
class InstallPlan:
    """What to install before DiDA can do something (``purpose``): PyTorch through the PyTorch extension
    (``torch``), then ``packages`` with pip. Empty when everything is there."""

    purpose: str
    torch: list[str]
    packages: list[str]

    @property
    def empty(self) -> bool:
        return not self.torch and not self.packages

    def question(self) -> str:
        """The one question the module asks before installing (a No installs nothing)."""
        lines = [f"- {req} (through the PyTorch extension)" for req in self.torch]
        for req in self.packages:
            extra = (": Topcon, Zeiss, Bioptigen and Optovue files; it brings OpenCV and matplotlib"
                     if name_of(req) == name_of(OCT_CONVERTER) else "")
            lines.append(f"- {req}{extra}")
        needs = ("This file needs OCT-Converter" if [name_of(r) for r in self.packages] == [name_of(OCT_CONVERTER)]
                 else f"DiDA needs these Python packages {self.purpose}")
        size = " This can take several minutes." if self.torch else ""
        return (f"{needs}: they will be downloaded and installed now.{size}\n\n" + "\n".join(lines)
                + "\n\nInstall?")


def needs_oct_converter(path: str | os.PathLike) -> bool:
    """Whether a file is of a vendor that only OCT-Converter reads (decided as ``io.registry.load_oct`` decides)."""
    try:
        from ..io.registry import OCTReadError, detect_format

        return detect_format(path) in VENDOR_FORMATS
    except (ImportError, OCTReadError, OSError, ValueError):
        return False


def reading_plan(resources: str | os.PathLike, path: str | os.PathLike | None = None) -> InstallPlan:
    """What reading OCT files (``path``, where one is being read) needs and is not installed: never PyTorch."""
    packages = unmet(read_requirements(Path(resources) / READ_REQUIREMENTS))
    if path is not None and needs_oct_converter(path):
        packages += unmet([OCT_CONVERTER])
    return InstallPlan("to read OCT files", [], packages)


def explaining_plan(resources: str | os.PathLike) -> InstallPlan:
    """What explaining needs and is not installed: PyTorch first (through the PyTorch extension), then the rest."""
    return InstallPlan("to explain B-scans", torch_unmet(), unmet(read_requirements(Path(resources) /
                                                                                     EXPLAIN_REQUIREMENTS)))
