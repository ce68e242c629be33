"""Benchmark: ``dida audit`` on Ray, for speed and for "nothing lost, nothing twice".

    python Testing/benchmarks/bench_audit.py --json                     # everything below, 40 Kermany B-scans
    python Testing/benchmarks/bench_audit.py --parts workers --sample 4 --grids 2,3 --json   # a quick look

Each part runs the real command (``python -m DiDALib.cli audit``) as its own process and compares every item's
record (its table row and its arrays: scores and every grid's d) with the reference, bit for bit:

- ``workers``: the same audit on 1 and on 2 local workers (one core each): throughput of each (items per second
  between the first and the last committed batch, so Ray's start-up is left out; the wall time is given too) and
  their ratio; the 2-worker audit is the reference.
- ``cluster``: a two-node Ray cluster started on this machine (``ray start --head`` and a second ``ray start
  --address``, one CPU each), the audit joining it (``--address``) with 2 workers: the same records.
- ``node-loss``: the same cluster, the second node's raylet killed once a few items are recorded: the audit
  completes with every item exactly once and the same records.
- ``resume``: the audit stopped at random moments (SIGKILL, SIGTERM, SIGINT in turn; ``--kills`` times: in turn a
  random time after the start, often in Ray's start-up, and a random time after the run's first new record), resumed
  with ``--resume`` each time, then to its end: the same records as the uninterrupted one.

The data default to the Kermany folder of this project's shared data when it exists (``--data``), else phantom
B-scans written to a temporary ImageFolder; the model to the bundled demo model (``--model``). Every Ray process it
started is stopped at the end (``ray stop --force``). The machine's load is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from DiDALib.audit.store import STORE_FILE, AuditStore  # noqa: E402

KERMANY = ROOT.parent.parent / "shared" / "data" / "kermany2018"
RAY = str(Path(sys.executable).parent / "ray")
# Ray 2.5x starts clusters with token authentication (the token in ~/.ray/auth_token); a node or driver that joins one
# must say so, or it offers none and is refused.
ENV = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
PARTS = ("workers", "cluster", "node-loss", "resume")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def audit(args, out: Path, *extra: str, timeout: float = 3600) -> tuple[int, float, str]:
    """One ``dida audit`` run to its end: exit code, wall seconds, output."""
    cmd = [sys.executable, "-m", "DiDALib.cli", "audit", str(args.data), "--model", str(args.model), "--out",
           str(out), "--sample", str(args.sample), "--grids", args.grids, "--device", "cpu", "--quiet", *extra]
    started = time.perf_counter()
    run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    return run.returncode, time.perf_counter() - started, run.stdout + run.stderr


def records(out: Path) -> dict:
    """Every recorded item: (status, row, arrays as bytes) by id; and how many rows the store holds in all."""
    with AuditStore(out / STORE_FILE) as store:
        got = {i: (status, row, {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in store.arrays(i).items()}
                   if status == "done" else None) for i, status, _, row in store.records()}
        rows = store._db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM results").fetchone()
    return {"items": got, "rows": rows[0], "distinct": rows[1]}


def same(a: dict, b: dict) -> dict:
    """How two audits' records compare: items in both, and those whose row or arrays differ in any bit."""
    differ = [i for i in a["items"] if i not in b["items"] or a["items"][i] != b["items"][i]]
    return {"items": len(a["items"]), "identical": len(a["items"]) - len(differ), "differ": differ[:5],
            "missing": sorted(set(b["items"]) ^ set(a["items"]))[:5]}


def throughput(out: Path) -> float:
    """Items per second between the first and the last committed batch."""
    db = sqlite3.connect(out / STORE_FILE)
    times = sorted(t for (t,) in db.execute("SELECT finished FROM results"))
    db.close()
    first = times.count(times[0])
    return (len(times) - first) / (times[-1] - times[0]) if times[-1] > times[0] else float("nan")


def ray_cli(*args: str, check: bool = True) -> str:
    run = subprocess.run([RAY, *args], env=ENV, capture_output=True, text=True, timeout=300)
    if check and run.returncode:
        raise RuntimeError(f"ray {' '.join(args)} failed: {run.stderr[-800:]}")
    return run.stdout + run.stderr


def raylets() -> dict[int, str]:
    """The raylet processes on this machine: pid -> command line."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "/raylet " in cmd or cmd.split(" ")[0].endswith("/raylet"):
                out[int(p.name)] = cmd
    return out


def start_cluster(port: int) -> tuple[str, int]:
    """A head node and a second node on this machine, one CPU each: the address and the second node's raylet."""
    ray_cli("stop", "--force", check=False)
    ray_cli("start", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", "--node-ip-address=127.0.0.1",
            "--include-dashboard=false", "--disable-usage-stats")
    head = set(raylets())
    address = f"127.0.0.1:{port}"
    ray_cli("start", f"--address={address}", "--num-cpus=1", "--num-gpus=0", "--node-ip-address=127.0.0.1",
            "--disable-usage-stats")
    second = [pid for pid in raylets() if pid not in head]
    if len(second) != 1:
        raise RuntimeError(f"the second node's raylet was not found: {raylets()}")
    return address, second[0]


def recorded(out: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{out / STORE_FILE}?mode=ro", uri=True, timeout=5)
        n = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        db.close()
        return n
    except sqlite3.Error:
        return 0


def part_workers(args, work: Path, report: dict) -> dict:
    runs = {}
    for name, workers in (("one", "1"), ("two", "2")):
        out = work / f"workers-{name}"
        code, wall, text = audit(args, out, "--workers", workers, "--cpus-per-worker", "1")
        assert code == 0, text[-2000:]
        runs[name] = (out, wall)
    reference = records(runs["two"][0])
    one, two = throughput(runs["one"][0]), throughput(runs["two"][0])
    report["workers"] = {"one_worker": {"items_per_s": one, "wall_s": runs["one"][1]},
                         "two_workers": {"items_per_s": two, "wall_s": runs["two"][1]},
                         "ratio": two / one, "same_records": same(records(runs["one"][0]), reference),
                         "load": load()}
    return reference


def part_cluster(args, work: Path, report: dict, reference: dict) -> None:
    address, _ = start_cluster(args.port)
    try:
        out = work / "cluster"
        code, wall, text = audit(args, out, "--address", address, "--workers", "2", "--cpus-per-worker", "1")
        assert code == 0, text[-2000:]
        got = records(out)
        report["cluster"] = {"wall_s": wall, "items_per_s": throughput(out), "rows": got["rows"],
                             "same_records": same(got, reference), "load": load()}
    finally:
        ray_cli("stop", "--force", check=False)


def part_node_loss(args, work: Path, report: dict, reference: dict) -> None:
    address, second = start_cluster(args.port)
    out = work / "node-loss"
    cmd = [sys.executable, "-m", "DiDALib.cli", "audit", str(args.data), "--model", str(args.model), "--out", str(out),
           "--sample", str(args.sample), "--grids", args.grids, "--device", "cpu", "--quiet", "--address", address,
           "--workers", "2", "--cpus-per-worker", "1"]
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while recorded(out) < max(2, args.sample // 5) and proc.poll() is None:
            time.sleep(0.5)
        at = recorded(out)
        os.kill(second, signal.SIGKILL)  # the second node's raylet: its worker dies with it
        text = proc.communicate(timeout=3600)[0]
        assert proc.returncode == 0, text[-2000:]
        got = records(out)
        report["node_loss"] = {"killed_after_items": at, "wall_s": time.perf_counter() - started,
                               "rows": got["rows"], "distinct": got["distinct"],
                               "same_records": same(got, reference), "load": load()}
    finally:
        ray_cli("stop", "--force", check=False)


def part_resume(args, work: Path, report: dict, reference: dict) -> None:
    out = work / "resume"
    rng = random.Random(args.seed)
    kills = []
    signals = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    cmd = [sys.executable, "-m", "DiDALib.cli", "audit", str(args.data), "--model", str(args.model), "--out", str(out),
           "--sample", str(args.sample), "--grids", args.grids, "--device", "cpu", "--quiet", "--workers", "2",
           "--cpus-per-worker", "1", "--resume"]
    for k in range(args.kills):
        before = recorded(out)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        mode = "start-up" if k % 2 == 0 else "mid-run"
        if mode == "mid-run":  # after this run's first record, so that the stop meets the work, not the start
            while recorded(out) <= before and proc.poll() is None:
                time.sleep(0.2)
            wait = rng.uniform(0.0, args.kill_after[1] - args.kill_after[0])
        else:
            wait = rng.uniform(args.kill_after[0], args.kill_after[1])
        time.sleep(wait)
        wait = time.monotonic() - started
        sig = signals[k % len(signals)]
        if proc.poll() is None:
            proc.send_signal(sig)
        text = proc.communicate(timeout=600)[0]
        ray_cli("stop", "--force", check=False)  # a SIGKILLed driver leaves its local Ray behind
        kills.append({"signal": signal.Signals(sig).name, "when": mode, "after_s": round(wait, 1), "exit": proc.returncode,
                      "recorded_before": before, "recorded_after": recorded(out), "said": text.strip()[-200:]})
    code, wall, text = audit(args, out, "--workers", "2", "--cpus-per-worker", "1", "--resume")
    assert code == 0, text[-2000:]
    got = records(out)
    report["resume"] = {"kills": kills, "final_wall_s": wall, "rows": got["rows"], "distinct": got["distinct"],
                        "same_records": same(got, reference), "load": load()}


def phantom_dataset(folder: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    from DiDALib.phantom import CLASSES, make_bscan

    rng = np.random.default_rng(0)
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        (folder / label).mkdir(parents=True, exist_ok=True)
        image, _ = make_bscan(label, rng, 128, 192)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / label / f"{label}-{i}.png")
    return folder


def main(argv=None) -> int:
    from DiDALib.models.package import demo_model_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="dataset (default: the shared Kermany folder, else phantoms)")
    p.add_argument("--model", type=Path, help="model package (default: the demo model)")
    p.add_argument("--sample", type=int, default=40)
    p.add_argument("--grids", default="7,11,15")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--kill-after", type=float, nargs=2, default=(12.0, 45.0), metavar=("MIN", "MAX"),
                   help="seconds after each start at which it is stopped, drawn uniformly")
    p.add_argument("--seed", type=int, default=27)
    p.add_argument("--port", type=int, default=6391)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if unknown := [x for x in parts if x not in PARTS]:
        p.error(f"unknown parts {unknown}")
    args.model = args.model or demo_model_path()
    report = {"command": " ".join(sys.argv), "load_at_start": load(), "sample": args.sample, "grids": args.grids}
    with tempfile.TemporaryDirectory(prefix="dida-bench-audit-") as tmp:
        work = Path(tmp)
        if args.data is None:
            args.data = KERMANY if KERMANY.is_dir() else phantom_dataset(work / "phantoms", args.sample)
        report["data"] = str(args.data)
        try:
            reference = part_workers(args, work, report)
            if "cluster" in parts:
                part_cluster(args, work, report, reference)
            if "node-loss" in parts:
                part_node_loss(args, work, report, reference)
            if "resume" in parts:
                part_resume(args, work, report, reference)
        finally:
            if set(parts) - {"workers"}:
                ray_cli("stop", "--force", check=False)
    report["load_at_end"] = load()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
