"""Every benchmark still runs: each one once, tiny, as its own process, and its JSON has the figures README quotes.

The benchmarks are not timed tests (their figures are read by people, with the command), but they call into the
library's internals (bench_maps wraps the run writer's map steps by name): a refactor that moves one of those must
not leave a benchmark that no longer starts, as happened once. The faithfulness benchmark's phantom mode is left
out: its smallest run takes about a minute (its metric code and phantoms run in test_faithfulness.py); its real-data
mode runs on the shipped Kermany samples with a tiny model.
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
               "--channels", "1", "--grids", "2,3", "--rounds", "1", "--seconds", "0.2", "--skip-captum",
               "--runtimes", "onnxruntime,auto")
    assert out["masked_images"] == 4 + 9 and out["efficiency"] > 0 and out["model_images_per_s"] > 0
    assert set(out["runtimes"]) == {"torch", "onnxruntime", "auto"} and out["speedup_vs_torch"] > 0
    assert out["runtimes"]["onnxruntime"]["runs_on"] == "onnxruntime"


def test_worker_benchmark_runs():
    out = _run("bench_worker.py", "--grids", "2,3", "--rounds", "1", "--volume", "2")
    assert out["first_job"]["end"] == "done" and out["second_job"]["median_grid_s"] > 0
    assert out["first_job"]["runtime"] == "torch"  # auto on so tiny a run: torch, and the worker said so
    assert out["cancel_job"]["end"] in ("cancelled", "done")  # a tiny job may finish before the cancel reaches it


def test_maps_benchmark_runs():
    out = _run("bench_maps.py", "--bscans", "2", "--repeats", "1")
    assert out["same_model_passes"] and out["model_calls_per_run"] > 0
    assert out["map_step_s"][0] > 0 and out["files_with"] > out["files_without"]


def test_view_benchmark_runs():
    need_browser()
    out = _run("bench_view.py", "--bscans", "2")
    assert out["bscans"] == 2 and out["page_mb"] > 0 and out["open_first_s"] > 0


def test_submit_benchmark_runs():
    out = _run("bench_submit.py", "--shape", "3", "32", "48")
    assert out["state"] == "cancelled" and out["longest_block_s"] > 0
    assert {"session", "start", "poll applying the first result", "worker close"} <= set(out["longest_by_call_s"])


def test_audit_benchmark_runs(tmp_path):
    # The local part only, on phantoms (the cluster parts start and stop Ray nodes on the machine: too heavy here).
    out = _run("bench_audit.py", "--parts", "workers", "--sample", "3", "--grids", "2", "--data",
               str(_phantom_folder(tmp_path)))
    same = out["workers"]["same_records"]
    assert same["items"] == 3 and same["identical"] == 3 and out["workers"]["ratio"] > 0


def _phantom_folder(tmp_path: Path) -> Path:
    sys.path.insert(0, str(BENCH))
    from bench_audit import phantom_dataset

    return phantom_dataset(tmp_path / "data", 3)


def test_shapley_benchmark_runs():
    out = _run("bench_shapley.py", "--device", "cpu", "--model", "test_efficientnet", "--input-size", "32",
               "--channels", "1", "--grids", "2,3", "--shapley-grids", "2", "--permutations", "2", "--rounds", "1")
    assert out["passes"]["shapley"] <= out["passes"]["paper"] == 14 and out["shapley_permutations"] == [4]
    assert out["seconds_per_bscan"]["captum_shapley_one_class"] > 0 and out["speedup_vs_captum_all_classes"] > 0


def test_zoo_fidelity_benchmark_runs():
    out = _run("zoo_fidelity.py", "--grids", "3", "--models", "resnet", "--scores", "logits", "--fills", "black")
    assert {(r["model"], r["format"]) for r in out["rows"]} >= {("resnet", "python"), ("resnet", "torch-export")}
    assert out["worst_share_of_bound"] <= 1.0 and len(out["resnet_vs_torchscript"]) == 2


def test_graph_check_benchmark_runs():
    out = _run("bench_graph_check.py", "--model", "test_efficientnet", "--input-size", "32", "--rounds", "1")
    assert all(out[how]["load_s"] > 0 and out[how]["check_before_s"] > 0 for how in ("script", "trace", "export"))


def test_faithfulness_real_mode_runs(tmp_path):
    """``--real`` end to end without ../shared: a folder of the shipped Kermany samples, a split list that labels
    each as the tiny random model classifies it (the benchmark explains only B-scans the model gets right), every
    explainer of ``METHODS`` on one B-scan per class found, the JSON and the paired tables of every DiDA readout."""
    import csv
    import shutil

    import torch

    from cli_helpers import make_package

    from DiDALib.evaluation.image_cases import image_cases
    from DiDALib.models.package import load_model_package

    package_dir = make_package(tmp_path / "tiny", ("CNV", "DME", "DRUSEN", "NORMAL"))
    package = load_model_package(package_dir)
    data = tmp_path / "data"
    samples = sorted((ROOT / "Resources" / "Samples" / "kermany").glob("*.jpeg"))
    rows = []
    for case in image_cases(package, [(p, p.name.split("-")[0]) for p in samples], 1, correct_only=False):
        with torch.inference_mode():
            label = package.spec.classes[int(package.model(case.image[None]).argmax())]
        (data / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(case.path, data / label / case.path.name)
        rows.append({"path": f"{label}/{case.path.name}", "class": label, "patient": case.path.name.split("-")[1],
                     "part": "validation"})
    with open(tmp_path / "split.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["path", "class", "patient", "part"])
        writer.writeheader()
        writer.writerows(rows)
    out = _run("bench_faithfulness.py", "--real", str(data), "--model", str(package_dir), "--split",
               str(tmp_path / "split.csv"), "--per-class", "1", "--steps", "4", "--gradcam-layer", "conv_head")
    found = {r["class"] for r in rows}
    assert out["bscans"] == {c: int(c in found) for c in package.spec.classes}
    shapley = out["main"]["dida_shapley|probabilities"]
    assert shapley["passes"] == out["schedules"]["shapley"]["passes"] <= out["schedules"]["paper"]["passes"]
    assert {"paired_dida_shapley_minus", "paired_dida_evidence_evidence_minus"} <= set(out)
    assert set(out["paired_dida_shapley_minus"]) >= {"vs_rise", "vs_occlusion", "vs_shapley_7x7", "vs_gradcam"}
    assert out["seconds_per_bscan"]["explainers"]["dida_shapley"] > 0
