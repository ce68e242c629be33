"""Size and speed of the interactive DiDA View page (``report.html``) on a synthetic result (phantom B-scans, made-up
d with the demo's shapes: 5 classes, 8 grids, 160 x 160 model input), in Debian's headless Chromium:

- the page's size, and the time ``dida view`` took to write it;
- opening: from navigation start to the first B-scan drawn, as the page measures it (``ready``), and as the
  harness sees it (from the WebDriver request to ready seen), in a fresh browser and once more;
- the slider: every B-scan in turn, each drawn before the next is asked for (the time of each step, the first
  visit of each B-scan, with its images decoded then), and back over the last ones seen (decoded already);
- the mouse: moving over a panel (the square in every panel and the readout redrawn), per move.

    python Testing/benchmarks/bench_view.py --bscans 128 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "tests")]

import numpy as np
from browser import chromium, console, missing, open_page
from view_pages import synthetic_result

from DiDALib import cli

SLIDER = """
const done = arguments[arguments.length - 1], v = window.didaView, n = v.data.bscans.length, first = [], again = [];
(async () => {
  for (let i = 1; i < n; i++) {
    const t = performance.now(); v.state.pos = i; await v.render(); first.push(performance.now() - t);
  }
  for (let i = n - 2; i >= Math.max(0, n - 30); i--) {  // back over B-scans just seen, their images decoded
    const t = performance.now(); v.state.pos = i; await v.render(); again.push(performance.now() - t);
  }
  done([first, again]);
})();
"""
MOUSE = """
const done = arguments[arguments.length - 1], mark = document.querySelectorAll("canvas.mark")[1];
const r = mark.getBoundingClientRect(), times = [];
for (let i = 0; i < 400; i++) {
  const t = performance.now();
  mark.dispatchEvent(new MouseEvent("mousemove", {clientX: r.left + (i * 7) % r.width, clientY: r.top + (i * 3) % r.height, bubbles: true}));
  times.push(performance.now() - t);
}
done(times);
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bscans", type=int, default=128)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    why = missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp()) / "result"
    started = time.perf_counter()
    synthetic_result(folder, args.bscans)
    made = time.perf_counter() - started
    started = time.perf_counter()
    if cli.main(["view", str(folder)]) != 0:
        return 1
    wrote = time.perf_counter() - started
    page = folder / "report.html"
    out = {"bscans": args.bscans, "classes": 5, "grids": 8, "page_mb": round(page.stat().st_size / 1e6, 2),
           "dida_view_s": round(wrote, 1), "synthetic_result_s": round(made, 1)}
    with chromium() as driver:
        driver.set_script_timeout(300)
        for label in ("first", "again"):
            out[f"open_{label}_s"] = round(open_page(driver, page), 3)
            out[f"ready_{label}_ms"] = round(float(driver.execute_script("return document.body.dataset.ready")))
        out["file_read_ms"] = round(driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseEnd"))
        steps, again = driver.execute_async_script(SLIDER)
        moves = driver.execute_async_script(MOUSE)
        errors = [e for e in console(driver) if e["level"] == "SEVERE"]
    out["slider_step_ms"] = {"median": round(float(np.median(steps)), 1), "p95": round(float(np.percentile(steps, 95)), 1),
                             "max": round(float(np.max(steps)), 1)}
    out["slider_back_ms"] = {"median": round(float(np.median(again)), 1), "max": round(float(np.max(again)), 1)}
    out["mouse_move_ms"] = {"median": round(float(np.median(moves)), 2), "p95": round(float(np.percentile(moves, 95)), 2),
                            "max": round(float(np.max(moves)), 2)}
    out["console_errors"] = len(errors)
    print(json.dumps(out, indent=None if args.json else 2))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
