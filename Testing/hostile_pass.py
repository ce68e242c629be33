"""The hostile pass: bad, lying and malicious inputs against ``dida explain``, ``dida view``, ``dida package``, model
packages and ``python -m DiDALib.worker``, each in its own child process under an address-space cap, with a table:
the case, the exit code, the first line said, any file written outside ``--out``, the peak resident memory, and
whether the case held (``ok``) or found a failure (``FAIL``: a marker file that appeared, a user file changed or
removed, a hang, a traceback, "unexpected error" or exit 1 for bad input, an exit other than expected).

    python Testing/hostile_pass.py                      # every case (200; about 25 minutes on 2 busy cores)
    python Testing/hostile_pass.py --only view --json   # the cases whose name contains "view", as JSON
    python Testing/hostile_pass.py --only view,audit    # those whose name contains either
    python Testing/hostile_pass.py --root /path/to/other/checkout --skip worker   # another DiDALib, e.g. an older one

It writes only inside a temporary folder (removed at the end, ``--keep`` keeps it). The cases are those of issue
#21 ("Why") and variations of each, and those of the features that came after (``hostile_feature_cases``);
``Testing/tests`` holds the unit tests of every one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hostile_feature_cases import audit_cases, cache_cases, images_cases, shapley_cases
from hostile_io_cases import input_cases, option_cases, staging_cases, view_cases, worker_cases
from hostile_model_cases import model_code_cases, package_cases
from hostile_sandbox import HERE, Case, Sandbox, _result

from bombs import run_capped  # noqa: E402 (on the path hostile_sandbox set)

PEAK_LIMIT = 1.5e9  # bytes: a refusal that peaked above this decoded first


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns) if not p.is_dir() or p.is_symlink() else (0, 0)
    return out


def run_case(case: Case, sb: Sandbox, root: Path) -> dict:
    victims = {str(v): v.read_bytes() if v.is_file() else None for v in case.victims}
    before = _snapshot(sb.root)
    argv = [str(a) for a in case.argv]
    out = case.out or (Path(argv[argv.index("--out") + 1]) if "--out" in argv[:-1] else None)
    started = time.monotonic()
    try:
        code, err, peak = run_capped(case.argv, sb.root, timeout=case.timeout, stdin=case.stdin, root=root,
                                     env=case.env)
        hang = False
    except Exception:  # noqa: BLE001 -- subprocess.TimeoutExpired: the case hung
        code, err, peak, hang = "timeout", "", 0, True
    seconds = time.monotonic() - started
    after = _snapshot(sb.root)
    written = sorted(p for p, v in after.items() if before.get(p) != v and not p.split("/")[-1].startswith("report-")
                     and not (out is not None and (p == str(out) or p.startswith(str(out) + os.sep)
                                                  or Path(p).name.startswith(f".{Path(out).name}.dida-")))
                     and not any(p == str(a) or p.startswith(str(a) + os.sep) for a in case.also))
    lines = [ln for ln in err.splitlines() if ln.strip() and " started (Python " not in ln]
    first = lines[0] if lines else ""
    problems = []
    if hang:
        problems.append("hang")
    if code != case.expect:
        problems.append(f"exit {code}, expected {case.expect}")
    if "Traceback" in err:
        problems.append("traceback")
    if "unexpected error" in err:
        problems.append("unexpected error")
    if case.expect == 2 and not case.argv[:1] == ["--worker"] and len(lines) != 1:
        problems.append(f"{len(lines)} lines")
    appeared = [str(m) for m in case.markers if m.exists()]
    if appeared:
        problems.append("MARKER " + ", ".join(appeared))
    changed = [p for p, data in victims.items() if (Path(p).read_bytes() if Path(p).is_file() else None) != data]
    if changed:
        problems.append("LOST " + ", ".join(changed))
    if written:
        problems.append("wrote outside --out")
    if case.expect == 2 and peak > PEAK_LIMIT:
        problems.append(f"peak {peak / 1e9:.1f} GB")
    return {"case": case.name, "exit": code, "first_line": first[:160], "outside": written[:3],
            "peak_mb": round(peak / 1e6), "seconds": round(seconds, 1), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the cases whose name contains this (or any of these, comma-separated)")
    parser.add_argument("--skip", help="leave out the cases whose name contains this")
    parser.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose DiDALib runs")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dida-hostile-"))
    try:
        sb = Sandbox(tmp)
        result = _result(sb, args.root)
        cases = [*model_code_cases(sb), *package_cases(sb), *input_cases(sb), *option_cases(sb),
                 *view_cases(sb, result), *staging_cases(sb, result), *worker_cases(sb), *images_cases(sb),
                 *cache_cases(sb, args.root), *shapley_cases(sb), *audit_cases(sb)]
        only = [w for w in (args.only or "").split(",") if w]
        cases = [c for c in cases if (not only or any(w in c.name for w in only))
                 and not (args.skip and args.skip in c.name)]
        rows = []
        for i, case in enumerate(cases, 1):
            row = run_case(case, sb, args.root)
            rows.append(row)
            if not args.json:
                verdict = "ok  " if not row["problems"] else "FAIL"
                print(f"{i:3d} {verdict} {row['case'][:48]:48s} exit {str(row['exit']):7s} {row['peak_mb']:5d} MB "
                      f"{row['seconds']:5.1f} s | {row['first_line'][:110]}"
                      + (f" | {'; '.join(row['problems'])}" if row["problems"] else "")
                      + (f" | outside: {row['outside']}" if row["outside"] else ""), flush=True)
        summary = {"cases": len(rows), "failed": sum(bool(r["problems"]) for r in rows),
                   "security (marker appeared)": sum(any(p.startswith("MARKER") for p in r["problems"]) for r in rows),
                   "data lost": sum(any(p.startswith("LOST") for p in r["problems"]) for r in rows),
                   "hangs": sum("hang" in r["problems"] for r in rows),
                   "unexpected errors": sum("unexpected error" in r["problems"] for r in rows),
                   "tracebacks": sum("traceback" in r["problems"] for r in rows),
                   "wrote outside --out": sum("wrote outside --out" in r["problems"] for r in rows),
                   "max_peak_mb": max((r["peak_mb"] for r in rows), default=0)}
        if args.json:
            print(json.dumps({"summary": summary, "rows": rows}, indent=2))
        else:
            print(json.dumps(summary, indent=2))
        return 1 if summary["failed"] else 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
