"""What DiDA's Slicer module needs installed, checked from package metadata without importing any of it.

PyTorch and torchvision come first, and from the PyTorch extension (a build that matches the GPU); then the
packages of ``Resources/requirements.txt``. The order matters: timm depends on torchvision, and installing timm
while torchvision is missing makes pip pull a generic torchvision from PyPI, which can replace the GPU build of
torch. An installed torch older than DiDA needs counts as missing.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable

#: Version rules for PyTorchUtils' installTorch (the same floors as pyproject.toml).
TORCH_VERSION = ">=2.4"
TORCHVISION_VERSION = ">=0.19"


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
