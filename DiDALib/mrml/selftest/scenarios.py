"""What ``DiDATest`` runs inside Slicer and CI runs on ``slicer-core`` (the same functions): every scene check on
the stored result (no torch needed), and every scenario with runs in a worker process where torch is installed.
The checks live in ``checks`` and ``map_checks`` (what the scene shows) and ``worker_checks`` (runs in the worker);
what they run on in ``fixtures``.
"""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from . import checks, map_checks
from .fixtures import Fixture, explain_volume, make_test_package_apart, stored_fixture
from .worker_checks import WORKER_CHECKS

#: The checks of a run shown in the DiDA View, in order (the last one leaves and re-enters the layout).
FIXTURE_CHECKS = (checks.check_overlay_colours, checks.check_overlay_geometry, checks.check_layout,
                  checks.check_link_survival, checks.check_crosshair, checks.check_display_controls,
                  checks.check_resize_keeps_proportions, checks.check_scores_and_plot, checks.check_hierarchy,
                  checks.check_input_candidates, map_checks.check_compare, map_checks.check_enface,
                  checks.check_export, checks.check_leaving_the_layout)


def _close(env) -> None:  # headless environments free their logics; the Slicer application keeps its own
    getattr(env, "close", lambda: None)()


def _scene_checks(env, fx: Fixture, folder: str | Path, log) -> None:
    for check in FIXTURE_CHECKS:
        log(check.__doc__.strip().splitlines()[0])
        check(fx)
    log("save and reload")
    fx.views.detach()
    _close(checks.check_save_reload(fx, folder))
    _close(env)


def run_stored(env_factory, folder: str | Path, log=print) -> None:
    """Every scene check on the stored result (no torch needed)."""
    env = env_factory()
    log("volume round trip")
    checks.check_volume_round_trip(env)
    checks.check_show_volume(env)
    log("the stored result of the test model")
    _scene_checks(env, stored_fixture(env), folder, log)


def run_all(env_factory, package_dir: str | Path, folder: str | Path, worker, log=print) -> None:
    """Every scenario in turn, with runs in ``worker``."""
    env = env_factory()
    log("volume round trip")
    checks.check_volume_round_trip(env)
    checks.check_show_volume(env)
    log("explaining a small volume in the worker")
    _scene_checks(env, explain_volume(env, worker, package_dir), folder, log)
    for check in WORKER_CHECKS:
        log(check.__doc__.strip().splitlines()[0])
        env = env_factory()
        check(env, worker, package_dir)
        _close(env)


def worker_unmet() -> str:
    """What the worker scenarios need and is not installed ("" when all is there)."""
    from ..requirements import torch_unmet, unmet

    return ", ".join(torch_unmet() + unmet(["timm", "safetensors"]))


def stored_result(env_factory, log=print) -> None:
    """``DiDATest.test_DiDA_stored_result``: every scene check on the stored result, in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        run_stored(env_factory, Path(tmp) / "scene", log=log)


def worker_runs(env_factory, log=print) -> None:
    """``DiDATest.test_DiDA_worker_runs``: every scenario, with runs of the test model in a worker process of
    their own; ``unittest.SkipTest`` naming what is missing where torch and the rest are not installed (Slicer's
    extension test machines; nothing is installed while Slicer runs its tests)."""
    missing = worker_unmet()
    if missing:
        raise unittest.SkipTest(f"the worker scenarios need {missing}, which are not installed")
    from ...worker.client import WorkerClient

    with tempfile.TemporaryDirectory() as tmp, WorkerClient() as client:
        package = make_test_package_apart(client.python, Path(tmp) / "model")
        run_all(env_factory, package, Path(tmp) / "scene", client, log=log)


#: What ``DiDATest`` runs, in order (``DiDA/DiDA.py``); CI runs the same on slicer-core without torch.
DIDATEST = (stored_result, worker_runs)
