"""What ``model.json`` says: the fields of a model package, validated, without loading torch.

``model.json`` (format ``dida-model/1``)::

    {
      "format": "dida-model/1",
      "name": "DiDA demo OCT classifier",
      "architecture": "timm:efficientnet_b0",      # or torchvision:<name>, python:<file.py>:<callable>,
                                                    #    onnx, torch-export, torchscript (see registry.py)
      "architecture_args": {},                      # keyword arguments for the builder (timm, torchvision, python)
      "head": "classifier.1",                       # torchvision only: the one layer resized to the classes
      "weights": "model.safetensors",              # state dict (.safetensors, .pth), or .onnx / .pt2 / .pt
      "classes": ["normal", "drusen", ...],
      "input_size": [224, 224],                     # model input [height, width]
      "channels": 1,                                # 1 (grey) or 3 (grey repeated)
      "normalisation": "mean-std",                  # or "none" (intensities in [0, 1] as they are), "imagenet"
      "mean": [0.5], "std": [0.25],                 # per channel, on intensities in [0, 1] (mean-std only)
      "width_scale": 1.0,                           # B-scan width factor before resizing (the paper: 0.5)
      "resize": "stretch",                          # or "letterbox" (keep aspect, black margin)
      "score": "auto",                              # default score mode: or probabilities, logits, log-odds
      "examples": [{"image": "examples/a.png", "top": "drusen"}],  # checked on every load
      "output": 0,                                  # which output holds the scores: an index or a name (call_fields)
      "fixed_batch": 8,                             # the one batch size the model takes (call_fields)
      "demo": false,                                # true marks a demonstration model, not for clinical use
      "description": "..."
    }

Weights are never unpickled: safetensors first, ``torch.load(weights_only=True)`` for ``.pth``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..suggest import did_you_mean
from .call_fields import check_fixed_batch, check_output

FORMAT = "dida-model/1"
NORMALISATIONS = ("mean-std", "none", "imagenet")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SCORES = ("probabilities", "logits", "log-odds", "auto")  # engine.scores.SCORE_MODES and "auto"


class ModelPackageError(ValueError):
    """A model package that cannot be used, with the reason and the fix."""


#: The largest ``model.json`` read: a model description is a few kB.
MAX_SPEC_BYTES = 1_000_000
#: Bounds of the fields a number can break: the model input's side, a channel's mean and std.
MAX_INPUT_SIDE = 65536
STD_RANGE = (1e-6, 1e6)


def _shown(v) -> str:
    """A field's value for a message, shortened (a 400-digit number or a long list stays readable)."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(v) -> bool:
    """A finite int or float of a size a float holds (a 400-digit integer is none)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _number(data: dict, key: str, default: float, where: str) -> float:
    """A finite number field, or an error naming the field and what was found."""
    v = data.get(key, default)
    if not _is_number(v):
        raise ModelPackageError(f"{where}: {key!r} is {_shown(v)}: it must be a finite number")
    return float(v)


def _numbers(data: dict, key: str, default: list[float], count: int, where: str) -> tuple[float, ...]:
    """A list of ``count`` finite numbers (one per channel), or an error naming the field and what was found."""
    v = data.get(key, default)
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise ModelPackageError(f"{where}: {key!r} is {_shown(v)}: it must be a list of finite numbers, one per "
                                "channel")
    if len(v) != count:
        raise ModelPackageError(f"{where}: {key!r} has {len(v)} value(s) but 'channels' is {count}: give one per "
                                "channel")
    return tuple(float(x) for x in v)


def _weights_name(data: dict, where: str) -> str:
    """The weights file, which must lie inside the package folder (a relative path without '..')."""
    v = data.get("weights", "model.safetensors")
    if not isinstance(v, str) or not v.strip():
        raise ModelPackageError(f"{where}: 'weights' is {v!r}: name the weights file in the package folder")
    posix, windows = PurePosixPath(v), PureWindowsPath(v)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise ModelPackageError(f"{where}: 'weights' is {v!r}, outside the package folder: put the weights file in "
                                "the folder beside model.json and name it there (e.g. \"model.safetensors\")")
    return v


@dataclass(frozen=True)
class ModelExample:
    """A B-scan image inside the package and the class the model must rank first on it."""

    image: str
    top: str


@dataclass(frozen=True)
class ModelSpec:
    """What ``model.json`` says: the architecture, the classes and how a B-scan becomes the model input."""

    architecture: str
    classes: tuple[str, ...]
    input_size: tuple[int, int] = (224, 224)
    channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    width_scale: float = 1.0
    resize: str = "stretch"
    score: str = "auto"  # log-odds where the model saturates, probabilities where it does not (engine.scores)
    weights: str = "model.safetensors"
    name: str = "model"
    demo: bool = False
    description: str = ""
    architecture_args: dict = field(default_factory=dict)
    head: str | None = None
    normalisation: str = "mean-std"
    examples: tuple[ModelExample, ...] = ()
    output: int | str | None = None
    fixed_batch: int | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str = "model.json") -> ModelSpec:
        """Validate the fields of a ``model.json`` mapping."""
        if not isinstance(data, dict):
            raise ModelPackageError(f"{where}: expected a JSON object, found {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise ModelPackageError(f"{where}: format {data.get('format')!r} is not supported: expected {FORMAT!r}")
        known = {f for f in cls.__dataclass_fields__} | {"format"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelPackageError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        for key in ("architecture", "classes"):
            if key not in data:
                raise ModelPackageError(f"{where}: the field {key!r} is missing")
        classes = data["classes"]
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
            raise ModelPackageError(f"{where}: 'classes' must list at least two non-empty class names")
        if len(set(classes)) != len(classes):
            raise ModelPackageError(f"{where}: 'classes' repeats a name: {classes}")
        if not isinstance(data["architecture"], str) or not data["architecture"].strip():
            raise ModelPackageError(f"{where}: 'architecture' is {data['architecture']!r}: name one, e.g. "
                                    "\"timm:efficientnet_b0\" or \"torchscript\"")
        channels = data.get("channels", 1)
        if channels not in (1, 3) or isinstance(channels, bool) or not isinstance(channels, int):
            raise ModelPackageError(f"{where}: 'channels' is {channels!r}: use 1 (grey) or 3 (grey repeated)")
        size = data.get("input_size", [224, 224])
        if not (isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= MAX_INPUT_SIDE for v in size)):
            raise ModelPackageError(f"{where}: 'input_size' is {_shown(size)}: it must be [height, width], each an "
                                    f"integer from 8 to {MAX_INPUT_SIDE}")
        normalisation = data.get("normalisation", "mean-std")
        if normalisation not in NORMALISATIONS:
            raise ModelPackageError(f"{where}: 'normalisation' is {normalisation!r}: use 'mean-std' (with 'mean' "
                                    "and 'std'), 'none' or 'imagenet'")
        if normalisation == "imagenet" and channels != 3:
            raise ModelPackageError(f"{where}: 'imagenet' normalisation is per RGB channel: it needs 'channels' 3 "
                                    "(dida package --channels 3)")
        if normalisation != "mean-std" and ("mean" in data or "std" in data):
            raise ModelPackageError(f"{where}: 'normalisation' {normalisation!r} sets the mean and std itself: "
                                    "remove 'mean' and 'std', or use 'mean-std'")
        default_mean, default_std = {"none": ((0.0,) * channels, (1.0,) * channels),
                                     "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}.get(normalisation, ((0.5,) * channels,
                                                                                                 (0.25,) * channels))
        mean = _numbers(data, "mean", list(default_mean), channels, where)
        std = _numbers(data, "std", list(default_std), channels, where)
        if not all(STD_RANGE[0] <= v <= STD_RANGE[1] for v in std) or not all(abs(v) <= STD_RANGE[1] for v in mean):
            raise ModelPackageError(f"{where}: 'std' is {list(std)} and 'mean' {list(mean)}: each std must lie "
                                    f"between {STD_RANGE[0]:g} and {STD_RANGE[1]:g} and each mean within "
                                    f"+-{STD_RANGE[1]:g} (intensities are in [0, 1]; e.g. \"std\": [0.25])")
        width_scale = _number(data, "width_scale", 1.0, where)
        if not 0 < width_scale <= 4:
            raise ModelPackageError(f"{where}: 'width_scale' {width_scale} must be in (0, 4]")
        resize = data.get("resize", "stretch")
        if resize not in ("stretch", "letterbox"):
            raise ModelPackageError(f"{where}: 'resize' is {resize!r}: use 'stretch' or 'letterbox'")
        score = data.get("score", "auto")
        if score not in SCORES:
            raise ModelPackageError(f"{where}: 'score' is {score!r}: use {', '.join(repr(s) for s in SCORES)}")
        head = data.get("head")
        if head is not None and not (isinstance(head, str) and head and str(data["architecture"]).startswith(
                "torchvision:")):
            raise ModelPackageError(f"{where}: 'head' names the layer of a torchvision: architecture resized to the "
                                    "classes (e.g. \"classifier.1\" or \"fc\"); remove it for other architectures")
        examples = _examples(data.get("examples", []), classes, where)
        for key, limit in (("name", 200), ("description", 10000)):
            if key in data and not (isinstance(data[key], str) and len(data[key]) <= limit):
                raise ModelPackageError(f"{where}: {key!r} is {_shown(data[key])}: it must be a text of at most "
                                        f"{limit} characters")
        if not isinstance(data.get("demo", False), bool):
            raise ModelPackageError(f"{where}: 'demo' is {_shown(data['demo'])}: it must be true or false (without "
                                    "quotes)")
        from .arguments import check_architecture_args  # it names this module's error

        args = check_architecture_args(str(data["architecture"]), data.get("architecture_args", {}), where)
        return cls(
            architecture=str(data["architecture"]),
            classes=tuple(classes),
            input_size=(size[0], size[1]),
            channels=channels,
            mean=mean,
            std=std,
            width_scale=width_scale,
            resize=resize,
            score=score,
            weights=_weights_name(data, where),
            name=str(data.get("name", "model")),
            demo=data.get("demo", False),
            description=str(data.get("description", "")),
            architecture_args=dict(args),
            head=head,
            normalisation=normalisation,
            examples=examples,
            output=check_output(data.get("output"), where),
            fixed_batch=check_fixed_batch(data.get("fixed_batch"), where),
        )

    def to_dict(self) -> dict:
        """The ``model.json`` mapping (``mean``/``std`` only for mean-std normalisation, optional fields when set)."""
        data = {
            "format": FORMAT,
            "name": self.name,
            "architecture": self.architecture,
            "architecture_args": dict(self.architecture_args),
            "weights": self.weights,
            "classes": list(self.classes),
            "input_size": list(self.input_size),
            "channels": self.channels,
            "normalisation": self.normalisation,
            "mean": list(self.mean),
            "std": list(self.std),
            "width_scale": self.width_scale,
            "resize": self.resize,
            "score": self.score,
            "demo": self.demo,
            "description": self.description,
        }
        if self.normalisation != "mean-std":
            del data["mean"], data["std"]
        if self.head is not None:
            data["head"] = self.head
        if self.examples:
            data["examples"] = [{"image": e.image, "top": e.top} for e in self.examples]
        for key in ("output", "fixed_batch"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def fill_value(self, raw: float = 0.0) -> list[float]:
        """A raw intensity (0 = black, as in the paper) in the model-input domain, one value per channel."""
        return [(raw - m) / s for m, s in zip(self.mean, self.std)]


def _examples(value, classes: list[str], where: str) -> tuple[ModelExample, ...]:
    if not isinstance(value, list):
        raise ModelPackageError(f"{where}: 'examples' must be a list of {{\"image\": ..., \"top\": ...}} objects")
    out = []
    for k, item in enumerate(value):
        if not (isinstance(item, dict) and set(item) == {"image", "top"} and isinstance(item["image"], str)
                and item["image"]):
            raise ModelPackageError(f"{where}: example {k} must be {{\"image\": \"<file in the package>\", "
                                    "\"top\": \"<class>\"}")
        if item["top"] not in classes:
            raise ModelPackageError(f"{where}: example {item['image']!r} expects the class {item['top']!r}, which is "
                                    f"not among 'classes' {classes}" + did_you_mean(str(item["top"]), classes))
        out.append(ModelExample(item["image"], item["top"]))
    return tuple(out)


def package_file(root: Path, name: str, what: str) -> Path:
    """A file that ``model.json`` names, which must lie inside the package folder ``root`` (by its name: no
    absolute path, no '..'; a symbolic link inside the package may point elsewhere, as a user's own choice)."""
    relative = Path(os.path.normpath(name))
    if relative.is_absolute() or relative.parts[:1] == ("..",) or relative.drive:
        raise ModelPackageError(f"{root}: {what} {name!r} lies outside the package folder: "
                                "a package names only files inside it")
    return root / relative


#: Files a user may give as --model that are weights, not a package.
WEIGHT_SUFFIXES = (".pth", ".pt", ".pt2", ".onnx", ".safetensors", ".ckpt", ".bin", ".tar", ".h5", ".pkl")


def not_a_package(path: Path) -> str:
    """The sentence for a weights file given where a model package is expected."""
    return (f"{path} is a weights file, not a model package (a folder with model.json and the weights): make one "
            f"with dida package {path.name} --architecture ... --classes ... --out my_package, then give "
            "--model my_package")


def read_spec(package: str | Path) -> ModelSpec:
    """Read and validate ``model.json`` of a package folder (or the file itself)."""
    from ..io.files import read_regular

    path = Path(package)
    json_path = path / "model.json" if path.is_dir() else path
    if not json_path.exists():
        raise ModelPackageError(
            f"{path}: no model.json found: a model package is a folder with model.json and a weights file "
            "(dida package makes one)"
        )
    if not path.is_dir() and path.suffix.lower() in WEIGHT_SUFFIXES:
        raise ModelPackageError(not_a_package(path))
    text = read_regular(json_path, "model.json", "a model package's model.json is a small JSON file: see "
                        "DiDALib/models/spec.py", MAX_SPEC_BYTES, ModelPackageError)
    try:
        data = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelPackageError(not_a_package(json_path)) from None  # binary: weights, most likely
    except ValueError as exc:  # ValueError: bad JSON, or an integer of thousands of digits
        raise ModelPackageError(f"{json_path}: not valid JSON ({' '.join(str(exc).split())[:200]}): fix the file, "
                                "or give the package folder's model.json") from None
    except RecursionError:
        raise ModelPackageError(f"{json_path}: its JSON nests deeper than any model description: fix the "
                                "file") from None
    return ModelSpec.from_dict(data, where=str(json_path))

