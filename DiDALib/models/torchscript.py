"""``architecture: "torchscript"``: a TorchScript archive (``torch.jit.save``), which holds its own weights.

A TorchScript archive is a program (its ``__setstate__`` even runs while it is read): unless the user trusts the
package, its source is checked before it is loaded and its compiled graphs after (``graph_check``), and a program
that calls more than tensor operators is refused with the operator named.
"""

from __future__ import annotations

import warnings

import torch

from .graph_check import GraphRefused, check_torchscript_module, scan_torchscript_archive
from .python_code import UntrustedCodeError
from .registry import Source
from .spec import ModelPackageError, ModelSpec


def load_torchscript(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The TorchScript module in the package's weights file (on the CPU)."""
    weights = source.weights
    try:
        if not source.trust_code:
            scan_torchscript_archive(weights)
    except GraphRefused as refused:
        raise UntrustedCodeError(weights, "this model package's " + refused.phrase("TorchScript program")) from None
    except (OSError, ValueError) as exc:
        raise ModelPackageError(f"{weights}: not a TorchScript archive that can be checked ({exc}); save the model "
                                "with torch.jit.save(torch.jit.script(model), 'model.pt')") from None
    try:
        with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript, but users still bring .pt files
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(weights), map_location="cpu")
    except Exception as exc:
        raise ModelPackageError(f"{weights}: not a readable TorchScript file ({type(exc).__name__})") from None
    if not source.trust_code:
        try:
            check_torchscript_module(module)
        except GraphRefused as refused:
            raise UntrustedCodeError(weights, "this model package's " + refused.phrase("TorchScript program")) from None
    return module
