"""Renders the audit page screenshot (docs/cli.md, docs/audit.md): an audit's audit.html in headless Chromium, from
the top through the per-class maps and the flagged lists, scaled to half size.

    dida audit kermany2018 --model PKG --out audit --sample 40 --grids 7,11,15
    python Testing/make_audit_screenshot.py audit
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "tests")]

from browser import chromium
from PIL import Image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("audit", type=Path, help="an audit folder with audit.html")
    p.add_argument("--until", default="all", help="the id of the section the picture ends above (default: all, the "
                   "table of every item)")
    p.add_argument("--width", type=int, default=1500)
    p.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "DiDA-audit.png")
    args = p.parse_args()
    with chromium(args.width, 4000) as driver:
        driver.get((args.audit / "audit.html").resolve().as_uri())
        end = time.monotonic() + 30
        while not driver.execute_script("return document.body && document.body.dataset.ready || null"):
            if time.monotonic() > end:
                raise TimeoutError("the audit page did not get ready")
            time.sleep(0.05)
        bottom = driver.execute_script("return document.getElementById(arguments[0]).getBoundingClientRect().top",
                                       args.until)
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    shot = shot.crop((0, 0, shot.width, min(shot.height, int(bottom))))
    small = shot.resize((shot.width // 2, shot.height // 2), Image.Resampling.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1000} kB, {small.width} x {small.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
