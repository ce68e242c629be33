"""``dida demo``: the bundled demonstration model on a synthetic OCT phantom volume, every output written."""

from __future__ import annotations

from pathlib import Path

from ..io.output_dir import check_output
from ..io.volume import OCTVolume
from ..models.package import demo_model_path, load_model_package
from ..pipeline import ExplainSettings
from .common import device_option, print_written
from .explain import run_explain


def add_parser(sub) -> None:
    """Register ``dida demo`` on the subcommand parsers ``sub``."""
    d = sub.add_parser("demo", help="run DiDA with the bundled demo model on a synthetic OCT volume")
    d.add_argument("--out", default="dida-demo", help="output folder (default: %(default)s)")
    d.add_argument("--bscans", type=int, default=9, help="number of synthetic B-scans (default: %(default)s)")
    d.add_argument("--device", default="auto", type=device_option, help="auto (default: CUDA when present), cpu or "
                   "cuda")
    d.add_argument("--force", action="store_true", help="replace an earlier DiDA result in --out (never other files)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)


def demo_volume(n_bscans: int = 9, seed: int = 0) -> tuple[OCTVolume, list[str]]:
    """The demo's synthetic OCT volume and each B-scan's true class."""
    from ..phantom import CLASS_TITLES, make_volume

    bscans, labels, _ = make_volume(n_bscans=n_bscans, seed=seed)
    # Spacing of a Spectralis-like 6 mm x 2 mm scan at this phantom's 384 x 256 pixels, B-scans 120 um apart.
    volume = OCTVolume(bscans=bscans, spacing=(6.0 / 384, 1.92 / 256, 0.12), source="synthetic phantom (dida demo)",
                       format="phantom", metadata={"seed": seed, "synthetic": True})
    return volume, [CLASS_TITLES.get(lbl, lbl) for lbl in labels]


def cmd_demo(args) -> int:
    check_output(args.out, args.force, (), "--out")  # before anything is loaded
    package = load_model_package(demo_model_path())
    volume, truths = demo_volume(args.bscans)
    settings = ExplainSettings(device=args.device, classes="all")  # the demo volume shows every class somewhere
    print(f"DiDA demo: {volume.n_bscans} synthetic B-scans, model '{package.spec.name}' "
          "(a demonstration model trained on synthetic phantoms, not for clinical use)")
    summary = run_explain(volume, package, settings, list(range(volume.n_bscans)), Path(args.out),
                          force=args.force, truths=truths, quiet=args.quiet)
    print_written(Path(args.out), summary)
    figs = sorted((Path(args.out) / "figures").glob("*.png"))
    if figs:
        print(f"open a DiDA View figure, e.g. {figs[len(figs) // 2].resolve()}")
    page = Path(args.out) / "report.html"
    if page.is_file():
        print(f"or the interactive DiDA View in a web browser: {page.resolve()}")
    return 0
