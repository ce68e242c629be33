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

#: timm arguments that only shape the network (dropout, pooling, input size, block sizes, layer choices by name).
TIMM_ARGS = frozenset({
    "drop_rate", "drop_path_rate", "drop_block_rate", "proj_drop_rate", "attn_drop_rate", "pos_drop_rate",
    "patch_drop_rate", "global_pool", "img_size", "patch_size", "window_size", "output_stride", "act_layer",
    "norm_layer", "class_token", "reg_tokens", "no_embed_class", "dynamic_img_size", "dynamic_img_pad", "qkv_bias",
    "mlp_ratio", "embed_dim", "depth", "num_heads", "depths", "dims", "channel_multiplier", "depth_multiplier",
    "width_multiplier", "fix_stem", "stem_type", "stem_width", "block_args", "layers", "base_width", "cardinality",
    "aa_layer", "attn_layer", "se_layer", "zero_init_last", "init_values", "fc_norm", "head_norm_first",
    "conv_mlp", "ls_init_value", "head_hidden_size", "pre_norm", "bn_eps", "bn_momentum",
})
#: torchvision classifier arguments that only shape the network (``weights`` would download: never).
TORCHVISION_ARGS = frozenset({
    "num_classes", "dropout", "attention_dropout", "aux_logits", "init_weights", "transform_input",
    "stochastic_depth_prob", "image_size", "zero_init_residual", "groups", "width_per_group",
    "replace_stride_with_dilation",
})
#: Registry prefix -> the arguments its builder may get (None: any plain JSON value; absent: none at all).
ALLOWED = {"timm:": TIMM_ARGS, "torchvision:": TORCHVISION_ARGS, "python:": None}
#: Bounds of a plain value: a string's length, a list's length, nesting of a python: package's values.
MAX_TEXT, MAX_ITEMS, MAX_DEPTH = 200, 64, 8


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
    prefix = next((p for p in ALLOWED if architecture.startswith(p)), "timm:" if ":" not in architecture else None)
    if prefix is None:
        if args:
            raise ModelPackageError(f"{where}: 'architecture_args' {sorted(args)} are not used by a {architecture!r} "
                                    "package, whose file holds the whole network: remove them")
        return {}
    allowed = ALLOWED[prefix]
    for key, value in args.items():
        if allowed is not None and key not in allowed:
            raise ModelPackageError(
                f"{where}: 'architecture_args' key {key!r} is not one DiDA passes to {prefix.rstrip(':')} (it may "
                "load files or download; weights belong in the package's weights file): use only "
                f"{', '.join(sorted(allowed))}")
        if not _plain(value, nested=allowed is None):
            shown = repr(value)
            raise ModelPackageError(f"{where}: 'architecture_args' {key!r} is {shown[:60]}{'...' if len(shown) > 60 else ''}"
                                    ": give a plain value (a number, a short string, true/false or a short list)")
    return dict(args)
