"""``architecture: "torch-export"``: a ``.pt2`` program written by ``torch.export.save``, TorchScript's
supported successor.

``torch.export.load`` may unpickle parts of an archive (tensor subclasses, custom objects, legacy weights), and a
program's graph can name any attribute of ``torch``; neither is safe for a file from elsewhere. So the archive is
read first without running anything: every weight and constant must be a plain tensor (no pickle), and the sample
inputs must load with ``weights_only=True``. Unless the user trusts the package, the graph may call only tensor
operators (``graph_check``: checked in the archive before loading, and in the loaded program). A program exported
with a fixed batch size is run in batches of that size.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import torch

from .export_eval import to_eval
from .fixed_batch import batch_dimension, in_fixed_batches
from .graph_check import GraphRefused, check_export_program, scan_export_archive
from .python_code import UntrustedCodeError
from .registry import Source
from .spec import ModelPackageError, ModelSpec

class _Refused(Exception):
    pass


def _check_archive(path: Path) -> None:
    """Refuse an archive that would unpickle anything, reading only its JSON configs and sample inputs."""
    from torch.export.pt2_archive import constants as c

    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        for name in names:
            inner = name.split("/", 1)[-1]
            if inner.startswith((c.WEIGHTS_DIR, c.CONSTANTS_DIR)) and inner.endswith(".pt"):
                raise _Refused(f"it holds pickled tensors ({inner}, the pre-2.7 layout): save it again with "
                               "torch.export.save on a current torch")
            if inner.startswith((c.WEIGHTS_DIR, c.CONSTANTS_DIR)) and inner.endswith("_config.json"):
                for fqn, meta in json.loads(z.read(name)).get("config", {}).items():
                    if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(
                            (c.CUSTOM_OBJ_FILENAME_PREFIX, c.OPAQUE_OBJ_FILENAME_PREFIX)):
                        raise _Refused(f"its {fqn!r} is a pickled object, not a plain tensor")
            if inner.startswith(c.SAMPLE_INPUTS_DIR):
                try:
                    import io

                    torch.load(io.BytesIO(z.read(name)), weights_only=True)
                except Exception:
                    raise _Refused(f"its sample inputs ({inner}) need unpickling beyond plain tensors") from None
        if not any(n.split("/", 1)[-1].startswith(c.MODELS_DIR) for n in names):
            raise _Refused("it holds no exported program (no models/*.json)")


def to_eval_module(program) -> torch.fx.GraphModule:
    """The program as a module, its training-mode BatchNorm and Dropout switched to evaluation mode."""
    module = program.module()
    to_eval(module)
    return module


class ExportedModel(torch.nn.Module):
    """An exported program as a module. Exported programs cannot switch between training and evaluation (they
    were traced in one mode), so ``train()``/``eval()`` only set the flag, and a program traced in training mode is
    run as evaluated (``export_eval.to_eval``); ``to(device)`` moves the program with
    ``torch.export``'s own pass, which also moves devices written into the graph."""

    def __init__(self, program, fixed_batch_size: int | None):
        super().__init__()
        self.program = program
        self.module_ = to_eval_module(program)
        self.fixed_batch_size = fixed_batch_size

    def train(self, mode: bool = True) -> ExportedModel:
        self.training = mode
        return self

    def to(self, *args, **kwargs) -> ExportedModel:
        device, _, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None:
            params = list(self.module_.parameters()) + list(self.module_.buffers())
            if not params or params[0].device != torch.device(device):
                from torch.export.passes import move_to_device_pass

                self.program = move_to_device_pass(self.program, torch.device(device))
                self.module_ = to_eval_module(self.program)
        if memory_format is not None:
            self.module_.to(memory_format=memory_format)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_fixed_batches(self.module_, x, self.fixed_batch_size)


def load_torch_export(spec: ModelSpec, source: Source) -> torch.nn.Module:
    """The exported program in the package's weights file, checked to be plain tensors and PyTorch operators."""
    where = source.weights
    try:
        _check_archive(where)
        if not source.trust_code:
            scan_export_archive(where)
        logger = logging.getLogger("torch.export")
        level = logger.level
        logger.setLevel(logging.ERROR)  # a damaged file is reported once, by us, not with torch's traceback too
        try:
            program = torch.export.load(str(where))
        except torch._export.verifier.SpecViolationError as exc:  # torch's own check of the graph's operators
            raise _Refused(str(exc).splitlines()[0][:200]) from None
        finally:
            logger.setLevel(level)
        if not source.trust_code:
            check_export_program(program)
    except GraphRefused as refused:
        raise UntrustedCodeError(where, "this model package's " + refused.phrase("exported program")) from None
    except _Refused as why:
        raise ModelPackageError(f"{where}: this torch.export file is refused: {why}") from None
    except Exception as exc:  # anything else torch.export.load raises means the archive is not one it can read
        raise ModelPackageError(f"{where}: not a readable torch.export (.pt2) file ({type(exc).__name__}); write "
                                "it with torch.export.save(torch.export.export(model, (example,)), 'model.pt2')"
                                ) from None
    inputs = [n for n in program.graph.nodes if n.op == "placeholder"
              and n.name in program.graph_signature.user_inputs]
    if len(inputs) != 1:
        raise ModelPackageError(f"{where}: the exported program takes {len(inputs)} inputs: DiDA gives one image batch")
    value = inputs[0].meta.get("val")
    shape = list(value.shape) if value is not None else []
    if len(shape) != 4:
        raise ModelPackageError(f"{where}: the exported program's input has shape {shape}: expected (batch, "
                                "channels, height, width)")
    return ExportedModel(program, batch_dimension(shape))
