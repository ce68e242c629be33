"""Every benchmark still runs: each one once, tiny, as its own process, and its JSON has the figures README quotes.

The benchmarks are not timed tests (their figures are read by people, with the command), but they call into the
library's internals (bench_maps wraps the run writer's map steps by name): a refactor that moves one of those must
not leave a benchmark that no longer starts, as happened once. The faithfulness benchmark is left out: its smallest
run takes about a minute (its metric code and phantoms run in test_faithfulness.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from browser import need_browser

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "Testing" / "benchmarks"
TIMEOUT = 600


def _run(script: str, *args: str) -> dict:
    run = subprocess.run([sys.executable, str(BENCH / script), *args, "--json"], capture_output=True, text=True,
                         cwd=ROOT, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout[run.stdout.index("{"):])  # after any line a command it runs printed


def test_engine_benchmark_runs():
    out = _run("bench_engine.py", "--device", "cpu", "--model", "test_efficientnet", "--input-size", "32",
               "--channels", "1", "--grids", "2,3", "--rounds", "1", "--seconds", "0.2", "--skip-captum")
    assert out["masked_images"] == 4 + 9 and out["efficiency"] > 0 and out["model_images_per_s"] > 0


def test_worker_benchmark_runs():
    out = _run("bench_worker.py", "--grids", "2,3", "--rounds", "1", "--volume", "2")
    assert out["first_job"]["end"] == "done" and out["second_job"]["median_grid_s"] > 0
    assert out["cancel_job"]["end"] in ("cancelled", "done")  # a tiny job may finish before the cancel reaches it


def test_maps_benchmark_runs():
    out = _run("bench_maps.py", "--bscans", "2", "--repeats", "1")
    assert out["same_model_passes"] and out["model_calls_per_run"] > 0
    assert out["map_step_s"][0] > 0 and out["files_with"] > out["files_without"]


def test_view_benchmark_runs():
    need_browser()
    out = _run("bench_view.py", "--bscans", "2")
    assert out["bscans"] == 2 and out["page_mb"] > 0 and out["open_first_s"] > 0


def test_graph_check_benchmark_runs():
    out = _run("bench_graph_check.py", "--model", "test_efficientnet", "--input-size", "32", "--rounds", "1")
    assert all(out[how]["load_s"] > 0 and out[how]["check_before_s"] > 0 for how in ("script", "trace", "export"))
