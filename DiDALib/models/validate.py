"""A loaded model tried on B-scans: the classes it ranks first, and the package's example B-scans checked.

A package may record example B-scans with the class the model must rank first on each (``examples`` in
``model.json``); loading runs them, so a wrong class order or a wrong preprocessing fails loudly instead of
explaining the wrong class. ``dida package --check`` prints the same predictions for any images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..engine.scores import transform_scores
from .preprocess import preprocess_bscan
from .spec import ModelPackageError, ModelSpec, package_file

FIX = ("check the order of 'classes' and the preprocessing ('channels', 'normalisation' or 'mean'/'std', 'resize', "
       "'width_scale') against how the model was trained")


def read_bscans(path: str | Path) -> np.ndarray:
    """The B-scans (n, depth, width) in [0, 1] of any file or folder DiDA reads."""
    from ..io.registry import load_oct

    return load_oct(path).bscans


def predict(model, spec: ModelSpec, bscans: np.ndarray, batch: int = 16) -> np.ndarray:
    """Class probabilities (n, K) of B-scans (n, depth, width), preprocessed as the package says."""
    rows = []
    for start in range(0, len(bscans), batch):
        x = torch.stack([preprocess_bscan(b, spec)[0] for b in bscans[start : start + batch]])
        with torch.inference_mode():
            rows.append(transform_scores(model(x), "probabilities").cpu().numpy())
    return np.concatenate(rows)


def describe(probabilities: np.ndarray, classes, n: int = 3) -> str:
    """The top ``n`` classes of one row of probabilities: ``drusen 0.970, normal 0.020, wet_amd 0.010``."""
    order = np.argsort(-probabilities, kind="stable")[:n]
    return ", ".join(f"{classes[k]} {probabilities[k]:.3f}" for k in order)


def check_examples(model, spec: ModelSpec, root: Path) -> None:
    """Run every example B-scan of the package; raise ``ModelPackageError`` listing those whose top class is not
    the one the package expects."""
    from ..io.volume import OCTReadError

    failures = []
    for example in spec.examples:
        path = package_file(root, example.image, "the example image")
        if not path.exists():
            raise ModelPackageError(f"{root}: the example image {example.image!r} named in model.json is missing")
        try:
            bscans = read_bscans(path)
        except OCTReadError as exc:
            raise ModelPackageError(f"{root}: the example image {example.image!r} cannot be read ({exc})") from None
        if bscans.shape[0] != 1:
            raise ModelPackageError(f"{root}: the example {example.image!r} holds {bscans.shape[0]} B-scans: an "
                                    "example is one B-scan image")
        p = predict(model, spec, bscans)[0]
        if spec.classes[int(np.argmax(p))] != example.top:
            failures.append(f"{example.image} should be {example.top!r} but the model ranks {describe(p, spec.classes)}")
    if failures:
        raise ModelPackageError(f"{root}: {len(failures)} of {len(spec.examples)} example B-scan(s) get another top "
                                f"class ({'; '.join(failures)}): {FIX}")
