"""Model packages that lie: every field DiDA reads is checked where ``model.json`` is read, and each bad one is exit
code 2 with one line naming the field and the fix. timm is never handed an argument that loads a file (its
``checkpoint_path`` unpickled whatever it named: the marker here must never appear), weights and ``model.json``
are regular files, and a package's own code that ends the process is reported as the model's failure."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from cli_helpers import FAST, changed_package, make_package, one_line, run, write_volume

from DiDALib import cli

pytest.importorskip("timm")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("model") / "pkg")


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    return write_volume(tmp_path_factory.mktemp("volume") / "v.nrrd", n=1)


def _with(tmp_path: Path, package: Path, text: str | None = None, **fields) -> Path:
    return changed_package(tmp_path / "changed", package, text, **fields)


def _refused(capsys, tmp_path: Path, volume: Path, model: Path, match: str, *extra) -> str:
    code, _, err = run(capsys, "explain", volume, "--model", model, "--out", tmp_path / "out", *FAST, *extra)
    assert code == cli.EXIT_BAD_INPUT, err
    assert err.startswith("dida: error: ") and one_line(err), err
    assert match in err, err
    assert "unexpected error" not in err and not (tmp_path / "out").exists()
    return err


class _Payload:
    """What a hostile checkpoint holds: unpickling it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("key", ["checkpoint_path", "pretrained_cfg_overlay"])
def test_a_timm_argument_never_loads_a_file(tmp_path, capsys, package, volume, key):
    marker = tmp_path / "unpickled.txt"
    checkpoint = tmp_path / "x.pth"
    checkpoint.write_bytes(pickle.dumps(_Payload(marker)))
    value = str(checkpoint) if key == "checkpoint_path" else {"file": str(checkpoint)}
    model = _with(tmp_path, package, architecture_args={key: value})
    _refused(capsys, tmp_path, volume, model, f"{key!r}")
    assert not marker.exists(), "timm unpickled the file"


@pytest.mark.parametrize("args, match", [
    ({"pretrained": True}, "'pretrained'"),
    ({"drop_rate": "high"}, "'architecture_args'"),
    ({"drop_rate": {"nested": 1}}, "'drop_rate'"),
    ({"global_pool": "nonsense"}, "'architecture_args'"),
    ({"drop_rate": 10 ** 400}, "'drop_rate'"),
], ids=["pretrained", "string-rate", "nested", "unknown-pool", "huge-number"])
def test_bad_timm_arguments_are_named(tmp_path, capsys, package, volume, args, match):
    _refused(capsys, tmp_path, volume, _with(tmp_path, package, architecture_args=args), match)


def test_torchvision_never_downloads_weights(tmp_path):
    from DiDALib.models.arguments import check_architecture_args
    from DiDALib.models.spec import ModelPackageError

    with pytest.raises(ModelPackageError, match="'weights'"):
        check_architecture_args("torchvision:resnet18", {"weights": "DEFAULT"}, "model.json")
    assert check_architecture_args("torchvision:resnet18", {"zero_init_residual": True}, "m") == {
        "zero_init_residual": True}
    with pytest.raises(ModelPackageError, match="not used by a 'onnx' package"):
        check_architecture_args("onnx", {"x": 1}, "model.json")
    assert check_architecture_args("python:net.py:Net", {"widths": [8, {"a": 1}]}, "m") == {"widths": [8, {"a": 1}]}


def test_a_deeply_nested_model_json_is_named(tmp_path, capsys, package, volume):
    _refused(capsys, tmp_path, volume, _with(tmp_path, package, text="[" * 100000 + "]" * 100000), "nests deeper")


@pytest.mark.parametrize("fields, match", [
    ({"width_scale": 10 ** 400}, "'width_scale'"),
    ({"input_size": [10 ** 400, 8]}, "'input_size'"),
    ({"std": [1e-300]}, "'std'"),
    ({"demo": "false"}, "'demo'"),
    ({"name": {"x": 1}}, "'name'"),
], ids=["400-digits", "400-digit-size", "tiny-std", "demo-string", "name-object"])
def test_model_json_values_are_named(tmp_path, capsys, package, volume, fields, match):
    err = _refused(capsys, tmp_path, volume, _with(tmp_path, package, **fields), match)
    assert "non-finite pixels" not in err and len(err) < 600


def test_a_model_json_folder_is_named_as_such(tmp_path, capsys, package, volume):
    model = _with(tmp_path, package)
    (model / "model.json").unlink()
    (model / "model.json").mkdir()
    err = _refused(capsys, tmp_path, volume, model, "model.json is a folder")
    assert "--out" not in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_weights_that_are_no_file_are_named(tmp_path, capsys, package, volume, kind):
    model = _with(tmp_path, package)
    (model / "model.safetensors").unlink()
    if kind == "fifo":
        os.mkfifo(model / "model.safetensors")
    else:
        os.symlink("/dev/zero", model / "model.safetensors")
    err = _refused(capsys, tmp_path, volume, model, "named pipe" if kind == "fifo" else "character device")
    assert "missing" not in err


EXITING = '''
import sys
import torch
{at_import}

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 4)

    def forward(self, x):
        {in_forward}
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])
'''


@pytest.mark.parametrize("at_import, in_forward, match", [
    ("sys.exit(0)", "pass", "ended the process"),
    ("", "raise SystemExit", "ended the process"),
    ("", "raise KeyboardInterrupt", "KeyboardInterrupt"),
], ids=["exit-at-import", "exit-in-forward", "interrupt-in-forward"])
def test_trusted_code_that_ends_the_process_is_the_models_failure(tmp_path, capsys, volume, at_import, in_forward,
                                                                  match):
    import torch

    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "net.py").write_text(EXITING.format(at_import=at_import, in_forward=in_forward))
    torch.save({"fc.weight": torch.zeros(4, 1), "fc.bias": torch.zeros(4)}, folder / "net.pth")
    (folder / "model.json").write_text(json.dumps({
        "architecture": "python:net.py:Net", "weights": "net.pth", "classes": ["a", "b", "c", "d"],
        "input_size": [32, 32], "channels": 1, "normalisation": "none"}))
    err = _refused(capsys, tmp_path, volume, folder, match, "--trust-code")
    assert "cancelled" not in err and "net.py" in err


def test_the_bundled_packages_pass_the_argument_checks():
    """The allow-list admits what real shape-only arguments look like: the bundled models' own (timm's ResNet
    ``channels``, the block widths of the Kermany demo model)."""
    from DiDALib.models.package import demo_model_path, phantom_model_path
    from DiDALib.models.spec import read_spec

    for path in (demo_model_path(), phantom_model_path()):
        assert read_spec(path).architecture.startswith("timm:")
