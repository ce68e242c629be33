"""Renders the screenshot (docs/page.md) of the interactive DiDA View page: a result's report.html in headless
Chromium, the square moved onto a B-scan's strongest evidence, the panels and the readout cut out and scaled to half
size.

    dida demo --out dida-demo && python Testing/make_page_screenshot.py dida-demo --bscan 4
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "Testing" / "tests")]

from browser import chromium, open_page
from PIL import Image


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a result folder with report.html")
    p.add_argument("--bscan", type=int, default=0, help="which explained B-scan to show (its position)")
    p.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "DiDA-View-page.png")
    args = p.parse_args()
    with chromium(2000, 1300) as driver:
        open_page(driver, args.results / "report.html")
        driver.execute_script("window.didaView.go(arguments[0])", args.bscan)
        driver.execute_script("return window.didaView.render()")
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        bottom = driver.execute_script("const r = document.getElementById('readout-table').getBoundingClientRect();"
                                       "return r.bottom + 10")
    shot = shot.crop((0, 0, 1970, int(bottom)))
    small = shot.resize((shot.width // 2, shot.height // 2), Image.Resampling.LANCZOS)
    # A palette of 256 (octree keeps the small yellow square and the red and blue; median cut does not).
    small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1000} kB, {small.width} x {small.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
