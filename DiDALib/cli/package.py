"""``dida package``: a model package built from a weights file and a few flags, validated before it is written.

The weights (and, for ``python:``, the code file and any example B-scans) are copied into a new folder with a
``model.json`` made from the flags; the package is then loaded as ``dida explain`` would load it (its examples
checked), ``--check`` images are run and their top classes printed, and only then does the folder appear. A
package that fails any step is not written.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ..engine.scores import AUTO, SCORE_MODES
from ..models.spec import NORMALISATIONS, ModelPackageError, ModelSpec
from .common import UsageError, parse_ints

DEFAULT_SCORE = AUTO


def add_parser(sub) -> None:
    """Register ``dida package`` on the subcommand parsers ``sub``."""
    p = sub.add_parser(
        "package", help="build and check a model package from a weights file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="architectures:\n"
               "  timm:<name>                   state dict of a timm network\n"
               "  torchvision:<name>            state dict of a torchvision classifier (--head: the resized layer)\n"
               "  python:<file.py>:<callable>   state dict of the nn.Module your file builds (needs --trust-code)\n"
               "  onnx                          an .onnx file (onnxruntime)\n"
               "  torch-export                  a .pt2 file from torch.export.save\n"
               "  torchscript                   a TorchScript .pt file (deprecated by PyTorch)\n"
               "example:\n"
               "  dida package resnet.pth --architecture torchvision:resnet18 --head fc --classes CNV,DME,DRUSEN,NORMAL"
               " \\\n      --channels 3 --normalisation imagenet --check scans/ --out my_package")
    p.add_argument("weights", help="the weights file: a state dict (.safetensors, .pth), .onnx, .pt2 or .pt")
    p.add_argument("--out", required=True, help="the package folder to write (new or empty, unless --force)")
    p.add_argument("--architecture", required=True, help="what the weights are (see below); for python: the path "
                   "of your .py file, which is copied into the package")
    p.add_argument("--classes", required=True, help="class names in the model's output order, separated by commas")
    p.add_argument("--input-size", default="224,224", help="model input HEIGHT,WIDTH (default: %(default)s)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="1 (grey) or 3 (grey repeated); default 3 for "
                   "torchvision and imagenet normalisation, else 1")
    p.add_argument("--normalisation", choices=NORMALISATIONS, help="none (intensities in [0, 1] as they are), "
                   "imagenet, or mean-std with --mean and --std (the default when they are given)")
    p.add_argument("--mean", help="per-channel mean on intensities in [0, 1], e.g. 0.5 or 0.485,0.456,0.406")
    p.add_argument("--std", help="per-channel standard deviation, e.g. 0.25")
    p.add_argument("--resize", default="stretch", choices=("stretch", "letterbox"),
                   help="stretch the B-scan onto the input (default) or keep its aspect with a black margin")
    p.add_argument("--width-scale", type=float, default=1.0, help="B-scan width factor before resizing "
                   "(the paper: 0.5)")
    p.add_argument("--score", default=DEFAULT_SCORE, choices=SCORE_MODES + (AUTO,),
                   help="the package's default score mode (default: %(default)s, see docs/maps.md)")
    p.add_argument("--head", help="torchvision: the layer resized to the classes, e.g. fc or classifier.1")
    p.add_argument("--output", help="which output holds the class scores, for a model that returns more than one: "
                   "an index into its tuple (0) or a name (a dict key or attribute such as logits, an ONNX output)")
    p.add_argument("--fixed-batch", type=int, help="the one batch size the model takes, if it was written for one "
                   "(e.g. x.view(8, -1)); ONNX and torch.export files that fix it say so themselves")
    p.add_argument("--strip-prefix", help="state dicts: remove this prefix from the checkpoint's keys, e.g. "
                   "model_ema. (a prefix that alone fits the network, such as Lightning's model., is removed "
                   "without asking); the package then holds the plain state dict as .safetensors")
    p.add_argument("--architecture-args", help="JSON object of keyword arguments for the network's builder")
    p.add_argument("--name", help="a name for the package (default: the weights file's name)")
    p.add_argument("--description", default="", help="one line saying what the model is and what it was trained on")
    p.add_argument("--example", action="append", default=[], metavar="IMAGE=CLASS",
                   help="record a B-scan image and the class the model must rank first on it (checked on every "
                   "load); repeat for more")
    p.add_argument("--check", nargs="+", default=[], metavar="IMAGES", help="OCT files, images or folders to run: "
                   "their top classes are printed, to see that class order and preprocessing are right")
    p.add_argument("--trust-code", action="store_true", help="allow running your python: file to validate it")
    p.add_argument("--force", action="store_true", help="replace an existing package folder")
    p.set_defaults(func=cmd_package)


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} {text!r} must be numbers separated by commas") from None


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} {path!r} is not a file")
    return p


def _examples(items: list[str]) -> list[tuple[Path, str]]:
    out = []
    for item in items:
        image, sep, cls = item.rpartition("=")
        if not sep or not image or not cls:
            raise UsageError(f"--example {item!r} must be IMAGE=CLASS, e.g. scans/b12.png=DRUSEN")
        out.append((_existing(image, "--example image"), cls))
    return out


def build_spec(args, weights: Path, code: Path | None, examples: list[tuple[Path, str]]) -> dict:
    """The ``model.json`` mapping the flags describe (validated by ``ModelSpec.from_dict``)."""
    architecture = args.architecture
    if code is not None:
        architecture = f"python:{code.name}:{architecture.rpartition(':')[2]}"
    normalisation = args.normalisation or ("mean-std" if args.mean or args.std else None)
    channels = args.channels or (3 if architecture.startswith("torchvision:") or normalisation == "imagenet" else 1)
    data = {
        "name": args.name or weights.stem,
        "architecture": architecture,
        "weights": weights.name,
        "classes": [c.strip() for c in args.classes.split(",") if c.strip()],
        "input_size": list(parse_ints(args.input_size, "--input-size")),
        "channels": channels,
        "normalisation": normalisation or "mean-std",
        "width_scale": args.width_scale,
        "resize": args.resize,
        "score": args.score,
        "description": args.description,
    }
    for key, text in (("mean", args.mean), ("std", args.std)):
        values = _floats(text, f"--{key}")
        if values is not None:
            data[key] = values * channels if len(values) == 1 else values
    if args.head:
        data["head"] = args.head
    if args.output is not None:
        data["output"] = int(args.output) if args.output.strip().isdigit() else args.output.strip()
    if args.fixed_batch is not None:
        data["fixed_batch"] = args.fixed_batch
    if args.architecture_args:
        try:
            data["architecture_args"] = json.loads(args.architecture_args)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--architecture-args is not valid JSON ({exc})") from None
    if examples:
        data["examples"] = [{"image": f"examples/{k:02d}_{image.name}", "top": cls}
                            for k, (image, cls) in enumerate(examples)]
    ModelSpec.from_dict(data, where="the package flags")  # every field checked before anything is copied
    return data


def onnx_sidecars(weights: Path) -> list[Path]:
    """The external-data files an ``.onnx`` file names (``torch.onnx.export`` writes ``model.onnx.data``): read
    with the ``onnx`` library where it is installed, else the ``<name>.data`` convention."""
    try:
        import onnx
        from onnx.external_data_helper import _get_all_tensors, uses_external_data
    except ImportError:
        guess = weights.with_name(weights.name + ".data")
        return [guess] if guess.is_file() else []
    try:
        model = onnx.load(str(weights), load_external_data=False)
    except Exception:
        return []  # not readable as ONNX: loading the package says so
    names = {entry.value for t in _get_all_tensors(model) if uses_external_data(t)
             for entry in t.external_data if entry.key == "location"}
    return [weights.parent / n for n in sorted(names)]


def _stripped(weights: Path, prefix: str, target: Path) -> str:
    """Write the checkpoint's state dict with ``prefix`` removed as a plain ``.safetensors`` file (the package then
    loads without the flag); returns what was done, in words."""
    from safetensors.torch import save_file

    from ..models.checkpoints import read_checkpoint, strip_prefix

    state, notes = read_checkpoint(weights)
    try:
        state = strip_prefix(state, prefix)
    except ModelPackageError as exc:
        raise ModelPackageError(f"{weights}: {exc}") from None
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(target))
    return (f"weights: {', '.join(notes + [f'prefix {prefix!r} removed from {len(state)} keys'])}, written as "
            f"{target.name}")


def _print_checks(package, images: list[str]) -> None:
    from ..models.validate import describe, predict, read_bscans

    for image in images:
        bscans = read_bscans(image)
        for k, p in enumerate(predict(package.model, package.spec, bscans)):
            where = f"{image} [B-scan {k}]" if len(bscans) > 1 else image
            print(f"  {where}: {describe(p, package.spec.classes)}")


def cmd_package(args) -> int:
    from .. import __version__
    from ..io.output_dir import RUN_FORMAT, staged_output
    from ..io.run_folder import seal_run
    from ..models.package import load_model_package
    from ..models.python_code import PREFIX, parse_architecture

    weights = _existing(args.weights, "the weights file")
    code = None
    if args.architecture.startswith(PREFIX):
        file, _ = parse_architecture(args.architecture)
        code = _existing(file, "the python: code file")
    examples = _examples(args.example)
    data = build_spec(args, weights, code, examples)
    if args.strip_prefix is not None:
        if data["architecture"] in ("onnx", "torch-export", "torchscript"):
            raise UsageError(f"--strip-prefix applies to state dicts (timm:, torchvision:, python:), not to an "
                             f"{data['architecture']} file")
        data["weights"] = f"{weights.stem}.safetensors"
    if weights.name == "model.json" or (code is not None and code.name in ("model.json", weights.name)):
        raise UsageError("the weights and code files need names of their own (not model.json, not each other's)")
    out = Path(args.out)
    protect = [weights, *([code] if code is not None else []), *(image for image, _ in examples)]
    with staged_output(out, args.force, protect, what="--out") as stage:
        stripped = _stripped(weights, args.strip_prefix, stage / data["weights"]) if args.strip_prefix else None
        if stripped is None:
            shutil.copy2(weights, stage / weights.name)
        for extra in onnx_sidecars(weights) if data["architecture"] == "onnx" else []:
            target = stage / Path(extra).relative_to(weights.parent)
            if extra.is_file() and target.resolve().is_relative_to(stage.resolve()):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(extra, target)
        if code is not None:
            shutil.copy2(code, stage / code.name)
        for (image, _), entry in zip(examples, data.get("examples", [])):
            (stage / entry["image"]).parent.mkdir(exist_ok=True)
            shutil.copy2(image, stage / entry["image"])
        (stage / "model.json").write_text(json.dumps(ModelSpec.from_dict(data).to_dict(), indent=2) + "\n",
                                          encoding="utf-8")
        try:
            package = load_model_package(stage, trust_code=args.trust_code)
        except ModelPackageError as exc:
            raise ModelPackageError(str(exc).replace(str(stage), str(out))) from None
        spec = package.spec
        print(f"package {spec.name!r}: {spec.architecture}, {len(spec.classes)} classes ({', '.join(spec.classes)}), "
              f"input {spec.channels} x {spec.input_size[0]} x {spec.input_size[1]}, normalisation "
              f"{spec.normalisation}, score {spec.score}")
        checked = f"; its {len(spec.examples)} example B-scan(s) get the expected top class" if spec.examples else ""
        print(f"  loads and returns one score per class{checked}")
        for line in ([stripped] if stripped else []) + list(package.notes):
            print(f"  {line}")
        if args.check:
            print("top classes (probabilities) of the --check images:")
            _print_checks(package, args.check)
        # Last, as for a run: says that dida wrote the folder, which files and their fingerprints, so --force may
        # replace it later (only while they are as written).
        seal_run(stage, {"format": RUN_FORMAT, "command": "dida package", "dida_version": __version__})
    print(f"wrote {out.resolve()}")
    return 0
