"""Model code is code: which operators a TorchScript archive or a ``torch.export`` program may call without
``--trust-code``.

A TorchScript file carries its own program (``code/**.py`` in the archive, compiled by ``torch.jit.load``; a
``__setstate__`` in it even runs *while* the file is read), and an exported program's graph names operators by
their qualified names. Either can write or read any file (``aten::save``, ``aten::from_file``), print, or call an
operator some library registered. So a package of these formats is checked before anything of it runs:

- **before loading**, without torch (the Slicer process asks too, to confirm as for ``python:`` packages): every
  operator the archive's source names (TorchScript) or every node target of the serialized graph (torch.export);
- **after loading**, with torch, as a second look at what torch actually compiled: every node of every method,
  hook and nested block or subgraph of every submodule (TorchScript), every node of the graph module and its
  subgraphs, with the operators passed to higher-order operators (torch.export).

Allowed: the operators of PyTorch's tensor namespaces (``ALLOWED_NAMESPACES``: ATen, prim, prims and the
quantized and CPU-kernel namespaces, which compute on tensors only) but the few that touch the world outside the
tensors (``DENIED``), the higher-order operators that only run subgraphs (``ALLOWED_HIGHER_ORDER``) and plain
arithmetic. Anything else (a custom operator, another namespace, a Python function) is named in the refusal,
which says how to opt in (``--trust-code``). RNG seeding, warnings and device queries stay allowed: they change
no file and reach nothing outside the process.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from pathlib import Path

#: Namespaces whose operators compute on tensors only (``quantized`` and friends: the kernels of quantized and
#: oneDNN/MKL/XNNPACK-prepacked models; ``rngprims``: random numbers).
ALLOWED_NAMESPACES = frozenset({
    "aten", "prim", "prims", "quantized", "_quantized", "quantization", "onednn", "mkldnn", "mkldnn_prepacked", "mkl",
    "sparse", "prepacked", "rngprims",
})
#: Operators of those namespaces that reach outside the tensors, and what they do.
DENIED = {
    "aten::save": "it writes a file",
    "aten::from_file": "it reads a file",
    "aten::_print": "it prints",
    "prim::Print": "it prints",
    "prim::rpc_async": "it calls another process over the network",
    "prim::rpc_sync": "it calls another process over the network",
    "prim::rpc_remote": "it calls another process over the network",
}
#: Higher-order operators of torch.export that only run subgraphs of the same program (checked themselves) or the
#: operator they are given (checked too).
ALLOWED_HIGHER_ORDER = frozenset({
    "cond", "while_loop", "while_loop_stack_output", "map_impl", "scan", "associative_scan", "invoke_subgraph",
    "wrap", "wrap_with_set_grad_enabled", "wrap_with_autocast", "auto_functionalized", "auto_functionalized_v2",
    "out_dtype", "flex_attention", "hints_wrapper", "run_with_rng_state", "run_and_save_rng_state",
    "graphsafe_run_with_rng_state", "tag_activation_checkpoint", "with_effects",
})
#: torchbind classes (C++ objects) a TorchScript model may hold: the packed weights of quantized layers.
ALLOWED_CLASSES = frozenset({"quantized", "xnnpack", "mkldnn", "onednn", "rnn", "sparse"})
#: Builtins of TorchScript source that are calls to operators: ``print`` is prim::Print, ``rpc_*`` prim::rpc_*.
_SOURCE_NAMES = {"print": "prim::Print", "rpc_async": "prim::rpc_async", "rpc_sync": "prim::rpc_sync",
                 "rpc_remote": "prim::rpc_remote"}
#: The most source a TorchScript archive may carry before it is refused unread (its zip header says the size).
MAX_SOURCE_BYTES = 256 * 1024 * 1024


class GraphRefused(Exception):
    """A model program that calls what needs the user's consent: ``operator`` and ``why``."""

    def __init__(self, operator: str, why: str):
        super().__init__(f"{operator} ({why})")
        self.operator, self.why = operator, why

    def phrase(self, program: str) -> str:
        """What a package's ``program`` (e.g. "TorchScript program") does that needs consent, after "this model
        package's"."""
        return f"{program} calls {self.operator} ({self.why}), which is not a tensor operation"


def operator_refusal(qualified: str) -> str | None:
    """Why ``ns::name`` (an overload suffix is ignored) needs consent, or None when it is a tensor operator."""
    name = qualified.split(".")[0] if "::" in qualified else qualified
    if name in DENIED:
        return DENIED[name]
    namespace = name.split("::")[0] if "::" in name else ""
    if namespace not in ALLOWED_NAMESPACES:
        return "not a PyTorch tensor operator" if namespace else "not an operator"
    return None


def _check(qualified: str) -> None:
    why = operator_refusal(qualified)
    if why:
        raise GraphRefused(qualified, why)


# -- TorchScript, before loading: the archive's source ------------------------------------------------------------

def _chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"], or None when it does not start with a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _source_operator(parts: list[str]) -> str | None:
    """The operator a dotted name of TorchScript source calls: ``torch.add`` (ATen or prim builtins),
    ``ops.ns.op`` / ``torch.ops.ns.op``, ``__torch__.torch.classes.ns.Cls`` (a C++ class); None for other names."""
    if parts[0] == "torch" and len(parts) >= 4 and parts[1] == "ops":
        return f"{parts[2]}::{parts[3]}"
    if parts[0] == "torch" and len(parts) == 2:
        return f"aten::{parts[1]}"
    if parts[0] == "torch" and len(parts) > 2:
        return ".".join(parts)  # no operator is printed this way: an unknown name, refused
    if parts[0] == "ops" and len(parts) >= 3:
        return f"{parts[1]}::{parts[2]}"
    if parts[:3] == ["__torch__", "torch", "classes"] and len(parts) >= 4:
        return f"class {parts[3]}::{'.'.join(parts[4:])}"
    return None


def scan_torchscript_source(source: str, where: str) -> None:
    """Refuse (``GraphRefused``) TorchScript source that names an operator outside the allow-list."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise GraphRefused(where, "its TorchScript source cannot be checked") from None
    parents: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in parents:
            inner = node.value
            while isinstance(inner, ast.Attribute):
                parents.add(id(inner))  # only the whole dotted name is looked at
                inner = inner.value
            parts = _chain(node)
            op = _source_operator(parts) if parts else None
            if op is None:
                continue
            if op.startswith("class "):
                namespace = op.removeprefix("class ").split("::")[0]
                if namespace not in ALLOWED_CLASSES:
                    raise GraphRefused(op.removeprefix("class "), "a C++ class that is not PyTorch's")
            elif "::" not in op:
                raise GraphRefused(op, "not a PyTorch tensor operator")
            else:
                _check(op)
        elif isinstance(node, ast.Name) and node.id in _SOURCE_NAMES:
            _check(_SOURCE_NAMES[node.id])


def scan_torchscript_archive(path: Path) -> None:
    """Check a TorchScript archive's source without loading it (``GraphRefused``); ``ValueError`` when it is no
    TorchScript zip archive with source (a flatbuffer or bytecode-only file cannot be checked)."""
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if re.fullmatch(r"[^/]+/code/.+\.py", i.filename)]
            if not members:
                raise ValueError("it holds no TorchScript source (code/*.py)")
            if sum(i.file_size for i in members) > MAX_SOURCE_BYTES:
                raise ValueError("its TorchScript source is larger than any model's")
            for info in members:
                with z.open(info) as f:
                    text = f.read(info.file_size + 1)
                if len(text) > info.file_size:
                    raise ValueError("its zip directory does not match its contents")
                scan_torchscript_source(text.decode("utf-8", errors="replace"), info.filename)
    except zipfile.BadZipFile:
        raise ValueError("it is not a TorchScript zip archive (torch.jit.save writes one)") from None


# -- TorchScript, after loading: the compiled graphs ---------------------------------------------------------------

def _graph_nodes(graph):
    """Every node of a TorchScript graph: in nested blocks (if, loop) and subgraphs (fork) too."""
    stack = list(graph.nodes())
    while stack:
        node = stack.pop()
        yield node
        for block in node.blocks():
            stack.extend(block.nodes())
        if "Subgraph" in node.attributeNames():
            stack.extend(node.g("Subgraph").nodes())


def check_torchscript_module(module) -> None:
    """Check what a loaded TorchScript module can run (``GraphRefused``): every method of the top module and every
    hook, inlined (the methods of the submodules and TorchScript classes they call are inlined into them), and the
    methods left as calls (a forked call, a module interface) as they are found."""
    by_type: dict[str, list] = {}
    for sub in module.modules():
        by_type.setdefault(sub._c._type().qualified_name(), []).append(sub._c)
    graphs = [module._c._get_method(name).inlined_graph for name in module._c._method_names()]
    graphs += [hook.inlined_graph for subs in by_type.values() for c in subs
               for hook in (*c._get_forward_pre_hooks(), *c._get_forward_hooks())]
    seen: set[tuple[str, str]] = set()
    while graphs:
        for node in _graph_nodes(graphs.pop()):
            kind = node.kind()
            if kind == "prim::CallMethod":
                graphs += _called_methods(node, by_type, seen)
            elif kind == "prim::CallFunction":
                raise GraphRefused(kind, "a call that TorchScript did not inline cannot be checked")
            else:
                _check(kind)


def _called_methods(node, by_type: dict[str, list], seen: set[tuple[str, str]]) -> list:
    """The graphs a method call left in a graph may run: that method of the submodules of the receiver's type (of
    every submodule, for a module interface), or nothing for a C++ class of PyTorch's; anything else is refused."""
    receiver, method = node.inputsAt(0).type(), node.s("name")
    qualified = receiver.qualified_name() if hasattr(receiver, "qualified_name") else str(receiver)
    if qualified.startswith("__torch__.torch.classes."):
        if qualified.split(".")[3] not in ALLOWED_CLASSES:
            raise GraphRefused(qualified, "a C++ class that is not PyTorch's")
        return []
    if receiver.is_interface_type():
        types = list(by_type)
    elif qualified in by_type:
        types = [qualified]
    else:
        raise GraphRefused(f"prim::CallMethod on {qualified}", "a call that TorchScript did not inline cannot be "
                                                                "checked")
    graphs = []
    for t in types:
        if (t, method) in seen:
            continue
        seen.add((t, method))
        graphs += [c._get_method(method).inlined_graph for c in by_type[t] if method in c._method_names()]
    return graphs


# -- torch.export ----------------------------------------------------------------------------------------------------

def _export_target(target: str) -> str | None:
    """A serialized graph's node target as ``ns::op``; None for plain arithmetic and symbolic-size functions."""
    if target.startswith("torch.ops.higher_order."):
        return f"higher_order::{target.split('.')[3]}"
    if target.startswith("torch.ops.") and target.count(".") >= 3:
        ns, op = target.split(".")[2:4]
        return f"{ns}::{op}"
    if re.fullmatch(r"(_operator|operator|math)\.\w+|torch\.sym_\w+|torch\._sym_\w+", target):
        return None
    return target


def _check_export_operator(op: str | None) -> None:
    if op is None:
        return
    if op.startswith("higher_order::"):
        if op.split("::")[1] not in ALLOWED_HIGHER_ORDER:
            raise GraphRefused(op, "a higher-order operator that runs more than the program's own subgraphs")
        return
    if "::" not in op:
        raise GraphRefused(op, "not a PyTorch operator")
    _check(op)


def _targets(value):
    """Every ``target`` string in a serialized exported graph (its subgraphs are nested in it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, v in item.items():
                if key == "target" and isinstance(v, str):
                    yield v
                else:
                    stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


def scan_export_archive(path: Path) -> None:
    """Check the node targets of a ``.pt2`` archive's serialized programs without loading it (``GraphRefused``)."""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if re.fullmatch(r"[^/]+/models/[^/]+\.json", info.filename):
                if info.file_size > MAX_SOURCE_BYTES:
                    raise ValueError("its program is larger than any model's")
                for target in _targets(json.loads(z.read(info))):
                    _check_export_operator(_export_target(target))


def _python_function_allowed(target) -> bool:
    import math
    import operator

    import torch

    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", "")
    return ((module in ("_operator", "operator") and getattr(operator, name, None) is target)
            or (module == "math" and getattr(math, name, None) is target)
            or (name.startswith(("sym_", "_sym_")) and getattr(torch, name, None) is target))


def _export_operator(target) -> str | None:
    """A graph node's target as ``ns::op`` (None for plain arithmetic); a Python function is named as such."""
    import torch

    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order::{target.name()}"
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return target._schema.name if hasattr(target, "_schema") else f"{target._qualified_op_name}"
    if callable(target) and _python_function_allowed(target):
        return None
    return str(target)


def check_export_program(program) -> None:
    """Check every node of an exported program's graph module and its subgraphs, and the operators handed to
    higher-order operators (``GraphRefused``)."""
    import torch

    graphs = [m.graph for m in program.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
    for node in (n for g in graphs for n in g.nodes):
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if node.op != "call_function":
            raise GraphRefused(f"{node.op} {node.target}", "not a PyTorch operator")
        _check_export_operator(_export_operator(node.target))
        for arg in (*node.args, *node.kwargs.values()):
            if isinstance(arg, (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)):
                _check_export_operator(_export_operator(arg))


# -- what a package would run --------------------------------------------------------------------------------------

#: The formats whose weights file is a program, and what the program is called in a sentence.
PROGRAMS = {"torchscript": ("TorchScript program", scan_torchscript_archive),
            "torch-export": ("exported program", scan_export_archive)}


def program_refusal(architecture: str, weights: Path) -> str | None:
    """Why the program in a package's weights file needs the user's consent (a phrase naming the operator), or
    None when it calls tensor operators only, is no program, or cannot be read (its loader then says why)."""
    if architecture not in PROGRAMS:
        return None
    what, scan = PROGRAMS[architecture]
    try:
        scan(weights)
    except GraphRefused as refused:
        return refused.phrase(what)
    except (OSError, ValueError, zipfile.BadZipFile, RuntimeError, EOFError):
        return None
    return None
