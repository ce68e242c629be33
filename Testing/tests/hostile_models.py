"""Model packages whose program does more than tensor math, as a hostile author can make them: what the model-code
tests and ``Testing/hostile_pass.py`` share."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from cli_helpers import CLASSES

INPUT = (32, 32)


def program_package(folder: Path, architecture: str, weights: str) -> Path:
    """``model.json`` for a TorchScript or torch.export file in ``folder`` (the tests' classes, 1 channel)."""
    (folder / "model.json").write_text(json.dumps({
        "format": "dida-model/1", "name": "user program", "architecture": architecture, "weights": weights,
        "classes": list(CLASSES), "input_size": list(INPUT), "channels": 1, "normalisation": "none"}))
    return folder


def edited_export(path: Path, marker: Path | None = None, target: str | None = None) -> Path:
    """A torch.export program whose serialized graph was edited: a node calling ``aten::from_file`` on ``marker``
    (shared: it creates the file, the marker of a read), or its relu node's target replaced by ``target``.
    torch.export.load reads either, and the graph runs the node."""
    import torch

    class Net(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x).mean(dim=(2, 3)).repeat(1, len(CLASSES))

    base = path.with_suffix(".base.pt2")
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(torch.export.export(Net(), (torch.zeros(2, 1, *INPUT),), dynamic_shapes=({0: batch},)),
                      str(base))
    with zipfile.ZipFile(base) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("models/model.json") and target:
                data = data.replace(b"torch.ops.aten.relu.default", target.encode())
            elif item.filename.endswith("models/model.json"):
                program = json.loads(data)
                graph = program["graph_module"]["graph"]
                graph["nodes"].insert(0, {
                    "target": "torch.ops.aten.from_file.default", "name": "ff", "metadata": {},
                    "inputs": [{"name": "filename", "arg": {"as_string": str(marker)}, "kind": 1},
                               {"name": "shared", "arg": {"as_bool": True}, "kind": 1},
                               {"name": "size", "arg": {"as_int": 16}, "kind": 1}],
                    "outputs": [{"as_tensor": {"name": "ff"}}], "is_hop_single_tensor_return": None})
                graph["tensor_values"]["ff"] = {"dtype": 7, "sizes": [{"as_int": 16}], "strides": [{"as_int": 1}],
                                                "requires_grad": False, "device": {"type": "cpu", "index": None},
                                                "storage_offset": {"as_int": 0}, "layout": 5}
                data = json.dumps(program).encode()
            zout.writestr(item.filename, data)
    base.unlink()
    return path
