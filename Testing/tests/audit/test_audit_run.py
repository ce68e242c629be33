"""``dida audit`` end to end on a real (local) Ray, one session for the module: a small ImageFolder of phantom
B-scans with a corrupt image, the tiny model; the folder's rules, resume that recomputes nothing and finishes an
interrupted audit with the same bits, a worker that dies mid-item, ``dida view --item``, and the audit page in
headless Chromium (offline, sortable, filterable, the numbers of summary.json)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import time

import numpy as np
import pytest
from browser import chromium, console, need_browser, requests
from cli_helpers import make_package, one_line, run
from PIL import Image

from DiDALib.audit.store import STORE_FILE, AuditStore
from DiDALib.io.output_dir import changed_files, foreign_files
from DiDALib.phantom import make_bscan

GRIDS = ["--grids", "2,3", "--device", "cpu", "--quiet"]
LABELS = ("normal", "drusen", "wet_amd")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (each audit would otherwise start and stop its own, ~10 s each)."""
    from DiDALib.audit.executor import WorkerPlan, start_ray, stop_ray

    start_ray(WorkerPlan(1, 2.0, 0.0, 1))
    yield
    stop_ray()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "oct"
    rng = np.random.default_rng(7)
    for label in LABELS:
        (root / label).mkdir(parents=True)
        for i in range(2):
            image, _ = make_bscan(label, rng, 64, 96 + 16 * i)  # two sizes: each image explained at its own
            Image.fromarray((image * 255).astype(np.uint8)).save(root / label / f"{label}-{i}.png")
    (root / "drusen" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "README.md").write_text("not an item")
    return root


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return make_package(tmp_path_factory.mktemp("model") / "tiny", classes=("normal", "drusen", "wet_amd", "other"))


@pytest.fixture(scope="module")
def audit(ray_session, dataset, package, tmp_path_factory):
    out = tmp_path_factory.mktemp("audits") / "audit"
    from DiDALib import cli

    assert cli.main(["audit", str(dataset), "--model", str(package), "--out", str(out), "--workers", "2",
                     "--cpus-per-worker", "1", *GRIDS]) == 0
    return out


def table(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def stored(out) -> dict:
    with AuditStore(out / STORE_FILE) as store:
        return {i: (status, row, store.arrays(i) if status == "done" else None)
                for i, status, _, row in store.records()}


def test_an_audit_explains_every_image_records_the_corrupt_one_and_writes_its_folder(audit):
    rows = table(audit)
    assert len(rows) == 7 and len({r["id"] for r in rows}) == 7
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["id"] for r in failed] == ["drusen/broken.png"] and "broken.png" in failed[0]["reason"]
    summary = json.loads((audit / "summary.json").read_text())
    assert (summary["items"], summary["explained"], summary["failed"], summary["unfinished"]) == (7, 6, 1, 0)
    assert summary["labelled"] == 6 and np.sum(summary["confusion"]["counts"]) == 6
    correct = sum(r["correct"] == "True" for r in rows)
    assert summary["accuracy"] == pytest.approx(correct / 6)
    for r in rows:
        if r["status"] == "done":  # shares of one whole, and every class's score
            parts = float(r["inside"]) + float(r["above"]) + float(r["below"])
            assert parts == pytest.approx(1.0, abs=1e-5) and len([k for k in r if k.startswith("score_")]) == 4
    shapes = {(r["height"], r["width"]) for r in rows if r["status"] == "done"}
    assert shapes == {("64", "96"), ("64", "112")}
    run_json = json.loads((audit / "run.json").read_text())
    assert run_json["kind"] == "dida-audit" and run_json["finished"] is True
    assert foreign_files(audit) == []  # every file is DiDA's: --force may replace it, nothing else may
    assert changed_files(audit) == []  # and each is as DiDA sealed it (run.json's fingerprints, io.proof)
    assert not [p for p in audit.parent.iterdir() if p.name.startswith(".")]  # no staging or lock left


def test_a_second_run_is_refused_and_resume_recomputes_nothing(audit, dataset, package, capsys):
    before = stored(audit)
    code, _, err = run(capsys, "audit", dataset, "--model", package, "--out", audit, *GRIDS)
    assert code == 2 and one_line(err) and "--resume" in err
    code, out, _ = run(capsys, "audit", dataset, "--model", package, "--out", audit, "--resume", *GRIDS)
    assert code == 0 and "0 this run" in out
    after = stored(audit)
    assert after.keys() == before.keys()
    code, _, err = run(capsys, "audit", dataset, "--model", package, "--out", audit, "--resume", "--grids", "2,4",
                       "--device", "cpu", "--quiet")
    assert code == 2 and one_line(err) and "grids" in err


def test_an_interrupted_audit_resumes_to_the_same_bits(audit, dataset, package, tmp_path, capsys):
    copy = tmp_path / "audit"
    shutil.copytree(audit, copy)
    before = stored(copy)
    db = sqlite3.connect(copy / STORE_FILE)  # as if killed after the first batches: the rest never committed
    lost = [r[0] for r in db.execute("SELECT id FROM results ORDER BY id LIMIT 4")]
    db.executemany("DELETE FROM results WHERE id = ?", [(i,) for i in lost])
    db.commit()
    db.close()
    code, out, _ = run(capsys, "audit", dataset, "--model", package, "--out", copy, "--resume", *GRIDS)
    assert code == 0 and "4 this run" in out
    after = stored(copy)
    assert after.keys() == before.keys()
    for i, (status, row, arrays) in before.items():
        assert after[i][0] == status and after[i][1] == row
        if arrays is not None:
            assert arrays.keys() == after[i][2].keys()
            for k in arrays:
                assert np.array_equal(arrays[k], after[i][2][k]), (i, k)  # bit for bit


DIES_ONCE = '''
import os
import torch


class Net(torch.nn.Module):
    def __init__(self, marker=""):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 3)
        self.marker = marker

    def forward(self, x):
        if self.marker and x.shape[0] > 1 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(3)  # the worker process dies mid-item, as one killed by the kernel
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
'''


def test_a_worker_that_dies_mid_item_loses_nothing_and_records_nothing_twice(ray_session, dataset, tmp_path,
                                                                            capsys):
    import torch

    pkg = tmp_path / "dies"
    pkg.mkdir()
    (pkg / "net.py").write_text(DIES_ONCE)
    torch.manual_seed(0)
    net = torch.nn.Module()
    net.conv, net.head = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Linear(4, 3)
    torch.save(net.state_dict(), pkg / "net.pth")
    marker = tmp_path / "died"
    (pkg / "model.json").write_text(json.dumps({
        "format": "dida-model/1", "architecture": "python:net.py:Net", "architecture_args": {"marker": str(marker)},
        "weights": "net.pth", "classes": list(LABELS), "input_size": [32, 32], "channels": 1}))
    out = tmp_path / "audit"
    code, text, err = run(capsys, "audit", dataset, "--model", pkg, "--trust-code", "--out", out, "--workers", "1",
                          "--cpus-per-worker", "1", *GRIDS)
    assert code == 0, err
    assert marker.exists()  # a worker did die
    rows = table(out)
    assert len(rows) == 7 and len({r["id"] for r in rows}) == 7
    assert sum(r["status"] == "done" for r in rows) == 6


def test_bad_inputs_end_in_one_sentence(ray_session, dataset, package, tmp_path, capsys):
    cases = [
        (["audit", tmp_path / "nowhere", "--model", package, "--out", tmp_path / "a"], "no such file"),
        (["audit", dataset, "--model", package, "--out", dataset / "inside"], "inside"),
        (["audit", dataset, "--model", package, "--out", tmp_path / "b", "--retry-failed"], "--resume"),
        (["audit", dataset, "--model", package, "--out", tmp_path / "c", "--sample", "0"], "--sample"),
        (["audit", dataset, "--model", tmp_path / "nomodel", "--out", tmp_path / "d"], "nomodel"),
    ]
    for argv, words in cases:
        code, _, err = run(capsys, *argv, *GRIDS)
        assert code == 2 and one_line(err) and words in err, (argv, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()


def test_without_ray_the_audit_says_how_to_install_it(dataset, package, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, _, err = run(capsys, "audit", dataset, "--model", package, "--out", tmp_path / "a", *GRIDS)
    assert code == 2 and one_line(err) and "dida-slicer[audit]" in err
    assert not (tmp_path / "a").exists()


def test_view_item_opens_a_row_as_a_dida_view(audit, tmp_path, capsys):
    from DiDALib.cli.view_item import item_source

    rows = [r for r in table(audit) if r["status"] == "done"]
    item = rows[0]["id"]
    code, out, _ = run(capsys, "view", audit, "--item", item, "--out", tmp_path / "item.html")
    assert code == 0 and (tmp_path / "item.html").stat().st_size > 10_000
    src = item_source(audit, item)
    with AuditStore(audit / STORE_FILE) as store:
        arrays = store.arrays(item)
    result = src.explanation.results[0]
    for i, g in enumerate(result.grids):
        assert np.array_equal(result.deltas[g], arrays[f"d{i}"])
    assert src.bscans.shape[1:] == (int(rows[0]["height"]), int(rows[0]["width"]))
    code, _, err = run(capsys, "view", audit, "--item", "drusen/broken.png", "--out", tmp_path / "x.html")
    assert code == 2 and one_line(err) and "failed" in err
    code, _, err = run(capsys, "view", audit)
    assert code == 2 and one_line(err) and "--item" in err


@pytest.fixture(scope="module")
def driver():
    need_browser()
    with chromium(1400, 1200) as d:
        yield d


def test_the_audit_page_is_offline_sortable_filterable_and_says_what_summary_json_says(driver, audit):
    page = audit / "audit.html"
    summary = json.loads((audit / "summary.json").read_text())
    driver.get("about:blank")  # a fresh browser's first tab loads the browser's own new-tab page: let it go first
    time.sleep(0.5)
    console(driver), requests(driver)
    driver.get(page.resolve().as_uri())
    end = time.monotonic() + 20
    while not driver.execute_script("return document.body && document.body.dataset.ready || null"):
        assert time.monotonic() < end, console(driver)
        time.sleep(0.05)
    logs = console(driver)
    assert not [e for e in logs if e["level"] in ("SEVERE", "WARNING")], logs
    urls = requests(driver)
    assert all(u == page.resolve().as_uri() or u.startswith("data:") for u in urls), urls
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#confusion tbody tr')].map(r => [...r.querySelectorAll('td')]"
        ".map(c => Number(c.textContent)))")
    assert cells == summary["confusion"]["counts"]
    ids = lambda: driver.execute_script("return [...document.querySelectorAll('#table tbody tr')].map(r => r.dataset.id)")
    assert len(ids()) == 7
    header = lambda key: driver.find_element("css selector", f'#table th[data-key="{key}"]')
    header("inside").click()
    values = driver.execute_script("return [...document.querySelectorAll('#table tbody tr')].map(r => "
                                   "window.didaAudit.data.rows.find(x => x.id === r.dataset.id).inside)")
    done = [v for v in values if v is not None]
    assert done == sorted(done) and values[-1] is None  # ascending, the failed item (no value) last
    header("inside").click()
    values = driver.execute_script("return [...document.querySelectorAll('#table tbody tr')].map(r => "
                                   "window.didaAudit.data.rows.find(x => x.id === r.dataset.id).inside)")
    assert [v for v in values if v is not None] == sorted(done, reverse=True)
    box = driver.find_element("id", "filter")
    box.send_keys("wet_amd/")
    assert sorted(ids()) == ["wet_amd/wet_amd-0.png", "wet_amd/wet_amd-1.png"]
    box.clear()
    box.send_keys(" ")  # the input event of clear() does not fire in every driver: type, then erase
    box.send_keys("\b")
    driver.execute_script("document.getElementById('kind-filter').value = 'failed';"
                          "document.getElementById('kind-filter').dispatchEvent(new Event('change'))")
    assert ids() == ["drusen/broken.png"]
    driver.find_element("css selector", "#table tbody tr").click()
    assert "--item" in driver.find_element("id", "command").text
    assert driver.find_element("id", "accuracy").text == f"{summary['accuracy']:.3f}"
    assert len(driver.find_elements("css selector", ".card[data-class]")) == len(summary["per_class"]) - sum(
        1 for v in summary["per_class"].values() if not v["items"])


def test_every_worker_runs_the_model_as_torch_runs_it_and_the_seed_draws_the_sample(dataset, package, tmp_path):
    """An item's bits depend on the worker's cores only: no worker picks its own runtime by timing (``--runtime
    auto`` of dida explain); an audit computes the paper's d, and its --seed draws --sample."""
    from DiDALib.audit.run import _explain_fields
    from DiDALib.cli import build_parser
    from DiDALib.cli.audit import request_from_args

    args = build_parser().parse_args(["audit", str(dataset), "--model", str(package), "--out", str(tmp_path / "a"),
                                      "--sample", "3", "--seed", "5", *GRIDS])
    request = request_from_args(args)
    assert request.seed == 5 and request.explain.estimator == "leave-one-out"
    fields = _explain_fields(request.explain, "probabilities", "cpu")
    assert fields["runtime"] == "torch" and fields.get("estimator", "leave-one-out") == "leave-one-out"
    assert fields["channels_last"] is False  # a memory format chosen by timing changes the last bits
