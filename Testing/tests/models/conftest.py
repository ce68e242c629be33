"""Fixtures of the model tests: the third-party model files, built once per session (exporting takes seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from third_party import (
    finetuned_torchvision,
    trained_net,
    with_fixed_batch,
    write_export,
    write_onnx,
    write_python_style,
)


class ThirdParty(NamedTuple):
    net: torch.nn.Module  # the residual CNN as a plain nn.Module (the reference)
    code: Path  # its author's .py file
    state_dict: Path  # its plain torch.save state dict
    onnx: Path  # torch.onnx.export, dynamic batch (with its external data file beside it)
    onnx_fixed: Path  # the same with its input fixed to a batch of 3 (sharing oct_resnet.onnx.data)
    export: Path  # torch.export.save, dynamic batch
    export_fixed: Path  # torch.export.save with a fixed batch of 3
    torchvision: torch.nn.Module  # a fine-tuned squeezenet1_1 (its 'classifier.1' replaced)
    torchvision_state: Path  # its state dict


@pytest.fixture(scope="session")
def third_party(tmp_path_factory) -> ThirdParty:
    folder = tmp_path_factory.mktemp("third_party")
    torch.manual_seed(0)
    net = trained_net()
    code, state = write_python_style(folder / "published", net)
    tv = finetuned_torchvision()
    torch.save(tv.state_dict(), folder / "squeezenet_oct.pth")
    onnx = write_onnx(folder / "oct_resnet.onnx", net)
    return ThirdParty(
        net=net, code=code, state_dict=state, onnx=onnx,
        onnx_fixed=with_fixed_batch(onnx, folder / "oct_resnet_b3.onnx", 3),
        export=write_export(folder / "oct_resnet.pt2", net),
        export_fixed=write_export(folder / "oct_resnet_b3.pt2", net, fixed_batch=3),
        torchvision=tv, torchvision_state=folder / "squeezenet_oct.pth",
    )  # fmt: skip
