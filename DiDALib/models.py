"""Model packages: a folder with ``model.json`` and weights, loaded safely and checked against each other.

``model.json`` (format ``dida-model/1``)::

    {
      "format": "dida-model/1",
      "name": "DiDA demo OCT classifier",
      "architecture": "timm:efficientnet_b0",      # or "torchscript"
      "architecture_args": {},                      # extra keyword arguments for timm.create_model
      "weights": "model.safetensors",              # .safetensors, .pth/.pt state dict, or a TorchScript .pt
      "classes": ["normal", "drusen", ...],
      "input_size": [224, 224],                     # model input [height, width]
      "channels": 1,                                # 1 (grey) or 3 (grey repeated)
      "mean": [0.5], "std": [0.25],                 # per channel, on intensities in [0, 1]
      "width_scale": 1.0,                           # B-scan width factor before resizing (the paper: 0.5)
      "resize": "stretch",                          # or "letterbox" (keep aspect, black margin)
      "score": "probabilities",                     # default score mode: or "logits"
      "demo": false,                                # true marks a demonstration model, not for clinical use
      "description": "..."
    }

Weights are never unpickled: safetensors first, ``torch.load(weights_only=True)`` for ``.pth``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FORMAT = "dida-model/1"


class ModelPackageError(ValueError):
    """A model package that cannot be used, with the reason and the fix."""


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
    score: str = "probabilities"
    weights: str = "model.safetensors"
    name: str = "model"
    demo: bool = False
    description: str = ""
    architecture_args: dict = field(default_factory=dict)

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
        channels = int(data.get("channels", 1))
        if channels not in (1, 3):
            raise ModelPackageError(f"{where}: 'channels' is {channels}: use 1 (grey) or 3 (grey repeated)")
        size = data.get("input_size", [224, 224])
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)):
            raise ModelPackageError(f"{where}: 'input_size' must be [height, width], each an integer >= 8")
        mean = [float(v) for v in data.get("mean", [0.5] * channels)]
        std = [float(v) for v in data.get("std", [0.25] * channels)]
        if len(mean) != channels or len(std) != channels:
            raise ModelPackageError(f"{where}: 'mean' and 'std' need {channels} value(s) each (one per channel)")
        if any(s <= 0 for s in std):
            raise ModelPackageError(f"{where}: 'std' values must be > 0")
        width_scale = float(data.get("width_scale", 1.0))
        if not 0 < width_scale <= 4:
            raise ModelPackageError(f"{where}: 'width_scale' {width_scale} must be in (0, 4]")
        resize = data.get("resize", "stretch")
        if resize not in ("stretch", "letterbox"):
            raise ModelPackageError(f"{where}: 'resize' is {resize!r}: use 'stretch' or 'letterbox'")
        score = data.get("score", "probabilities")
        if score not in ("probabilities", "logits"):
            raise ModelPackageError(f"{where}: 'score' is {score!r}: use 'probabilities' or 'logits'")
        args = data.get("architecture_args", {})
        if not isinstance(args, dict):
            raise ModelPackageError(f"{where}: 'architecture_args' must be an object")
        return cls(
            architecture=str(data["architecture"]),
            classes=tuple(classes),
            input_size=(size[0], size[1]),
            channels=channels,
            mean=tuple(mean),
            std=tuple(std),
            width_scale=width_scale,
            resize=resize,
            score=score,
            weights=str(data.get("weights", "model.safetensors")),
            name=str(data.get("name", "model")),
            demo=bool(data.get("demo", False)),
            description=str(data.get("description", "")),
            architecture_args=dict(args),
        )

    def to_dict(self) -> dict:
        """The ``model.json`` mapping."""
        return {
            "format": FORMAT,
            "name": self.name,
            "architecture": self.architecture,
            "architecture_args": dict(self.architecture_args),
            "weights": self.weights,
            "classes": list(self.classes),
            "input_size": list(self.input_size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "width_scale": self.width_scale,
            "resize": self.resize,
            "score": self.score,
            "demo": self.demo,
            "description": self.description,
        }

    def fill_value(self, raw: float = 0.0) -> list[float]:
        """A raw intensity (0 = black, as in the paper) in the model-input domain, one value per channel."""
        return [(raw - m) / s for m, s in zip(self.mean, self.std)]


@dataclass
class ModelPackage:
    """A loaded package: its spec, the ready model (eval mode, CPU) and where it came from."""

    spec: ModelSpec
    model: torch.nn.Module
    path: Path


def input_region(bscan_shape: tuple[int, int], spec: ModelSpec) -> tuple[int, int, int, int]:
    """Where a B-scan of shape (depth, width) lands in the model input: (top, left, height, width)."""
    depth, width = int(bscan_shape[0]), int(bscan_shape[1])
    out_h, out_w = spec.input_size
    if spec.resize == "stretch":
        return (0, 0, out_h, out_w)
    eff_w = width * spec.width_scale
    scale = min(out_h / depth, out_w / eff_w)
    h = max(1, min(out_h, int(round(depth * scale))))
    w = max(1, min(out_w, int(round(eff_w * scale))))
    return ((out_h - h) // 2, (out_w - w) // 2, h, w)


def preprocess_bscan(bscan: np.ndarray, spec: ModelSpec) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """A B-scan (depth, width) of display intensities in [0, 1] as the model input (C, H, W), and the region it
    covers there. Width scaling and resizing are one bilinear, antialiased resize onto the region (the two linear
    maps compose), so DiDA's cells map back onto the B-scan as crisp rectangles; a letterbox margin stays black."""
    b = np.asarray(bscan, dtype=np.float32)
    if b.ndim != 2:
        raise ValueError(f"a B-scan must be 2D (depth, width); got shape {b.shape}")
    top, left, h, w = input_region(b.shape, spec)
    t = torch.from_numpy(np.ascontiguousarray(b))[None, None]
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0, 0]
    out_h, out_w = spec.input_size
    canvas = torch.zeros((out_h, out_w), dtype=torch.float32)
    canvas[top : top + h, left : left + w] = t
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(-1, 1, 1)
    x = (canvas[None].expand(spec.channels, out_h, out_w) - mean) / std
    return x.contiguous(), (top, left, h, w)


# -- loading -----------------------------------------------------------------------------------------------------

def read_spec(package: str | Path) -> ModelSpec:
    """Read and validate ``model.json`` of a package folder (or the file itself)."""
    path = Path(package)
    json_path = path / "model.json" if path.is_dir() else path
    if not json_path.exists():
        raise ModelPackageError(
            f"{path}: no model.json found: a model package is a folder with model.json and a weights file"
        )
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{json_path}: not valid JSON ({exc})") from None
    return ModelSpec.from_dict(data, where=str(json_path))


def _read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights), device="cpu")
        obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelPackageError(
            f"{weights}: the weights cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "expected a .safetensors file or a state dict saved with torch.save (loaded with weights_only=True)"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelPackageError(f"{weights}: does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _head_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], classes: int) -> str | None:
    for key, value in state.items():
        if key in own and own[key].shape != value.shape and own[key].shape[:1] == (classes,):
            return (f"the weights' head {key!r} has {value.shape[0]} output(s) but model.json lists {classes} "
                    "classes: the class list and the weights must come from the same training")
    return None


def build_timm(spec: ModelSpec) -> torch.nn.Module:
    """The timm architecture of a spec, with random weights (nothing is downloaded)."""
    import timm

    name = spec.architecture.removeprefix("timm:")
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:5] if name else []
        raise ModelPackageError(
            f"architecture {spec.architecture!r} is not a timm model"
            + (f" (similar: {', '.join(close)})" if close else "")
            + "; use 'timm:<name>' with a name from timm.list_models(), or 'torchscript'"
        )
    try:
        return timm.create_model(
            name, pretrained=False, num_classes=len(spec.classes), in_chans=spec.channels, **spec.architecture_args
        )
    except TypeError as exc:
        raise ModelPackageError(f"architecture_args {spec.architecture_args} do not fit {name}: {exc}") from None


def load_model_package(package: str | Path) -> ModelPackage:
    """Load a model package, checking that the weights fit the architecture and the class list."""
    path = Path(package)
    if not path.exists():
        raise ModelPackageError(f"{path}: no such model package folder")
    spec = read_spec(path)
    root = path if path.is_dir() else path.parent
    weights = root / spec.weights
    if not weights.is_file():
        raise ModelPackageError(f"{root}: the weights file {spec.weights!r} named in model.json is missing")
    if spec.architecture == "torchscript":
        try:
            with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript, but users still bring .pt files
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(str(weights), map_location="cpu")
        except Exception as exc:
            raise ModelPackageError(f"{weights}: not a readable TorchScript file ({type(exc).__name__})") from None
    else:
        model = build_timm(spec)
        state = _read_state_dict(weights)
        own = model.state_dict()
        mismatch = _head_mismatch(own, state, len(spec.classes))
        if mismatch:
            raise ModelPackageError(f"{weights}: {mismatch}")
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ModelPackageError(
                f"{weights}: the weights do not fit {spec.architecture}: "
                + (f"{len(missing)} missing key(s) (e.g. {missing[:3]})" if missing else "")
                + ("; " if missing and unexpected else "")
                + (f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:3]})" if unexpected else "")
                + "; check that 'architecture' names the network the weights were trained with"
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelPackageError(f"{weights}: the weights do not fit {spec.architecture}: {exc}") from None
    model.eval()
    _check_output(model, spec, weights)
    return ModelPackage(spec, model, root)


def _check_output(model: torch.nn.Module, spec: ModelSpec, where: Path) -> None:
    x = torch.zeros((1, spec.channels, *spec.input_size))
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as exc:
        raise ModelPackageError(
            f"{where}: the model fails on a {tuple(x.shape)} input ({type(exc).__name__}: {exc}); "
            "check 'input_size' and 'channels' in model.json"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, len(spec.classes)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelPackageError(
            f"{where}: the model returns {shape} for one image but model.json lists {len(spec.classes)} classes"
        )


def save_model_package(folder: str | Path, spec: ModelSpec, model: torch.nn.Module) -> Path:
    """Write ``model.json`` and ``model.safetensors`` for a timm model (used by the demo model's training)."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / spec.weights))
    (out / "model.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


def demo_model_path() -> Path:
    """The bundled demo model package (``Resources/DemoModel``): beside the package in a source checkout, or the
    folder named by ``DIDA_DEMO_MODEL``. It is a demonstration model trained on synthetic phantoms, not for
    clinical use."""
    import os

    env = os.environ.get("DIDA_DEMO_MODEL")
    here = Path(__file__).resolve().parent
    candidates = ([Path(env)] if env else []) + [here.parent / "Resources" / "DemoModel", here / "Resources" / "DemoModel"]
    for c in candidates:
        if (c / "model.json").is_file():
            return c
    raise ModelPackageError(
        "the bundled demo model was not found (looked in " + ", ".join(str(c) for c in candidates) + "); "
        "reinstall DiDA from a complete checkout or set DIDA_DEMO_MODEL to the package folder"
    )
