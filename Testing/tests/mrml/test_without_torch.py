"""Slicer's own process never imports torch, timm or torchvision: only DiDA's worker process does. The Slicer side
(every DiDALib module the module reaches, describing the demo package, reading an OCT file, DiDATest's scenarios,
a run in the worker shown, compared and exported) is run by ``Testing/tests/without_torch.py`` in a subprocess: with
this Python, torch made unimportable; and with a virtual environment that has no torch at all, as Slicer's
extension test machines have (``.ci/run`` makes it; ``DIDA_REQUIRE_NOTORCH=1`` there makes its absence a failure)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from slicer_imports import slicer_path, source

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "Testing" / "tests" / "without_torch.py"
OCT_FILE = ROOT / "Testing" / "Data" / "oct" / "heyex_synthetic_10x40x50.vol"
#: The modules on the Slicer path that import torch when they load, each reached only from inside a function that
#: loads a model (``models.package.load_model_package``, ``models.python_code``'s builder), which runs in the worker.
MODEL_LOADING = ("DiDALib.models.preprocess", "DiDALib.models.validate", "DiDALib.models.weights")
TORCH = {"torch", "timm", "torchvision"}


def loads_torch(module: str) -> bool:
    """Whether a module imports torch, timm or torchvision when it is loaded (a module-level import statement,
    one under ``if TYPE_CHECKING:`` aside)."""
    body = list(ast.parse(source(module).read_text(encoding="utf-8")).body)
    names = set()
    while body:
        node = body.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            body += [*node.body, *node.orelse, *getattr(node, "finalbody", []),
                     *(s for h in getattr(node, "handlers", []) for s in h.body)]
        elif isinstance(node, ast.Import):
            names |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return bool(names & TORCH)


def slicer_side_modules() -> list[str]:
    """Every DiDALib module that DiDA.py and DiDASlicer reach (statically, through imports in functions too), but
    the model-loading ones."""
    reached = sorted(name for name in slicer_path() if name.startswith("DiDALib"))
    assert sorted(m for m in reached if loads_torch(m)) == sorted(MODEL_LOADING), \
        "a module that imports torch when it loads is on the Slicer path (or MODEL_LOADING is out of date)"
    return [m for m in reached if m not in MODEL_LOADING]


def run_check(python: str, *args: str, timeout: float = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, cwd=str(ROOT), env=env,
                         timeout=timeout)
    assert run.stdout.strip(), f"the check printed nothing (exit {run.returncode}): {run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    assert run.returncode == 0, json.dumps({k: v for k, v in report.items() if k != "log"}, indent=1)
    return report


def test_the_slicer_side_never_imports_torch():
    """With torch installed but unimportable: every Slicer-side module imports, the demo package is described, an
    OCT file is read, DiDATest's stored-result scenario passes, and a real run in the worker is shown, compared and
    exported; torch never enters this process (the worker imports it)."""
    report = run_check(sys.executable, "--block", "--oct", str(OCT_FILE), "--run", "--modules",
                       *slicer_side_modules())
    assert report["blocked"] and report["loaded"] == []
    assert report["steps"]["describe_demo"].count("classes") == 1
    assert report["steps"]["read_oct"] == [50, 40, 10]
    assert report["steps"]["didatest"]["stored_result"] == "passed"
    assert report["steps"]["run_in_worker"]["state"] == "complete"
    assert "report.html" in report["steps"]["run_in_worker"]["exported"]
