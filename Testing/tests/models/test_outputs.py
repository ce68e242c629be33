"""``output`` and ``fixed_batch`` in model.json (``models/call_fields.py``, ``models/outputs.py``): validated, applied
to every format, and every way they can be wrong named with the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from zoo import ZOO, write_package

from DiDALib.models.outputs import candidates, pick
from DiDALib.models.package import load_model_package
from DiDALib.models.spec import ModelPackageError, ModelSpec

BASE = {"architecture": "torchscript", "classes": ["a", "b"]}


@pytest.mark.parametrize("field,value", [("output", -1), ("output", True), ("output", ""), ("output", [0]),
                                         ("fixed_batch", 0), ("fixed_batch", 2.0), ("fixed_batch", False)])
def test_call_fields_are_validated(field, value):
    with pytest.raises(ModelPackageError, match=f"'{field}' is"):
        ModelSpec.from_dict({**BASE, field: value})


def test_call_fields_round_trip():
    spec = ModelSpec.from_dict({**BASE, "output": "logits", "fixed_batch": 4})
    assert (spec.output, spec.fixed_batch) == ("logits", 4)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert "output" not in ModelSpec.from_dict(BASE).to_dict()


def test_pick_by_index_key_and_attribute():
    z = torch.ones(1, 2)

    @dataclass
    class HFStyle:  # an object with .logits, as Hugging Face models return (python: packages only)
        logits: torch.Tensor
        hidden_states: torch.Tensor

    assert pick((z, 0), 0) is z and pick({"logits": z}, "logits") is z and pick(HFStyle(z, z * 2), "logits") is z
    assert candidates(HFStyle(z, torch.ones(1, 5)), 2) == ["logits"]
    assert candidates((torch.ones(1, 7), z), 2) == [1]


def _edit(folder, **fields):
    data = json.loads((folder / "model.json").read_text())
    data.update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del data[key]
    (folder / "model.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("fmt", ["python", "torch-export"])
def test_a_model_returning_a_tuple_without_output_is_refused_with_the_field_to_set(tmp_path, fmt):
    folder = _edit(write_package(tmp_path / "t", ZOO["tuple"], fmt), output=None)
    with pytest.raises(ModelPackageError, match=r"returns a tuple of 2 \(tensor \(1, 4\), tensor \(1, 5\)\) \(0 has one "
                                                r"score per class\).*\"output\": 0 \(dida package --output 0\)"):
        load_model_package(folder, trust_code=True)


def test_a_dict_without_output_suggests_its_key(tmp_path):
    folder = _edit(write_package(tmp_path / "d", ZOO["dict"], "python"), output=None)
    with pytest.raises(ModelPackageError, match=r"'logits' has one score per class.*\"output\": \"logits\""):
        load_model_package(folder, trust_code=True)


@pytest.mark.parametrize("fmt,output,match", [
    ("python", 2, "'output' is 2 but the model returns a tuple of 2.*index below 2"),
    ("python", "logits", "'output' is 'logits' but the model returns a tuple of 2.*which has no 'logits'"),
    ("torchscript", "scores", "name one of its keys"),
    ("onnx", "scores", "'output' is 'scores' but the ONNX model's outputs are 0: 'features'"),
])  # fmt: skip
def test_an_output_that_is_not_there_is_named(tmp_path, fmt, output, match):
    model = ZOO["dict"] if output == "scores" else ZOO["tuple"]
    folder = _edit(write_package(tmp_path / "p", model, fmt), output=output)
    with pytest.raises(ModelPackageError, match=match):
        load_model_package(folder, trust_code=True)


def test_an_onnx_model_with_several_outputs_needs_output(tmp_path):
    folder = _edit(write_package(tmp_path / "o", ZOO["dict"], "onnx"), output=None)
    with pytest.raises(ModelPackageError, match=r"has 2 outputs \(0: 'features'.*1: 'logits'.*'output' in model.json"):
        load_model_package(folder)


def test_fixed_batch_is_needed_where_the_file_cannot_say_it_and_must_agree_where_it_does(tmp_path):
    python = _edit(write_package(tmp_path / "py", ZOO["fixed_batch"], "python"), fixed_batch=None)
    with pytest.raises(ModelPackageError, match="fails on a .*'fixed_batch' if it takes one batch size only"):
        load_model_package(python, trust_code=True)
    exported = _edit(write_package(tmp_path / "ex", ZOO["fixed_batch"], "torch-export"), fixed_batch=None)
    assert load_model_package(exported).model.fixed_batch_size == 4  # the file says it
    _edit(exported, fixed_batch=3)
    with pytest.raises(ModelPackageError, match="'fixed_batch' is 3 but the file takes batches of 4"):
        load_model_package(exported)
    pkg = load_model_package(_edit(python, fixed_batch=4), trust_code=True)
    with torch.inference_mode():
        assert pkg.model(torch.rand(7, 1, 24, 24)).shape == (7, 4)  # two calls of 4, the last padded
