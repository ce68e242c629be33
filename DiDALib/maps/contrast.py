"""Contrast maps, "A rather than B": how each cell changes the margin between two classes.

For classes A and B the contrast of cell ij is ``d_A - d_B = [C_A(I) - C_B(I)] - [C_A(M_ij) - C_B(M_ij)]``: positive
where hiding the cell narrows A's lead over B (the cell speaks for A over B), negative where it widens it (the cell
speaks for B over A). Every number is already in a result, one forward pass per masked image giving every class, so
a contrast costs no model pass. A contrast is returned as a one-class ``DiDAResult``, so it is mixed, coloured,
scaled and saved by exactly the rules of a class's own Mixed Image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..engine.result import DiDAResult
from ..suggest import did_you_mean

#: The default pairs: the top class against each of the next two (the paper's worked examples are such pairs).
DEFAULT_RIVALS = 2


def contrast_name(class_names: Sequence[str], a: int, b: int) -> str:
    """The display name of the contrast of class ``a`` over class ``b``."""
    return f"{class_names[a]} vs {class_names[b]}"


def contrast_result(result: DiDAResult, a: int | str, b: int | str) -> DiDAResult:
    """The contrast of class ``a`` over class ``b`` as a one-class result: ``deltas[n] = d_a - d_b`` per cell of
    every grid, ``base_scores = [C_a(I) - C_b(I)]`` (the margin), in float32 like every d."""
    ka, kb = result.class_index(a), result.class_index(b)
    if ka == kb:
        raise ValueError(f"a contrast needs two different classes, got {a!r} twice")
    names = result.class_names or tuple(str(k) for k in range(result.num_classes))
    deltas = {n: (d[ka].astype(np.float32) - d[kb].astype(np.float32))[None] for n, d in result.deltas.items()}
    base = np.array([result.base_scores[ka] - result.base_scores[kb]], dtype=np.float32)
    return DiDAResult(base_scores=base, deltas=deltas, image_shape=result.image_shape, region=result.region,
                      score=result.score, index=result.index, class_names=(contrast_name(names, ka, kb),),
                      estimator=result.estimator)  # Shapley values are linear in the score: phi_a - phi_b is one


def default_pairs(ranking: Sequence[float], rivals: int = DEFAULT_RIVALS,
                  among: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """The top class (by ``ranking``, one value per class, highest first) against each of the next ``rivals``;
    only classes ``among`` (the classes a run shows) take part when given."""
    order = [int(k) for k in np.argsort(-np.asarray(ranking, dtype=np.float64), kind="stable")]
    if among is not None:
        keep = {int(k) for k in among}
        order = [k for k in order if k in keep]
    return [(order[0], k) for k in order[1 : 1 + rivals]]


def parse_pairs(specs: Iterable[str], class_names: Sequence[str], ranking: Sequence[float] | None = None,
                among: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """Contrast pairs from ``A:B`` texts (class names) or ``top`` (the default pairs, from ``ranking``, among the
    classes ``among`` where given); each pair given once, in the order given. A ValueError names a bad text and
    says how to write one."""
    names = list(class_names)
    pairs: list[tuple[int, int]] = []
    for spec in specs:
        text = spec.strip()
        if text.lower() == "top":
            if ranking is None:
                raise ValueError("contrast 'top' needs the classes' scores to rank them")
            found = default_pairs(ranking, among=among)
        else:
            a, sep, b = text.partition(":")
            a, b = a.strip(), b.strip()
            if not sep or not a or not b:
                raise ValueError(f"contrast {spec!r} is not 'A:B' (two class names) or 'top'")
            unknown = [c for c in (a, b) if c not in names]
            if unknown:
                raise ValueError(f"contrast {spec!r}: {unknown} not among the model's classes {names}"
                                 + did_you_mean(unknown[0], names))
            if a == b:
                raise ValueError(f"contrast {spec!r} compares a class with itself: name two different classes")
            found = [(names.index(a), names.index(b))]
        pairs.extend(p for p in found if p not in pairs)
    return pairs
