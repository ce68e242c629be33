"""Model packages: safe loading, clear errors for every mismatch, preprocessing and the map back to the B-scan."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from DiDALib.maps.mixing import cell_map, grid_image
from DiDALib.models.package import load_model_package, save_model_package
from DiDALib.models.preprocess import input_region, preprocess_bscan
from DiDALib.models.spec import ModelPackageError, ModelSpec
from DiDALib.pipeline import ExplainSettings, VolumeExplainer

timm = pytest.importorskip("timm")
# Building TorchScript fixtures uses APIs torch 2.14 marks deprecated; loading them is what is tested.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
CLASSES = ("normal", "drusen", "wet_amd")


def _spec(**kw) -> ModelSpec:
    base = dict(architecture="timm:test_efficientnet", classes=CLASSES, input_size=(32, 48), channels=1)
    base.update(kw)
    return ModelSpec(**base)


def _model(classes=3, channels=1):
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=classes, in_chans=channels)


@pytest.fixture
def package(tmp_path):
    return save_model_package(tmp_path / "pkg", _spec(), _model())


def _edit_json(folder, **changes):
    data = json.loads((folder / "model.json").read_text())
    data.update(changes)
    (folder / "model.json").write_text(json.dumps(data))


def test_safetensors_package_round_trip(package):
    pkg = load_model_package(package)
    assert pkg.spec.classes == CLASSES and not pkg.model.training
    out = pkg.model(torch.zeros(2, 1, 32, 48))
    assert out.shape == (2, 3)


def test_pth_state_dict_loads_with_weights_only(tmp_path):
    m = _model()
    folder = tmp_path / "pth"
    folder.mkdir()
    torch.save({"state_dict": m.state_dict()}, folder / "weights.pth")
    (folder / "model.json").write_text(json.dumps(_spec(weights="weights.pth").to_dict()))
    pkg = load_model_package(folder)
    x = torch.rand(1, 1, 32, 48)
    torch.testing.assert_close(pkg.model(x), m.eval()(x))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_is_never_unpickled(tmp_path, capsys):
    folder = tmp_path / "evil"
    folder.mkdir()
    with open(folder / "weights.pth", "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    (folder / "model.json").write_text(json.dumps(_spec(weights="weights.pth").to_dict()))
    with pytest.raises(ModelPackageError, match="cannot be read"):
        load_model_package(folder)
    assert "must never run" not in capsys.readouterr().out


def test_torchscript_package(tmp_path):
    m = _model().eval()
    folder = tmp_path / "ts"
    folder.mkdir()
    torch.jit.trace(m, torch.zeros(1, 1, 32, 48)).save(str(folder / "model.pt"))
    (folder / "model.json").write_text(json.dumps(_spec(architecture="torchscript", weights="model.pt").to_dict()))
    pkg = load_model_package(folder)
    x = torch.rand(1, 1, 32, 48)
    torch.testing.assert_close(pkg.model(x), m(x))


def test_missing_and_unexpected_keys(package):
    from safetensors.torch import save_file

    folder = package
    state = {k: v.contiguous() for k, v in _model().state_dict().items()}
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelPackageError, match="1 missing key.*1 unexpected key"):
        load_model_package(folder)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"architecture": "timm:no_such_net"}, "not a timm model"),
        ({"architecture": "timm:resnet10t"}, "do not fit timm:resnet10t"),  # weights of another network
        ({"classes": ["a", "b", "c", "d"]}, "has 3 output.*lists 4 classes"),  # wrong class count for the head
        ({"classes": ["only"]}, "at least two"),
        ({"classes": ["a", "a", "b"]}, "repeats"),
        ({"channels": 2}, "channels"),
        ({"input_size": [224]}, "input_size"),
        ({"mean": [0.1, 0.2]}, "one per channel"),
        ({"std": [0.0]}, "std"),
        ({"resize": "crop"}, "resize"),
        ({"score": "softmax"}, "score"),
        ({"normalisation": "zscore"}, "'normalisation' is 'zscore'"),
        ({"normalisation": "none", "mean": [0.1]}, "sets the mean and std itself"),
        ({"normalisation": "imagenet"}, "needs 'channels' 3"),
        ({"head": "fc"}, "'head' names the layer of a torchvision"),
        ({"examples": [{"image": "a.png", "top": "glaucoma"}]}, "not among 'classes'"),
        ({"examples": [{"image": "a.png"}]}, "example 0 must be"),
        ({"examples": [{"image": "a.png", "top": "normal"}]}, "example image 'a.png' named in model.json is missing"),
        ({"examples": [{"image": "../a.png", "top": "normal"}]}, "outside the package"),
        ({"weights": "../model.safetensors"}, "outside the package"),
        ({"colour": "red"}, "unknown field"),
        ({"format": "other/2"}, "not supported"),
    ],
)
def test_bad_model_json_fields(package, change, match):
    _edit_json(package, **change)
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(package)


def test_unreadable_files(tmp_path, package):
    (package / "model.safetensors").write_bytes(b"not really safetensors")
    with pytest.raises(ModelPackageError, match="cannot be read"):
        load_model_package(package)
    (package / "model.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        load_model_package(package)
    with pytest.raises(ModelPackageError, match="no model.json"):
        load_model_package(tmp_path)
    with pytest.raises(ModelPackageError, match="no such model package"):
        load_model_package(tmp_path / "absent")
    (package / "model.json").write_text(json.dumps(_spec(weights="gone.safetensors").to_dict()))
    with pytest.raises(ModelPackageError, match="missing"):
        load_model_package(package)


def test_input_size_that_the_network_cannot_take(tmp_path):
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1) @ torch.zeros(32 * 48, 3)

    folder = tmp_path / "fixed"
    folder.mkdir()
    torch.jit.script(Fixed()).save(str(folder / "model.pt"))
    (folder / "model.json").write_text(json.dumps(_spec(architecture="torchscript", weights="model.pt",
                                                        input_size=[40, 40]).to_dict()))
    with pytest.raises(ModelPackageError, match="fails on a \\(1, 1, 40, 40\\) input"):
        load_model_package(folder)


def test_stretch_and_letterbox_regions():
    assert input_region((496, 768), _spec(input_size=(224, 224))) == (0, 0, 224, 224)
    # Paper: width halved first (768 -> 384), then fitted into 224 x 224 keeping that aspect.
    top, left, h, w = input_region((496, 768), _spec(input_size=(224, 224), resize="letterbox", width_scale=0.5))
    assert h == 224 and abs(w - round(384 * 224 / 496)) <= 1 and left == (224 - w) // 2 and top == 0


def test_preprocessing_normalises_and_keeps_the_margin_black():
    spec = _spec(input_size=(40, 40), resize="letterbox", channels=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.1))
    bscan = np.full((20, 40), 0.9, np.float32)
    x, (top, left, h, w) = preprocess_bscan(bscan, spec)
    assert x.shape == (3, 40, 40) and (top, left, h, w) == (10, 0, 20, 40)
    torch.testing.assert_close(x[:, 20, 20], torch.tensor([(0.9 - 0.5) / 0.2, (0.9 - 0.4) / 0.2, (0.9 - 0.3) / 0.1]))
    torch.testing.assert_close(x[:, 0, 0], torch.tensor(spec.fill_value(0.0)))
    with pytest.raises(ValueError, match="2D"):
        preprocess_bscan(np.zeros((2, 3, 4)), spec)


def test_maps_go_back_onto_the_bscan_as_crisp_cells_and_skip_the_margin(tmp_path):
    spec = _spec(input_size=(64, 64), resize="letterbox")
    pkg = load_model_package(save_model_package(tmp_path / "p", spec, _model()))
    bscan = np.random.default_rng(0).random((30, 90), dtype=np.float32)
    ex = VolumeExplainer(pkg, ExplainSettings(grids=(3, 4), device="cpu"))
    r = ex.explain_bscan(bscan)
    assert r.region == input_region(bscan.shape, spec) and r.region[0] > 0  # a margin above and below
    g = grid_image(r, 3, 0, shape=bscan.shape)
    assert g.shape == (30, 90)
    for n in (3, 4):
        cells = cell_map(r, n, shape=bscan.shape)
        assert set(np.unique(cells)) == set(range(n * n))  # every cell lands on the B-scan, none in the margin
        for c in range(n * n):
            rows, cols = np.nonzero(cells == c)
            box = cells[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert np.all(box == c)  # a crisp, solid rectangle
        sizes = [np.count_nonzero(cells[:, 0] == c * n) for c in range(n)]
        assert max(sizes) - min(sizes) <= 2


def test_normalisation_none_and_imagenet_round_trip():
    none = ModelSpec.from_dict({"architecture": "onnx", "classes": ["a", "b"], "normalisation": "none"})
    assert (none.mean, none.std) == ((0.0,), (1.0,))
    x, _ = preprocess_bscan(np.full((8, 8), 0.7, np.float32), _spec(input_size=(8, 8), mean=none.mean, std=none.std))
    torch.testing.assert_close(x, torch.full((1, 8, 8), 0.7))  # "none": the intensities as they are
    data = none.to_dict()
    assert data["normalisation"] == "none" and "mean" not in data and ModelSpec.from_dict(data) == none
    rgb = ModelSpec.from_dict({"architecture": "onnx", "classes": ["a", "b"], "channels": 3,
                               "normalisation": "imagenet"})
    assert rgb.mean == (0.485, 0.456, 0.406) and rgb.std == (0.229, 0.224, 0.225)
    assert ModelSpec.from_dict(rgb.to_dict()) == rgb
