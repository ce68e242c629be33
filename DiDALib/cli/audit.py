"""``dida audit``: a model audited over a whole dataset on Ray (local by default, or a cluster), every B-scan
explained on its own, resumable, with an audit page (``DiDALib.audit``)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path

from ..io.signals import STOP_SIGNALS, Interrupted
from .common import UsageError, note, progress_bar

EPILOG = """DATA is one of:
  a folder with one subfolder per label (ImageFolder), e.g. kermany2018/CNV/*.jpeg
  a CSV of path,label rows (label optional; paths relative to the CSV)
  a folder of OCT files (every B-scan an item, unlabelled)

An audit stopped for any reason (Ctrl-C, a kill, a full disk, a lost node) keeps every finished B-scan: run the
same command with --resume to continue it. Writes AUDIT/audit.html (open it in a browser), summary.json,
results.csv, and audit.sqlite (the records); `dida view AUDIT --item ID --out item.html` opens one item as a
DiDA View."""


def add_parser(sub) -> None:
    """Register ``dida audit`` on the subcommand parsers ``sub``."""
    a = sub.add_parser("audit", help="audit a model over a whole labelled dataset: where its evidence lies, what it "
                       "confuses, an audit page (on Ray: local, or a cluster)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    a.add_argument("data", help="dataset: a folder of label subfolders, a CSV of path,label, or a folder of OCT files")
    a.add_argument("--model", help="model package folder (default: the bundled demo model)")
    a.add_argument("--out", required=True, help="audit folder (new or empty; an existing audit with --resume)")
    a.add_argument("--sample", type=int, help="audit N B-scans drawn at random, stratified by label (--seed)")
    a.add_argument("--seed", type=int, default=0, help="seed of --sample (default: %(default)s)")
    a.add_argument("--grids", default="paper", help="grid schedule or sizes, as for dida explain (default: paper)")
    a.add_argument("--weights", help="one weight per grid size (default: finer grids slightly heavier)")
    a.add_argument("--fill", default="background", help="what masked cells show, as for dida explain (default: "
                   "background)")
    a.add_argument("--score", choices=("probabilities", "logits", "log-odds", "auto"),
                   help="score mode (default: the model package's); auto is settled once for the whole audit")
    a.add_argument("--trust-code", action="store_true", help="run the model package's own Python code")
    a.add_argument("--device", default="auto", help="auto (default: a GPU per worker where the cluster has GPUs), "
                   "cpu or cuda")
    a.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    a.add_argument("--batch-size", type=int, help="masked images per model call (default: 16 on the CPU, from "
                   "free memory on a GPU)")
    a.add_argument("--workers", type=int, help="workers (Ray actors), each loading the model once (default: one per "
                   "GPU, else one per --cpus-per-worker cores of the machine or cluster)")
    a.add_argument("--cpus-per-worker", type=float, help="CPU cores (torch threads) of each worker (default: 1; an "
                   "item's bits depend on it, not on the number of workers)")
    a.add_argument("--address", help="join a running Ray cluster: auto, or ray://HOST:PORT (default: start a local "
                   "Ray on this machine)")
    a.add_argument("--resume", action="store_true", help="continue the audit in --out (nothing finished is "
                   "computed again); starts one if --out is new")
    a.add_argument("--retry-failed", action="store_true", help="with --resume: explain the failed items again")
    a.add_argument("--force", action="store_true", help="replace an earlier DiDA result or audit in --out (never "
                   "other files)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_audit)


def request_from_args(args):
    """The checked request (every option once, here)."""
    from ..audit.run import AuditRequest
    from ..engine.estimators import LEAVE_ONE_OUT
    from ..models.package import demo_model_path
    from .explain import settings_from_args

    args.classes = "all"
    # an audit records the paper's d of every cell (leave-one-out; its --seed draws --sample, not permutations)
    args.estimator, args.permutations = LEAVE_ONE_OUT, None
    args.runtime = "torch"  # an item's bits must not depend on the runtime a worker's timing would pick (auto)
    settings = settings_from_args(args)
    if args.sample is not None and args.sample < 1:
        raise UsageError(f"--sample {args.sample}: give a positive number of B-scans")
    if args.workers is not None and not 1 <= args.workers <= 4096:
        raise UsageError(f"--workers {args.workers}: give a number of workers from 1 to 4096")
    if args.cpus_per_worker is not None and not 0 < args.cpus_per_worker <= 1024:
        raise UsageError(f"--cpus-per-worker {args.cpus_per_worker}: give a positive number of cores")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed continues an audit: add --resume")
    if args.resume and args.force:
        raise UsageError("--resume continues an audit and --force starts it again: give one of them")
    if args.address is not None and not (args.address == "auto" or args.address.startswith("ray://")
                                         or ":" in args.address):
        raise UsageError(f"--address {args.address!r}: give auto, ray://HOST:PORT or HOST:PORT of a Ray cluster")
    model = Path(args.model) if args.model else demo_model_path()
    return AuditRequest(data=Path(os.path.abspath(args.data)), model=Path(os.path.abspath(model)),
                        out=Path(args.out), explain=settings, sample=args.sample, seed=args.seed,
                        workers=args.workers, cpus_per_worker=args.cpus_per_worker, address=args.address,
                        resume=args.resume, retry_failed=args.retry_failed, force=args.force,
                        trust_code=args.trust_code, quiet=args.quiet)


def _progress(quiet: bool):
    return None if quiet else (lambda total: progress_bar(total, False, "audit"))


def cmd_audit(args) -> int:
    from ..audit.executor import ExecutorError
    from ..audit.run import run_audit

    request = request_from_args(args)
    try:
        import ray  # noqa: F401 -- checked before anything is loaded or written
    except ImportError:
        raise UsageError("dida audit runs on Ray, which is not installed: pip install \"dida-slicer[audit]\"") from None
    received: list[int] = []
    try:
        with _remembered(received):
            outcome = run_audit(request, note, _progress(args.quiet))
    except ExecutorError as exc:
        print(f"dida: error: {exc}; every B-scan finished so far is kept in {request.out} (--resume continues)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        return _stopped(request.out, received[-1] if received else _signum(exc))
    except OSError as exc:
        if not (request.out / "audit.sqlite").is_file():
            raise  # before the audit began: reported as any dida command reports it
        full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        fix = "the disk is full: free some space" if full else "check the disk and the folder"
        print(f"dida: error: cannot write {exc.filename or request.out} ({exc.strerror or exc}): {fix}, then run the "
              f"same command with --resume; every B-scan finished so far is kept in {request.out}", file=sys.stderr)
        return 2
    c = outcome.counts
    failed = outcome.summary["failures"]
    acc = outcome.summary["accuracy"]
    line = (f"dida audit: {c['done'] + c['failed']} of {c['items']} B-scan(s) recorded in {outcome.folder} "
            f"({c['done']} explained, {c['failed']} failed; {outcome.new_records} this run"
            + (f" in {outcome.seconds:.0f} s on {outcome.workers}" if outcome.workers else "") + ")")
    if acc is not None:
        line += f"; accuracy {acc:.3f} on {outcome.summary['labelled']} labelled"
    print(line)
    for f in failed[:10]:
        print(f"  failed {f['id']}: {f['reason']}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more failures: see summary.json")
    print(f"wrote {', '.join(outcome.files)} and run.json in {outcome.folder}: open {outcome.folder / 'audit.html'} "
          "in a web browser")
    return 0


@contextlib.contextmanager
def _remembered(received: list[int]):
    """Note every stop signal before the handler in place (``io.signals``) raises it: Ray's calls turn that
    exception into a plain KeyboardInterrupt, which would lose which signal it was."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def remember(signum, frame):
        received.append(signum)
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, frame)
        else:
            raise Interrupted(signum)

    for s in previous:
        signal.signal(s, remember)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _signum(exc: BaseException) -> int:
    """The stop signal behind an interruption, where it was not noted (``_remembered``)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, Interrupted):
            return seen.signum
        seen = seen.__context__ or seen.__cause__
    return signal.SIGINT


def _stopped(out: Path, signum: int) -> int:
    how = "cancelled" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    print(f"dida: {how}; every B-scan finished so far is kept in {out}: run the same command with --resume to "
          "continue", file=sys.stderr)
    return 130 if signum == signal.SIGINT else 128 + int(signum)
