"""Benchmark: how fast DiDA's worker process answers the Slicer session.

    python Testing/benchmarks/bench_worker.py --json
    python Testing/benchmarks/bench_worker.py --device cuda --json
    python Testing/benchmarks/bench_worker.py --runtime torch --json   (the default, auto: the runtime it chooses)

Jobs in one fresh worker, as "Explain this B-scan" and then "Explain volume" with Cancel:

1. the first job (a new process: Python starts, torch is imported, the model package loaded), one whole B-scan with
   previews: seconds from the request to the ``ready`` event, to the first grid event (the first preview the session
   can draw) and to the B-scan's end;
2. ``--rounds`` second jobs on the same model (warm), each cancelled at its first grid: seconds from the request to
   that first grid event. Each round also times the same B-scan in this process without a worker (an engine warmed
   up the same way, the worker idle meanwhile): the model's own time to the first grid, which no worker can beat.
   Medians and their ratio come from the same rounds, so a busy machine slows both alike;
3. a volume job cancelled after its first finished B-scan: seconds from the cancel request to the ``cancelled``
   event, and the model passes made after the request next to the batch size (Cancel stops within one batch).

Each time is measured by this process, polling the job's events every ``--poll`` seconds as the session does.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from DiDALib.models.package import phantom_model_path  # noqa: E402
from DiDALib.phantom import make_volume  # noqa: E402
from DiDALib.worker.client import WorkerClient  # noqa: E402
from DiDALib.worker.protocol import JobRequest, ModelRequest  # noqa: E402


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_job(worker: WorkerClient, request: JobRequest, bscans, poll: float, cancel_after: str | None = None,
            timeout: float = 900.0) -> dict:
    """Send a job and time its events (seconds since the request); ``cancel_after`` an event kind to cancel on."""
    start = time.perf_counter()
    job = worker.submit(request, bscans)
    times: dict[str, float] = {}
    cancelled_at, ended, runtime = None, None, None
    while not job.finished:
        for event in job.poll():
            now = time.perf_counter() - start
            times.setdefault(event.kind, now)
            if event.kind == "runtime":
                runtime = {k: event.data.get(k) for k in ("runtime", "runtime_reason")}
            if event.kind == cancel_after and cancelled_at is None:
                cancelled_at = now
                job.cancel()
            if event.terminal:
                ended = event
        if time.perf_counter() - start > timeout:
            job.cancel()
            raise TimeoutError(f"the job did not end within {timeout} s")
        time.sleep(poll)
    job.release()
    out = {f"{kind}_s": round(t, 3) for kind, t in times.items()}
    out["end"] = ended.kind
    if runtime is not None:
        out.update(runtime)
    if cancelled_at is not None:
        out["cancel_latency_s"] = round(times[ended.kind] - cancelled_at, 3)
        out.update({k: ended.data.get(k) for k in ("passes_at_request", "passes_done", "batch_size")})
    if ended.kind == "error":
        out["error"] = ended.data.get("message")
    return out


def warmed_explainer(model: ModelRequest, settings: dict, bscans):
    """An explainer in this process whose engine did one whole B-scan (as the worker's did in job 1)."""
    from DiDALib.models.package import load_model_package
    from DiDALib.pipeline import ExplainSettings, VolumeExplainer

    explainer = VolumeExplainer(load_model_package(model.path),
                                ExplainSettings(grids=tuple(settings["grids"]), device=settings["device"],
                                                runtime=settings["runtime"]))
    for _ in explainer.explain(bscans, [0]):
        pass
    return explainer


def in_process_first_grid(explainer, bscans) -> float:
    """Seconds to the first grid of B-scan 1 in this process (the run stops there)."""
    from DiDALib.engine.core import DiDACancelled

    start, first = time.perf_counter(), []
    try:
        for _ in explainer.explain(bscans, [1], on_grid=lambda *a: first.append(time.perf_counter() - start),
                                   cancel=lambda: bool(first)):
            pass
    except DiDACancelled:
        pass
    return round(first[0], 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model package (default: the phantom model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="auto", help="the worker's and the in-process twin's runtime")
    parser.add_argument("--grids", default="7,9,11,13,15,17,19,21", help="grid sizes (default: the paper's)")
    parser.add_argument("--volume", type=int, default=4, help="B-scans of the cancelled volume job")
    parser.add_argument("--poll", type=float, default=0.005, help="seconds between polls (the module: 0.1)")
    parser.add_argument("--rounds", type=int, default=5, help="warm second jobs (each with its in-process twin)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    model = ModelRequest(str(args.model or phantom_model_path()))
    settings = {"grids": [int(n) for n in args.grids.split(",")], "device": args.device, "runtime": args.runtime}
    bscans, _labels, _masks = make_volume(n_bscans=max(2, args.volume), seed=4)
    report = {"model": model.path, "settings": settings, "bscan_shape": list(bscans.shape[1:]),
              "python": platform.python_version(), "machine": platform.machine(), "poll_s": args.poll}
    with WorkerClient() as worker:
        _log("job 1: a new worker, one B-scan with previews")
        report["first_job"] = run_job(worker, JobRequest(model, settings, [0], preview=True), bscans[[0]], args.poll)
        _log(f"warming up an engine in this process (the worker idles), then {args.rounds} rounds")
        explainer = warmed_explainer(model, settings, bscans)
        worker_s, alone_s = [], []
        for _ in range(args.rounds):
            job = run_job(worker, JobRequest(model, settings, [1], preview=True), bscans[[1]], args.poll,
                          cancel_after="grid")
            worker_s.append(job["grid_s"])
            alone_s.append(in_process_first_grid(explainer, bscans))
        report["second_job"] = {"grid_s": worker_s, "median_grid_s": statistics.median(worker_s),
                                "batch_size": job.get("batch_size"), "in_process_grid_s": alone_s,
                                "in_process_median_grid_s": statistics.median(alone_s),
                                "in_process_batch_size": explainer.engine.batch_size,
                                "in_process_runtime": explainer.runtime_choice.name,
                                "ratio_to_in_process": round(statistics.median(worker_s) / statistics.median(alone_s),
                                                             2)}
        _log(f"job 3: {args.volume} B-scans, cancelled after the first one")
        n = args.volume
        report["cancel_job"] = run_job(worker, JobRequest(model, settings, list(range(n))), bscans[:n], args.poll,
                                       cancel_after="result")
        report["worker_starts"] = worker.starts
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        first, second, cancel = report["first_job"], report["second_job"], report["cancel_job"]
        print(f"first job:  ready {first.get('ready_s')} s, first grid {first.get('grid_s')} s, "
              f"B-scan done {first.get('done_s')} s; runtime {first.get('runtime')}: {first.get('runtime_reason')}")
        print(f"second job: first grid {second['median_grid_s']} s (median; warm worker), the model alone in this "
              f"process {second['in_process_median_grid_s']} s (ratio {second['ratio_to_in_process']})")
        print(f"cancel:     {cancel.get('cancel_latency_s')} s from the request to 'cancelled' "
              f"({cancel.get('passes_done', 0) - cancel.get('passes_at_request', 0)} passes after it, batch size "
              f"{cancel.get('batch_size')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
