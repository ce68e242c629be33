"""``model.json`` errors name the field and what was found, for values of the wrong kind too (a string where
numbers belong, NaN, a weights path that leaves the package)."""

from __future__ import annotations

import math

import pytest

from DiDALib.models.spec import ModelPackageError, ModelSpec

BASE = {"architecture": "timm:test_efficientnet", "classes": ["a", "b"]}


@pytest.mark.parametrize("fields,match", [
    ({"mean": "abc"}, r"'mean' is 'abc': it must be a list of finite numbers"),
    ({"mean": [0.5, 0.5]}, r"'mean' has 2 value\(s\) but 'channels' is 1"),
    ({"std": [math.nan]}, r"'std' is \[nan\]: it must be a list of finite numbers"),
    ({"std": [0.0]}, r"'std' is \[0.0\] .*: each std must lie between 1e-06 and 1e\+06"),
    ({"mean": [True]}, r"'mean'"),
    ({"width_scale": math.nan}, r"'width_scale' is nan"),
    ({"channels": 1.5}, r"'channels' is 1.5"),
    ({"input_size": [224, "224"]}, r"'input_size' is \[224, '224'\]"),
    ({"architecture": ""}, r"'architecture' is ''"),
    ({"weights": "../elsewhere/model.safetensors"}, "outside the package folder"),
    ({"weights": "/models/model.safetensors"}, "outside the package folder"),
    ({"weights": "C:\\models\\model.pth"}, "outside the package folder"),
    ({"weights": ""}, "'weights' is ''"),
])
def test_field_errors_name_the_field(fields, match):
    with pytest.raises(ModelPackageError, match=match):
        ModelSpec.from_dict({**BASE, **fields})


def test_good_fields_still_pass():
    spec = ModelSpec.from_dict({**BASE, "channels": 3, "mean": [0, 0.5, 1], "std": [1, 2, 3],
                                "weights": "sub/model.safetensors", "width_scale": 0.5})
    assert spec.mean == (0.0, 0.5, 1.0) and spec.weights == "sub/model.safetensors"
