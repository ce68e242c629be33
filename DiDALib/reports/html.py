"""The DiDA View as one self-contained page (``report.html``): the B-scan and its classes' Mixed Images side by side,
a square that follows the mouse in every panel, the d of every grid under it, a B-scan slider, the scores along
the volume, contrast, feature-scale and en-face maps.

One file, everything inside (images and numbers as base64): a page opened from the file system may neither read
the pixels of neighbouring image files (the canvas would be tainted) nor fetch anything, and its Content Security
Policy forbids every request but its own inline data. What it shows is made by ``page_data``; the page only looks
up and composites (``html_script``), in the markup and style of ``html_page``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Mapping
from pathlib import Path

from .. import __version__
from ..engine.saturation import saturation_warning
from .html_page import ENFACE, PAGE, PLOT, STYLE
from .html_script import SCRIPT
from .figures import DEMO_NOTICE
from .page_data import PageSource, page_data

REPORT_FILE = "report.html"
NOTICE = DEMO_NOTICE


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_policy(style: str = STYLE, script: str = SCRIPT) -> str:
    """The page's Content Security Policy: nothing may be requested (no network, no file); images only from
    data URLs; only this style and this script run (by their hashes)."""
    return (f"default-src 'none'; img-src data:; style-src {_sha256(style)}; script-src {_sha256(script)}; "
            "base-uri 'none'; form-action 'none'")


def _json(data: Mapping) -> str:
    """JSON that cannot end its script element or open markup (every <, > and & escaped)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _run_text(run: Mapping, n_explained: int) -> str:
    """The line under the title: input file (its name only), model, score, B-scans, grids (HTML-escaped)."""
    source = str(run.get("input", ""))
    parts = [f"input {os.path.basename(source.rstrip('/')) or source}" if source else None,
             f"model {run['model_name']}" if run.get("model_name") else None,
             f"score {run['score']}" if run.get("score") else None,
             f"{n_explained} B-scan(s) explained",
             f"grids {', '.join(str(g) for g in run.get('grids', []))}",
             str(run["scan_geometry"]) if run.get("scan_geometry") else None]
    return " · ".join(html.escape(p) for p in parts if p)


def report_html(src: PageSource, fundus_png: bytes | None = None, panel_width: int = 480) -> str:
    """The page of a run as text. ``fundus_png``: the en-face-on-fundus figure, shown where the run drew one."""
    data = page_data(src, panel_width)
    run = src.run
    demo = bool(run.get("demo_model"))
    warning = saturation_warning(src.explanation.results.values())
    fundus = ""
    if fundus_png:
        fundus = ('<h2>On the fundus image</h2><img id="fundus" alt="en-face evidence on the fundus image" src="'
                  "data:image/png;base64," + base64.b64encode(fundus_png).decode("ascii") + '">')
    enface = data["enface"]
    plot = PLOT if data["plot"] else ""
    if enface is not None:
        text = (f"strongest evidence along each A-scan · full brightness at |d| = {enface['scale']:.3g} · "
                f"{enface['size']}; B-scan 0 at the bottom, the current B-scan marked; click to go to a B-scan")
        enface_section = ENFACE.substitute(enface_text=html.escape(text), fundus=fundus)
    else:
        enface_section = ""
    footer = (f"Made by dida {__version__} from the run's results: red = evidence for, blue = against. "
              f"B-scans shown as {data['grey_format']}. Nothing on this page is loaded from anywhere else.")
    return PAGE.substitute(
        policy=content_policy(), title=html.escape(f"DiDA View · {os.path.basename(str(run.get('input', '')))}"),
        style=STYLE, script=SCRIPT, data=_json(data), run=_run_text(run, len(data["bscans"])),
        notice=(f'<p class="notice" id="notice">{html.escape(NOTICE)}</p>' if demo else "")
        + (f'<p class="notice warning" id="score-warning">{html.escape(warning)}</p>' if warning else ""),
        plot=plot, enface=enface_section, footer=html.escape(footer))


def write_report(path: str | os.PathLike, src: PageSource, fundus_png: bytes | None = None,
                 panel_width: int = 480) -> Path:
    """Write the page of a run to ``path`` (the caller chooses where: a staging folder, or a file beside)."""
    out = Path(path)
    out.write_text(report_html(src, fundus_png, panel_width), encoding="utf-8")
    return out
