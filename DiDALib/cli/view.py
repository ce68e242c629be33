"""``dida view RESULTS_DIR``: the interactive DiDA View page (``report.html``) of an existing result, made from its
files alone (``dida_results.npz``, ``volume.nrrd``, ``run.json``): no model is loaded, nothing is computed again
but the maps."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.output_dir import new_file
from ..io.result_files import add_result_file, read_run
from ..io.results import RESULTS_FILE
from ..reports.html import REPORT_FILE
from ..reports.page_data import PageSource
from .common import UsageError, max_memory, note, parse_ints


def add_parser(sub) -> None:
    """Register ``dida view`` on the subcommand parsers ``sub``."""
    v = sub.add_parser("view", help="write report.html, the interactive DiDA View page, for an existing result "
                       "(no model needed)")
    v.add_argument("results", help="a folder written by dida explain, or an audit folder (with --item)")
    v.add_argument("--item", help="with an audit folder (dida audit): the item to open, by its id (the first column "
                   "of results.csv); writes its DiDA View page to --out")
    v.add_argument("--out", help=f"write the page to this new file instead of {REPORT_FILE} in the results folder")
    v.add_argument("--point", help="ROW,COL (B-scan pixels) where the square starts on every B-scan (default: "
                   "each B-scan's strongest evidence, as in the figures)")
    v.add_argument("--panel-width", type=int, default=480, help="panel width in pixels (default: %(default)s, as "
                   "the PNG figures)")
    v.add_argument("--max-memory", help="refuse a result whose files would need more memory than this, e.g. 8G "
                   "(default: the memory available now)")
    v.set_defaults(func=cmd_view)


def read_source(folder: Path, max_bytes: int | None = None) -> tuple[PageSource, bytes | None]:
    """A result folder as the page's source, and its en-face-on-fundus figure where the run drew one. Only the
    folder's own regular files are read (``io.result_reading``: no link followed, sizes bounded by ``max_bytes``,
    default the memory available now, before anything is decoded)."""
    from ..io.result_reading import (
        check_run_fields,
        exists_inside,
        read_figure_inside,
        read_results_inside,
        read_volume_inside,
    )

    run = read_run(folder)
    if run.get("input_kind") == "independent B-scans" and run.get("images"):
        raise UsageError(f"{folder} holds independent B-scans, each a result of its own: view one of them, e.g. "
                         f"dida view {folder / str(run['images'][0].get('folder', ''))}")
    check_run_fields(run, str(folder / "run.json"))
    for needed in (RESULTS_FILE, "volume.nrrd"):
        if not exists_inside(folder, needed):
            raise UsageError(f"{folder} has no {needed} of its own: the page needs the results and the B-scans of "
                             "the run (run dida explain again)")
    explanation = read_results_inside(folder, RESULTS_FILE, max_bytes)
    bscans = read_volume_inside(folder, "volume.nrrd", max_bytes)
    if bscans.ndim != 3 or tuple(bscans.shape[1:]) != tuple(explanation.bscan_shape) \
            or max(explanation.indices) >= bscans.shape[0]:
        raise UsageError(f"{folder / 'volume.nrrd'} (shape {bscans.shape}) does not hold the B-scans of "
                         f"{RESULTS_FILE} ({explanation.bscan_shape}, B-scans {explanation.indices[:5]}...): the "
                         "folder mixes two runs; run dida explain again")
    names = list(explanation.class_names)
    pairs = []
    for entry in run.get("contrasts") or []:
        a, b = entry["classes"]
        if a in names and b in names:
            pairs.append((names.index(a), names.index(b)))
    scale = float(run.get("contrast_scale") or 0.0)
    if pairs and not scale > 0:
        from ..io.map_files import contrast_scale

        scale = contrast_scale(explanation, pairs)
    figure = "figures/dida_enface_fundus.png"
    fundus = read_figure_inside(folder, figure) if run.get("enface_on_fundus") == figure else None
    if run.get("enface_on_fundus") == figure and fundus is None:
        note(f"{folder / figure} is not the run's own PNG file (a symbolic link, a folder, or too large): the page "
             "is made without the fundus figure")
    return PageSource(explanation, bscans, run, pairs, scale), fundus


def cmd_view(args) -> int:
    folder = Path(os.path.abspath(args.results))
    if args.panel_width < 16 or args.panel_width > 4096:
        raise UsageError(f"--panel-width {args.panel_width} must be within 16..4096 pixels")
    point = parse_ints(args.point, "--point") if args.point else None
    if point is not None and len(point) != 2:
        raise UsageError("--point needs ROW,COL in B-scan pixels")
    from ..audit.folder import read_audit

    if args.item is not None or read_audit(folder) is not None:
        from .view_item import cmd_view_item

        return cmd_view_item(args, folder, point)
    read_run(folder)  # before anything is read: is it a result at all?
    src, fundus = read_source(folder, max_memory(args))
    written = write_page(args, folder, src, fundus, point, REPORT_FILE, "the results folder")
    size = written.stat().st_size
    print(f"wrote {written} ({size / 1e6:.1f} MB): open it in a web browser; it needs no network")
    return 0


def write_page(args, folder: Path, src: PageSource, fundus: bytes | None, point, name: str, what: str) -> Path:
    """The page of ``src`` (its square at ``point`` where given) written to ``--out``, a new file outside
    ``folder``, or else as ``name`` into the result ``folder`` (replacing only a page DiDA wrote there)."""
    from ..reports.html import write_report

    if point is not None:
        depth, width = src.explanation.bscan_shape
        if not (0 <= point[0] < depth and 0 <= point[1] < width):
            raise UsageError(f"--point {args.point} lies outside the {depth} x {width} B-scans")
        src.point = point
    if args.out:
        out = Path(os.path.abspath(args.out))
        if folder == out.parent or folder in out.parents:
            raise UsageError(f"--out {args.out} lies inside {what}, where dida writes only its own files: leave "
                             f"out --out to write {name} there, or choose a path outside it")
        with new_file(out) as tmp:
            write_report(tmp, src, fundus, args.panel_width)
        return out
    return add_result_file(folder, name, lambda tmp: write_report(tmp, src, fundus, args.panel_width), note, what)
