"""Benchmark: how long "Explain volume" holds Slicer's main thread, on a large volume (slicer-core scene).

    python Testing/benchmarks/bench_submit.py --json
    python Testing/benchmarks/bench_submit.py --shape 128 496 1024 --dtype uint8 --json

The module's click makes an ``ExplainSession`` on the volume node and starts it (the chosen B-scans go to the job's
folder for the worker); then its QTimer polls the session every 100 ms with a 0.05 s share. This times each of
those calls on the main thread, as the module makes them: the session, ``start``, and every ``poll(max_seconds=0.05)``
until the first result (the worker loads the demo model meanwhile, in its own process; the poll that applies the
first result makes the run's overlays), then a cancel and its polls, then ``close``. ``longest_by_call_s`` gives
the longest single call of each kind, during which Slicer could not redraw or answer a click: ``session``,
``start`` and the polls before the first result are the submit; the poll that applies the first result makes
the run's overlays on the whole volume (``longest_event_s``: the longest event of each kind applied). The default volume is 128 B-scans of 496 x 1024 float32 (260 MB:
what DiDA's reader makes of a 128-B-scan Spectralis or Cirrus cube).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib.models.package import demo_model_path  # noqa: E402
from DiDALib.mrml.session import ExplainSession  # noqa: E402
from DiDALib.mrml.volumes import add_volume, ijk_to_ras  # noqa: E402
from DiDALib.worker.client import WorkerClient  # noqa: E402

from DiDALib.mrml.selftest.headless import HeadlessEnvironment  # noqa: E402


def timed(calls: list, name: str, fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    calls.append((name, time.perf_counter() - started))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 496, 1024), metavar=("BSCANS", "DEPTH", "WIDTH"))
    parser.add_argument("--dtype", choices=("float32", "uint8"), default="float32",
                        help="the volume node's voxels: DiDA's reader makes float32, an NRRD read by Slicer uint8")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n, depth, width = args.shape
    rng = np.random.default_rng(0)
    calls: list[tuple[str, float]] = []
    voxels = (rng.random((n, depth, width), dtype=np.float32) if args.dtype == "float32"
              else rng.integers(0, 256, (n, depth, width), dtype=np.uint8))
    with HeadlessEnvironment() as env, WorkerClient() as worker:
        node = add_volume(env.scene, voxels, ijk_to_ras((0.0114, 0.0039, 0.12)), "big")
        del voxels  # the node holds its own copy, as after Add Data
        settings = {"grids": [7], "device": "cpu", "batch_size": 16, "classes": "top3"}
        started = time.perf_counter()
        session = timed(calls, "session", ExplainSession, env.scene, node, worker, demo_model_path(), settings)
        timed(calls, "start", session.start, list(range(n)))
        deadline = time.monotonic() + args.timeout
        polls = 0
        handled: dict[str, float] = {}
        handle = session.handle

        def timed_handle(kind, data, draw=True):  # which event a long poll was applying
            started_event = time.perf_counter()
            handle(kind, data, draw=draw)
            handled[kind] = max(handled.get(kind, 0.0), time.perf_counter() - started_event)

        session.handle = timed_handle
        while time.monotonic() < deadline and not session.explanation or not session.explanation.results:
            before = time.perf_counter()
            going = session.poll(max_seconds=0.05)
            got = bool(session.explanation and session.explanation.results)
            calls.append(("poll applying the first result" if got else "poll before the first result",
                          time.perf_counter() - before))
            if not going:
                break
            polls += 1
            if session.info is not None and "ready_s" not in locals():
                ready_s = time.perf_counter() - started
            time.sleep(0.05)  # the rest of the timer's 100 ms: Slicer's own events
        first_result_s = time.perf_counter() - started
        timed(calls, "cancel", session.cancel)
        while timed(calls, "poll after cancel", session.poll, max_seconds=0.05):
            polls += 1
            time.sleep(0.05)
        timed(calls, "close", session.close)
        timed(calls, "worker close", worker.close)
    blocks = {}
    for name, seconds in calls:
        blocks[name] = max(blocks.get(name, 0.0), seconds)
    out = {"shape": [n, depth, width], "dtype": args.dtype, "megabytes": round(n * depth * width * 4 / 1e6, 1),
           "longest_block_s": round(max(s for _, s in calls), 4),
           "longest_by_call_s": {k: round(v, 4) for k, v in blocks.items()},
           "longest_event_s": {k: round(v, 4) for k, v in handled.items()},
           "polls": polls, "state": session.state, "ready_s": round(locals().get("ready_s", float("nan")), 2),
           "first_result_s": round(first_result_s, 2), "python": platform.python_version()}
    print(json.dumps(out, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
