"""The project's modules that the Slicer module can import: ``DiDA.py``, its ``DiDASlicer`` helpers and every
``DiDALib`` module they reach through an import statement anywhere in them (functions included), found from the
sources without importing anything (the static checks and the torch-free check share it)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "DiDA" / "DiDA.py"
HELPERS = ROOT / "DiDA" / "DiDASlicer"


def imported(path: Path, package: str) -> set[str]:
    """Every module an import statement of a file names (anywhere in it, functions included), as dotted names;
    ``from .x import y`` names both ``x`` and ``x.y`` (y may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def source(module: str) -> Path | None:
    root = module.split(".")[0]
    folder = {"DiDALib": ROOT, "DiDASlicer": ROOT / "DiDA"}.get(root)
    if folder is None:
        return None
    path = folder.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def slicer_path() -> dict[str, set[str]]:
    """The project's modules the Slicer module can import (DiDA.py, DiDASlicer and every DiDALib module they reach,
    packages' __init__ included), each with the modules it imports."""
    todo = [("DiDA", MODULE)] + [(f"DiDASlicer.{p.stem}", p) for p in sorted(HELPERS.glob("*.py"))]
    seen: dict[str, set[str]] = {}
    while todo:
        name, path = todo.pop()
        if name in seen:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        seen[name] = imported(path, package)
        for module in seen[name]:
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                found = source(".".join(parts[:i]))
                if found is not None:
                    todo.append((".".join(parts[:i]), found))
    return seen
