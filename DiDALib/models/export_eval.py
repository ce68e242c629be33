"""An exported program traced in training mode, switched to evaluation mode by rewriting its graph.

``torch.export`` records BatchNorm and Dropout as traced: exported from a model left in training mode (nn.Module's
default), BatchNorm normalises every batch by its own statistics and Dropout zeroes random activations, so d would
depend on which masked images share a batch and on chance. An exported program cannot be switched with ``eval()``
(torch raises), so the training flags of those operators are set to False in the graph: exactly what ``eval()``
does to the modules they came from (BatchNorm then uses its running statistics, Dropout passes through).
"""

from __future__ import annotations

import torch

#: ATen operators with a training flag, and the position of that flag among their arguments.
TRAINING_FLAG = {
    "batch_norm": 5,
    "native_batch_norm": 5,
    "_native_batch_norm_legit": 5,
    "_native_batch_norm_legit_functional": 5,
    "dropout": 2,
    "feature_dropout": 2,
    "alpha_dropout": 2,
    "feature_alpha_dropout": 2,
    "native_dropout": 2,
}


def to_eval(module: torch.fx.GraphModule) -> int:
    """Set every training flag of ``module``'s graph (and its subgraphs) to False; returns how many were set."""
    changed = 0
    for gm in (m for m in module.modules() if isinstance(m, torch.fx.GraphModule)):
        touched = False
        for node in gm.graph.nodes:
            target = node.target
            if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
                continue
            if target.namespace != "aten" or target._schema.name.split("::")[-1] not in TRAINING_FLAG:
                continue
            k = TRAINING_FLAG[target._schema.name.split("::")[-1]]
            if len(node.args) > k and node.args[k] is True:
                node.args = (*node.args[:k], False, *node.args[k + 1 :])
                changed += 1
                touched = True
            elif node.kwargs.get("training") is True or node.kwargs.get("train") is True:
                node.kwargs = {**node.kwargs, **{key: False for key in ("training", "train") if key in node.kwargs}}
                touched = True
                changed += 1
        if touched:
            gm.recompile()
    return changed
