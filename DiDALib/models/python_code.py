"""``architecture: "python:<file.py>:<callable>"``: the package's own Python file defines or builds the network
(called with no arguments, or with ``architecture_args``), and ``weights`` holds its state dict.

That file is the package author's code and can do anything the user can, so it runs only after an explicit
opt-in: ``load_model_package(path, trust_code=True)`` (``--trust-code`` on the command line, a confirmation that
names the file in Slicer). Without it loading stops with ``UntrustedCodeError``, which names the file;
``code_to_trust`` tells beforehand whether a package runs code and which file, without running or importing
anything. The file must lie inside the package; it is executed from its source (no ``__pycache__`` is written
into the package) as a module of its own.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from pathlib import Path

from .registry import Source
from .spec import ModelPackageError, ModelSpec, package_file, read_spec

PREFIX = "python:"


#: Why a ``python:`` package needs consent, as ``UntrustedCodeError`` says it.
PYTHON_REASON = "this model package builds its network with its own Python code, which can do anything your user " \
                "account can"


class UntrustedCodeError(ModelPackageError):
    """A package that runs its own code (Python, or a program that calls more than tensor operators), opened
    without the user's consent; ``code_file`` is that file and ``reason`` says what it would do."""

    def __init__(self, code_file: Path, reason: str = PYTHON_REASON):
        self.code_file = Path(code_file)
        self.reason = reason
        super().__init__(
            f"{self.code_file}: {reason}; it runs only if you trust where the package came from: "
            "add --trust-code (Python: trust_code=True)"
        )


class PackageCodeExit(ModelPackageError):
    """The package's own code raised ``SystemExit`` (or a ``KeyboardInterrupt`` no user sent), which would have
    ended DiDA as if it had finished or been cancelled: the model's failure, reported as such."""

    def __init__(self, path: Path, exc: BaseException):
        how = "as if you had pressed Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "with nothing said"
        super().__init__(f"{path}: the package's own code raised {type(exc).__name__}"
                         f"{'(' + repr(exc.args[0])[:40] + ')' if exc.args else ''}, which would have ended the "
                         f"process {how}: the model package fails, not DiDA; fix its code")


def ends_process(exc: BaseException) -> bool:
    """Whether ``exc`` is the package code's attempt to end the process: ``SystemExit``, or a ``KeyboardInterrupt``
    while DiDA turns real Ctrl-Cs into ``Interrupted`` (so this one was raised by code)."""
    from ..io.signals import Interrupted, interrupts_are_marked

    if isinstance(exc, SystemExit):
        return True
    return isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted) and interrupts_are_marked()


def _guarded(forward, path: Path):
    """The module's ``forward``, with a package's attempt to end the process turned into its failure."""
    @functools.wraps(forward)
    def call(*args, **kwargs):
        try:
            return forward(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt) as exc:
            if ends_process(exc):
                raise PackageCodeExit(path, exc) from None
            raise

    return call


def parse_architecture(architecture: str) -> tuple[str, str]:
    """``python:<file.py>:<callable>`` as (file, callable name)."""
    file, sep, name = architecture.removeprefix(PREFIX).rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise ModelPackageError(f"architecture {architecture!r} must be python:<file.py>:<callable>, e.g. "
                                "python:model.py:Net (a file inside the package and the class or function in it)")
    return file, name


def code_file(spec: ModelSpec, root: Path) -> Path | None:
    """The Python file inside ``root`` that the package runs to build its network, or None when it runs none."""
    if not spec.architecture.startswith(PREFIX):
        return None
    file, _ = parse_architecture(spec.architecture)
    return package_file(root, file, "the code file")


def consent_needed(spec: ModelSpec, root: Path) -> UntrustedCodeError | None:
    """What a package would run that needs the user's consent, as the error loading it without consent raises, or
    None: its Python file (``python:``), or a TorchScript or exported program that calls more than tensor
    operators (``graph_check``, read without torch and without running anything)."""
    from .graph_check import program_refusal

    code = code_file(spec, root)
    if code is not None:
        return UntrustedCodeError(code)
    weights = package_file(root, spec.weights, "the weights file")
    reason = program_refusal(spec.architecture, weights) if weights.is_file() else None
    return UntrustedCodeError(weights, f"this model package's {reason}") if reason else None


def consent_for(package: str | Path) -> UntrustedCodeError | None:
    """``consent_needed`` of a package folder (or its ``model.json``), from the files alone."""
    path = Path(package)
    return consent_needed(read_spec(path), path if path.is_dir() else path.parent)


def code_to_trust(package: str | Path) -> Path | None:
    """The file a package would run that needs consent (None when it runs none), found without running anything:
    its Python file, or its TorchScript or exported program when that calls more than tensor operators; ask the
    user about this file (``consent_for`` says why), then load with ``trust_code=True`` only if they agree."""
    needed = consent_for(package)
    return needed.code_file if needed else None


def _run_file(path: Path) -> types.ModuleType:
    name = "dida_package_code_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses, typing and pickling look a class's module up there
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    except (SystemExit, KeyboardInterrupt) as exc:
        del sys.modules[name]
        if ends_process(exc):
            raise PackageCodeExit(path, exc) from None
        raise
    except Exception as exc:
        del sys.modules[name]
        raise ModelPackageError(f"{path}: the package's code fails when run ({type(exc).__name__}: {exc})") from None
    return module


def build_python(spec: ModelSpec, source: Source) -> object:
    """Run the package's code file and call its builder with ``architecture_args`` (only when trusted)."""
    import torch

    path = code_file(spec, source.root)
    if not source.trust_code:
        raise UntrustedCodeError(path)
    if not path.is_file():
        raise ModelPackageError(f"{source.root}: the code file {path.name!r} named in 'architecture' is missing")
    _, name = parse_architecture(spec.architecture)
    module = _run_file(path)
    builder = getattr(module, name, None)
    if not callable(builder):
        found = sorted(k for k, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__)
        raise ModelPackageError(f"{path}: defines no callable {name!r}"
                                + (f" (its nn.Module classes: {', '.join(found)})" if found else ""))
    try:
        model = _guarded(builder, path)(**spec.architecture_args)
    except PackageCodeExit:
        raise
    except Exception as exc:
        raise ModelPackageError(f"{path}: {name}(**{spec.architecture_args}) fails ({type(exc).__name__}: {exc}); "
                                "check 'architecture_args' in model.json") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelPackageError(f"{path}: {name}() returned a {type(model).__name__}, not a torch.nn.Module")
    model.forward = _guarded(model.forward, path)  # an instance attribute: nn.Module.__call__ finds it first
    return model


def load_python(spec: ModelSpec, source: Source):
    """The network the package's code builds, with the package's state dict."""
    from .weights import load_weights

    return load_weights(build_python(spec, source), source.weights, spec.architecture, len(spec.classes),
                        source.notes)
