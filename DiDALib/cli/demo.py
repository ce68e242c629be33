"""``dida demo``: the bundled demonstration model on real OCT B-scans shipped with DiDA (Kermany 2018, CC BY 4.0),
or with ``--phantom`` the phantom model on a synthetic OCT volume; every output written."""

from __future__ import annotations

import re
from pathlib import Path

from ..io.output_dir import check_output
from ..io.volume import OCTReadError, OCTVolume
from ..models.package import demo_model_path, load_model_package, phantom_model_path
from ..pipeline import ExplainSettings
from .common import device_option, print_open, print_written
from .explain import run_explain
from .runtime import add_runtime_option

#: The real B-scans of the demo (one per class, from validation patients of the demo model), beside DiDALib.
SAMPLES = ("Samples", "kermany")


def add_parser(sub) -> None:
    """Register ``dida demo`` on the subcommand parsers ``sub``."""
    d = sub.add_parser("demo", help="run DiDA with the bundled demo model on real OCT B-scans shipped with DiDA")
    d.add_argument("--out", default="dida-demo", help="output folder (default: %(default)s)")
    d.add_argument("--phantom", action="store_true", help="the phantom model on a synthetic OCT volume instead "
                   "(lesions known pixel by pixel)")
    d.add_argument("--bscans", type=int, default=9, help="number of synthetic B-scans with --phantom "
                   "(default: %(default)s)")
    d.add_argument("--device", default="auto", type=device_option, help="auto (default: CUDA when present), cpu or "
                   "cuda")
    add_runtime_option(d)
    d.add_argument("--force", action="store_true", help="replace an earlier DiDA result in --out (never other files)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)


def demo_volume(n_bscans: int = 9, seed: int = 0) -> tuple[OCTVolume, list[str]]:
    """The phantom demo's synthetic OCT volume and each B-scan's true class."""
    from ..phantom import CLASS_TITLES, make_volume

    bscans, labels, _ = make_volume(n_bscans=n_bscans, seed=seed)
    # Spacing of a Spectralis-like 6 mm x 2 mm scan at this phantom's 384 x 256 pixels, B-scans 120 um apart.
    volume = OCTVolume(bscans=bscans, spacing=(6.0 / 384, 1.92 / 256, 0.12), source="synthetic phantom (dida demo)",
                       format="phantom", metadata={"seed": seed, "synthetic": True})
    return volume, [CLASS_TITLES.get(lbl, lbl) for lbl in labels]


def samples_path() -> Path:
    """The folder of the demo's real B-scans (``Resources/Samples/kermany`` beside DiDALib)."""
    library = Path(__file__).resolve().parents[1]
    for folder in (library.parent.joinpath("Resources", *SAMPLES), library.joinpath("Resources", *SAMPLES)):
        if folder.is_dir():
            return folder
    raise OCTReadError(f"the demo's B-scans were not found beside {library}: reinstall DiDA from a complete "
                            "checkout, or run 'dida demo --phantom'")


def sample_truth(name: str) -> str:
    """A Kermany file's diagnosis from its name (``CLASS-PATIENT-N.jpeg``)."""
    match = re.match(r"([A-Z]+)-\d+-\d+\.", name)
    return match.group(1) if match else ""


def real_samples() -> tuple[OCTVolume, list[str]]:
    """The demo's real B-scans, read as any folder of B-scan images is, and each one's diagnosis."""
    from ..io.registry import load_oct

    volume = load_oct(samples_path())
    return volume, [sample_truth(name) for name in volume.metadata["files"]]


def cmd_demo(args) -> int:
    check_output(args.out, args.force, (), "--out")  # before anything is loaded
    if args.phantom:
        package = load_model_package(phantom_model_path())
        volume, truths = demo_volume(args.bscans)
        what = f"{volume.n_bscans} synthetic B-scans"
    else:
        package = load_model_package(demo_model_path())
        volume, truths = real_samples()
        what = (f"{volume.n_bscans} real B-scans (Kermany et al. 2018, CC BY 4.0: "
                f"{samples_path() / 'README.md'})")
    settings = ExplainSettings(device=args.device, classes="all", runtime=args.runtime)  # the demo shows every class's evidence
    print(f"DiDA demo: {what}, model '{package.spec.name}' (a demonstration model, not for clinical use)")
    summary = run_explain(volume, package, settings, list(range(volume.n_bscans)), Path(args.out),
                          force=args.force, truths=truths, quiet=args.quiet)
    print_written(Path(args.out), summary)
    print_open(Path(args.out))
    return 0
