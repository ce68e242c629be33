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

import pytest
from slicer_imports import slicer_path, source

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "Testing" / "tests" / "without_torch.py"
OCT_FILE = ROOT / "Testing" / "Data" / "oct" / "heyex_synthetic_10x40x50.vol"
#: The modules on the Slicer path that import torch when they load, each reached only from inside a function that
#: loads a model (``models.package.load_model_package``, ``models.python_code``'s builder), which runs in the worker,
#: or from such a module (``checkpoints`` from ``weights``, ``fixed_batch`` from ``outputs``).
MODEL_LOADING = ("DiDALib.models.checkpoints", "DiDALib.models.fixed_batch", "DiDALib.models.outputs",
                 "DiDALib.models.preprocess", "DiDALib.models.validate", "DiDALib.models.weights")
TORCH = {"torch", "timm", "torchvision"}
#: The virtual environment without torch (``.ci/run`` makes it from ``NOTORCH_REQUIREMENTS``).
NOTORCH = ROOT / ".venv-notorch"
NOTORCH_REQUIREMENTS = "Testing/notorch-requirements.txt"


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
    OCT file is read, DiDATest's stored-result scenario passes, and a run started as the module starts one is
    shown, compared and exported; torch never enters this process (the worker imports it). (DiDATest's worker
    scenarios, the same session code, run in test_mrml_scene and test_mrml_worker; ``without_torch.py`` without
    ``--no-worker-runs`` runs them here too, in about two minutes.)"""
    report = run_check(sys.executable, "--block", "--oct", str(OCT_FILE), "--run", "--no-worker-runs", "--modules",
                       *slicer_side_modules())
    assert report["blocked"] and report["loaded"] == []
    assert report["steps"]["describe_demo"].count("classes") == 1
    assert report["steps"]["read_oct"] == [50, 40, 10]
    assert report["steps"]["didatest"]["stored_result"] == "passed"
    assert report["steps"]["run_in_worker"]["state"] == "complete"
    assert "report.html" in report["steps"]["run_in_worker"]["exported"]


def notorch_python() -> str:
    """The no-torch environment's Python; the test is skipped where it is missing, and fails where CI demands it
    (``DIDA_REQUIRE_NOTORCH=1``, set by ``.ci/run``)."""
    python = NOTORCH / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        why = (f"{NOTORCH.name} is missing: python3 -m venv {NOTORCH.name} && {NOTORCH.name}/bin/pip install -r "
               f"{NOTORCH_REQUIREMENTS} (.ci/run makes it)")
        if os.environ.get("DIDA_REQUIRE_NOTORCH") == "1":
            pytest.fail(f"the no-torch tests must run here (DIDA_REQUIRE_NOTORCH=1) but {why}")
        pytest.skip(why)
    return str(python)


def test_didatest_on_slicer_core_without_torch_installed():
    """As on Slicer's extension test machines: no torch installed at all. DiDATest's stored-result scenario passes,
    its worker scenarios are skipped with the reason, and the Slicer side imports, describes and reads as above."""
    python = notorch_python()
    probe = subprocess.run([python, "-c", "import importlib.util as u, slicer, sys; print(sys.version_info[:2], "
                            "[m for m in ('torch', 'timm', 'torchvision') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().endswith("[]"), f"{NOTORCH.name} has {probe.stdout.strip()}: it must have no torch"
    report = run_check(python, "--oct", str(OCT_FILE), "--modules", *slicer_side_modules())
    assert not report["blocked"] and report["loaded"] == []
    assert report["steps"]["read_oct"] == [50, 40, 10]
    assert report["steps"]["didatest"]["stored_result"] == "passed"
    skipped = report["steps"]["didatest"]["worker_runs"]
    assert skipped.startswith("skipped:") and "torch" in skipped, skipped
