"""Model packages: a folder with ``model.json`` and weights, loaded safely and checked against each other.

The fields of ``model.json`` are listed and checked in ``spec``, the architectures a package can name are in
``registry``, ``preprocess`` makes the model input and ``validate`` runs the package's example B-scans. Weights
are never unpickled: safetensors first, ``torch.load(weights_only=True)`` for ``.pth``. A package that builds its
network with its own Python code (``python:``) loads only with ``trust_code=True``; ``code_to_trust`` says
beforehand which file that would run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..io.files import check_regular
from .python_code import PackageCodeExit, UntrustedCodeError, code_to_trust, consent_needed
from .registry import Source, loader_for
from .spec import ModelPackageError, ModelSpec, package_file, read_spec

if TYPE_CHECKING:  # torch is imported where a model is loaded or saved: Slicer's process reads packages without it
    import torch

__all__ = ["ModelPackage", "ModelPackageError", "UntrustedCodeError", "code_to_trust", "demo_model_path",
           "load_model_package", "phantom_model_path", "save_model_package"]


@dataclass
class ModelPackage:
    """A loaded package: its spec, the ready model (eval mode, CPU) and where it came from."""

    spec: ModelSpec
    model: torch.nn.Module
    path: Path
    notes: tuple[str, ...] = ()  # what loading had to do to the weights (a checkpoint's wrapper or prefix removed)


def load_model_package(package: str | Path, trust_code: bool = False) -> ModelPackage:
    """Load a model package, checking that the weights fit the architecture and the class list, and that the
    model ranks each of the package's example B-scans as the package says.

    A package whose network is built by its own Python code raises ``UntrustedCodeError`` (naming the file)
    unless ``trust_code`` is True: set it only after the user agreed to run that file.

    Returns a ``ModelPackage``: ``model`` (the ``nn.Module`` or runtime wrapper, eval mode, CPU), ``spec`` (what
    ``model.json`` says: ``classes``, ``input_size``, preprocessing, ``score``), ``path``. Raises
    ``ModelPackageError`` with the reason and the fix for a package that cannot be used. Formats and every field:
    docs/formats.md.

    Example
    -------
    >>> package = load_model_package("Resources/Models/kermany-oct")
    >>> package.spec.classes
    ('CNV', 'DME', 'DRUSEN', 'NORMAL')
    """
    path = Path(package)
    if not path.exists():
        raise ModelPackageError(f"{path}: no such model package folder")
    spec = read_spec(path)
    root = path if path.is_dir() else path.parent
    weights = package_file(root, spec.weights, "the weights file")
    needed = None if trust_code else consent_needed(spec, root)
    if needed is not None:
        raise needed
    if not weights.exists():
        raise ModelPackageError(f"{root}: the weights file {spec.weights!r} named in model.json is missing")
    check_regular(weights, "the weights file named in model.json", "put the weights file itself in the package "
                  "folder", ModelPackageError)
    from .outputs import call_as_packaged  # these import torch: only where a model is loaded
    from .validate import check_examples

    source = Source(root, weights, trust_code)
    model = loader_for(spec.architecture)(spec, source)
    model = call_as_packaged(model, spec.output, spec.fixed_batch, weights)
    model.eval()  # BatchNorm and Dropout as evaluated, whatever mode the package's code left them in
    _check_output(model, spec, weights)
    check_examples(model, spec, root)
    return ModelPackage(spec, model, root, tuple(source.notes))


def _check_output(model: torch.nn.Module, spec: ModelSpec, where: Path) -> None:
    import torch

    from .outputs import OutputError, unpicked

    x = torch.zeros((1, spec.channels, *spec.input_size))
    try:
        with torch.inference_mode():
            out = model(x)
    except PackageCodeExit:
        raise
    except OutputError as exc:
        raise ModelPackageError(f"{where}: {exc} (the field 'output' of model.json; dida package --output)") from None
    except Exception as exc:
        raise ModelPackageError(
            f"{where}: the model fails on a {tuple(x.shape)} input ({type(exc).__name__}: {exc}); "
            "check 'input_size' and 'channels' in model.json (and 'fixed_batch' if it takes one batch size only)"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise ModelPackageError(f"{where}: {unpicked(out, len(spec.classes))}")
    if tuple(out.shape) != (1, len(spec.classes)):
        shape = tuple(out.shape)
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


def _bundled(env_name: str, relative: tuple[str, ...], what: str) -> Path:
    """A model package shipped in ``Resources/``: the folder named by ``env_name`` if set, else ``relative`` beside
    DiDALib (a source checkout) or inside it (the Slicer extension's layout)."""
    import os

    env = os.environ.get(env_name)
    library = Path(__file__).resolve().parents[1]  # DiDALib, beside Resources/ in a checkout and in Slicer
    candidates = ([Path(env)] if env else []) + [library.parent.joinpath("Resources", *relative),
                                                   library.joinpath("Resources", *relative)]
    for c in candidates:
        if (c / "model.json").is_file():
            return c
    raise ModelPackageError(
        f"the bundled {what} was not found (looked in " + ", ".join(str(c) for c in candidates) + "); "
        f"reinstall DiDA from a complete checkout or set {env_name} to the package folder"
    )


def demo_model_path() -> Path:
    """The default model package (``Resources/Models/kermany-oct``, or the folder named by ``DIDA_DEMO_MODEL``): a
    research demonstration trained on real Kermany 2018 OCT B-scans (CNV, DME, drusen, normal), not for clinical
    use."""
    return _bundled("DIDA_DEMO_MODEL", ("Models", "kermany-oct"), "demo model")


def phantom_model_path() -> Path:
    """The phantom model package (``Resources/DemoModel``, or the folder named by ``DIDA_PHANTOM_MODEL``), trained
    on synthetic phantoms whose lesions are known pixel by pixel: for tests, benchmarks and ``dida demo
    --phantom``; its outputs on real B-scans mean nothing."""
    return _bundled("DIDA_PHANTOM_MODEL", ("DemoModel",), "phantom model")
