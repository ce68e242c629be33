"""``architecture_args``: the keyword arguments a package gives the builder of its network, checked when
``model.json`` is read.

A builder argument can do more than shape the network: timm's ``checkpoint_path`` and ``pretrained_cfg_overlay``
load a file of the builder's choosing (and unpickle it, in timm releases before 1.0.26), ``pretrained`` and
torchvision's ``weights`` download. So timm and torchvision networks take only the arguments listed here, each a
plain value (a number, a word, a flag, or a short list of them), and formats without a builder take none; a
``python:`` package's own code gets any plain JSON values (it runs only with the user's consent anyway).
"""

from __future__ import annotations

import math

from .spec import ModelPackageError

#: What a value must be, by kind, and its test.
KINDS = {
    "rate": ("a number from 0 to 1", lambda v: _real(v) and 0 <= v <= 1),
    "int": ("a whole number", lambda v: _whole(v)),
    "ints": ("a whole number or a list of them", lambda v: _whole(v) or (isinstance(v, list) and 0 < len(v) <= 64
                                                                        and all(_whole(x) for x in v))),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "bools": ("a list of true/false", lambda v: isinstance(v, list) and len(v) <= 8 and all(isinstance(x, bool)
                                                                                          for x in v)),
    "name": ("a short name", lambda v: isinstance(v, str) and 0 < len(v) <= 64),
    "number": ("a number", lambda v: _real(v)),
}
#: timm arguments that only shape the network (dropout, pooling, input size, block sizes, layer choices by name).
TIMM_ARGS = {
    **dict.fromkeys(("drop_rate", "drop_path_rate", "drop_block_rate", "proj_drop_rate", "attn_drop_rate",
                     "pos_drop_rate", "patch_drop_rate"), "rate"),
    **dict.fromkeys(("img_size", "patch_size", "window_size", "depths", "dims", "layers", "embed_dim", "channels"),
                    "ints"),  # channels: a ResNet's stage widths (the Kermany demo model's narrowed resnet10t)
    **dict.fromkeys(("output_stride", "reg_tokens", "depth", "num_heads", "stem_width", "base_width", "cardinality",
                     "head_hidden_size"), "int"),
    **dict.fromkeys(("class_token", "no_embed_class", "dynamic_img_size", "dynamic_img_pad", "qkv_bias", "fix_stem",
                     "zero_init_last", "fc_norm", "head_norm_first", "conv_mlp", "pre_norm"), "bool"),
    **dict.fromkeys(("global_pool", "act_layer", "norm_layer", "stem_type", "aa_layer", "attn_layer", "se_layer"),
                    "name"),
    **dict.fromkeys(("mlp_ratio", "channel_multiplier", "depth_multiplier", "width_multiplier", "init_values",
                     "ls_init_value", "bn_eps", "bn_momentum"), "number"),
}
#: torchvision classifier arguments that only shape the network (``weights`` would download: never).
TORCHVISION_ARGS = {
    **dict.fromkeys(("dropout", "attention_dropout", "stochastic_depth_prob"), "rate"),
    **dict.fromkeys(("num_classes", "groups", "width_per_group", "image_size"), "int"),
    **dict.fromkeys(("aux_logits", "init_weights", "transform_input", "zero_init_residual"), "bool"),
    "replace_stride_with_dilation": "bools",
}
#: Registry prefix -> the arguments its builder may get and their kinds (None: any plain JSON value).
ALLOWED = {"timm:": TIMM_ARGS, "torchvision:": TORCHVISION_ARGS, "python:": None}
#: Bounds of a plain value: a string's length, a list's length, nesting of a python: package's values.
MAX_TEXT, MAX_ITEMS, MAX_DEPTH = 200, 64, 8


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and _plain(v, False)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 31


def _plain(value, nested: bool, depth: int = 0) -> bool:
    """A number (finite, of a sane size), a short string, a flag, None or a short list of them; with ``nested``
    (a python: package) also lists and objects of them, a few levels deep."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < 2 ** 63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if depth >= (MAX_DEPTH if nested else 1):
        return False
    if isinstance(value, list):
        return len(value) <= MAX_ITEMS and all(_plain(v, nested, depth + 1) for v in value)
    if isinstance(value, dict) and nested:
        return len(value) <= MAX_ITEMS and all(_plain(v, nested, depth + 1) for v in value.values())
    return False


def check_architecture_args(architecture: str, args, where: str) -> dict:
    """The ``architecture_args`` of a package, or ``ModelPackageError`` naming the argument and the fix."""
    if not isinstance(args, dict):
        raise ModelPackageError(f"{where}: 'architecture_args' must be an object of builder arguments, e.g. "
                                "{\"drop_rate\": 0.2}")
    from .registry import ARCHITECTURES

    if architecture in ARCHITECTURES:  # a file that holds the whole network (onnx, torch-export, torchscript)
        if args:
            raise ModelPackageError(f"{where}: 'architecture_args' {sorted(args)} are not used by a {architecture!r} "
                                    "package, whose file holds the whole network: remove them")
        return {}
    prefix = next((p for p in ALLOWED if architecture.startswith(p)), "timm:")  # a bare name is a timm name
    allowed = ALLOWED[prefix]
    for key, value in args.items():
        if allowed is not None and key not in allowed:
            raise ModelPackageError(
                f"{where}: 'architecture_args' key {key!r} is not one DiDA passes to {prefix.rstrip(':')} (it may "
                "load files or download; weights belong in the package's weights file): use only "
                f"{', '.join(sorted(allowed))}")
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        if allowed is None:
            if not _plain(value, nested=True):
                raise ModelPackageError(f"{where}: 'architecture_args' {key!r} is {shown}: give plain JSON values "
                                        "(numbers, short strings, true/false, lists and objects of them)")
            continue
        what, fits = KINDS[allowed[key]]
        if not fits(value):
            raise ModelPackageError(f"{where}: 'architecture_args' {key!r} is {shown}: it must be {what}")
    return dict(args)
