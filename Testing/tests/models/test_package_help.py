"""``dida package`` finishes the job on the commonest cases: a channel mismatch named with the flags that fix it,
checkpoint wrappers and key prefixes recognised (and said), a whole pickled model refused with the two lines that
save its state dict (never unpickled), close names suggested for a mistyped architecture or class, and no terminal
escape codes in any message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from DiDALib import cli
from DiDALib.models.package import load_model_package

timm = pytest.importorskip("timm")
CLASSES = "CNV,DME,DRUSEN,NORMAL"
ANSI = re.compile(r"\x1b\[")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, *argv) -> str:
    code, _, err = _run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not ANSI.search(err), repr(err)
    return err


def _net(in_chans: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False, num_classes=4, in_chans=in_chans).eval()


def _package_args(weights: Path, out: Path, *more) -> list:
    return ["package", weights, "--architecture", "timm:test_resnet", "--classes", CLASSES, "--input-size", "32,32",
            "--out", out, *more]


def test_a_three_channel_state_dict_with_the_default_one_channel_names_the_fix(tmp_path, capsys):
    torch.save(_net(3).state_dict(), tmp_path / "rgb.pth")
    err = _refused(capsys, *_package_args(tmp_path / "rgb.pth", tmp_path / "pkg"))
    assert "takes 3 input channels" in err and "--channels 3" in err and "--normalisation imagenet" in err, err
    assert "size mismatch" not in err and not (tmp_path / "pkg").exists()
    code, _, err = _run(capsys, *_package_args(tmp_path / "rgb.pth", tmp_path / "pkg", "--channels", "3"))
    assert code == 0, err


def test_a_lightning_checkpoint_is_unwrapped_and_its_prefix_removed_and_said(tmp_path, capsys):
    net = _net()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": 3, "global_step": 120, "state_dict": state, "pytorch-lightning_version": "2.4.0"},
               tmp_path / "last.ckpt")
    code, out, err = _run(capsys, *_package_args(tmp_path / "last.ckpt", tmp_path / "pkg"))
    assert code == 0, err
    assert "'state_dict'" in out and "prefix 'model.'" in out, out
    x = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(load_model_package(tmp_path / "pkg").model(x), net(x))


def test_a_checkpoint_holding_two_networks_asks_which_prefix(tmp_path, capsys):
    net, ema = _net(), _net()
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    state = {**{f"model.{k}": v for k, v in net.state_dict().items()},
             **{f"model_ema.{k}": v for k, v in ema.state_dict().items()}}
    torch.save({"model_state_dict": state}, tmp_path / "both.pth")
    err = _refused(capsys, *_package_args(tmp_path / "both.pth", tmp_path / "pkg"))
    assert "'model.'" in err and "'model_ema.'" in err and "--strip-prefix" in err, err
    code, out, err = _run(capsys, *_package_args(tmp_path / "both.pth", tmp_path / "pkg", "--strip-prefix",
                                                 "model_ema."))
    assert code == 0, err
    package = load_model_package(tmp_path / "pkg")
    assert json.loads((tmp_path / "pkg" / "model.json").read_text())["weights"].endswith(".safetensors")
    x = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(package.model(x), ema(x))
    err = _refused(capsys, *_package_args(tmp_path / "both.pth", tmp_path / "p2", "--strip-prefix", "net."))
    assert "no key starts with 'net.'" in err


def test_a_whole_pickled_model_is_refused_with_the_two_lines_that_save_its_state_dict(tmp_path, capsys):
    marker = tmp_path / "unpickled.txt"
    torch.save(_net(), tmp_path / "whole.pth")  # the whole module: loading it would run pickle
    err = _refused(capsys, *_package_args(tmp_path / "whole.pth", tmp_path / "pkg"))
    assert "whole pickled model" in err and "torch.save(model.state_dict()" in err and "weights_only=False" in err
    assert "ResNet" in err and not marker.exists() and not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("architecture,suggestion", [("timm:resnet-18", "resnet18"),
                                                     ("torchvision:resnet-18", "resnet18"),
                                                     ("torchvision:ResNet18", "resnet18")])
def test_a_mistyped_architecture_gets_the_close_names(tmp_path, capsys, architecture, suggestion):
    torch.save(_net().state_dict(), tmp_path / "w.pth")
    args = _package_args(tmp_path / "w.pth", tmp_path / "pkg")
    args[args.index("timm:test_resnet")] = architecture
    err = _refused(capsys, *args)
    assert f"did you mean {suggestion!r}" in err or f"'{suggestion}'" in err.split("did you mean")[-1], err


def test_a_mistyped_class_gets_the_close_name(tmp_path, capsys):
    torch.save(_net().state_dict(), tmp_path / "w.pth")
    image = tmp_path / "b.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(image)
    err = _refused(capsys, *_package_args(tmp_path / "w.pth", tmp_path / "pkg", "--example", f"{image}=drusen"))
    assert "did you mean 'DRUSEN'" in err


def test_no_message_carries_terminal_escape_codes(capsys):
    from DiDALib.cli.failures import report

    assert report(ValueError("\x1b[1mWeights only load failed\x1b[0m: bad")) == 2
    err = capsys.readouterr().err
    assert not ANSI.search(err) and "Weights only load failed: bad" in err
