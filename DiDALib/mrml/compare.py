"""Compare, "A rather than B", in the DiDA View: views 1 and 2 show classes A and B, view 3 their contrast map
(``maps.contrast``: ``d_A - d_B`` mixed over the grids like a Mixed Image, red where a region speaks for A over B,
blue for B over A), in the same label encoding and colour table as the class overlays.

Every number comes from the run's own d (``ExplainSession.explanation``): no model pass. The nodes a comparison
adds (the contrast overlay, and A's or B's overlay where the run shows no overlay of that class) are removed with
it (``Comparison.remove``), so turning Compare off gives the run's top three views back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..explanation import VolumeExplanation
from ..io.map_files import contrast_scale
from ..maps.contrast import contrast_name, contrast_result
from ..maps.mixing import mixed_image
from .overlays import CONTRAST, ClassOverlay, add_class_overlay
from .results import DiDARun


def check_pair(class_names: Sequence[str], a: str, b: str) -> tuple[int, int]:
    """The class indices of A and B, or a ValueError saying in one sentence what is wrong and what to choose."""
    names = list(class_names)
    for name in (a, b):
        if name not in names:
            raise ValueError(f"Compare: {name!r} is not a class of this run ({', '.join(names)}): choose two of them.")
    if a == b:
        raise ValueError(f"Compare needs two different classes, not {a!r} twice: choose another class B.")
    return names.index(a), names.index(b)


@dataclass
class Comparison:
    """The three overlays views 1 to 3 show (A, B, A vs B) and the nodes the comparison added to the scene."""

    overlays: list[ClassOverlay]
    added: list[ClassOverlay] = field(default_factory=list)

    @property
    def pair(self) -> tuple[str, str]:
        a, _, b = (self.overlays[2].labels.GetAttribute(CONTRAST) or "\t").partition("\t")
        return a, b

    def remove(self, scene) -> None:
        for overlay in self.added:
            overlay.remove(scene)
        self.added = []


def compare(scene, run: DiDARun, explanation: VolumeExplanation | None, a: str, b: str) -> Comparison:
    """Build the comparison of classes ``a`` and ``b`` for every explained B-scan of ``run`` (see the module)."""
    if explanation is None or not explanation.results:
        raise ValueError("Compare needs the run's results in this session: explain the volume (or a B-scan) first.")
    ka, kb = check_pair(explanation.class_names, a, b)
    have = {o.class_index: o for o in run.overlays}
    added = []
    overlays = []
    for k in (ka, kb):
        overlay = have.get(k)
        if overlay is None:  # not among the run's shown classes: drawn at the run's scale, as they are
            overlay = add_class_overlay(scene, run.volume, explanation.class_names[k], k, "DiDA compare")
            scale = explanation.scale()
            for i in explanation.indices:
                overlay.write(i, explanation.mixed(i, k, scale))
            added.append(overlay)
        overlays.append(overlay)
    name = contrast_name(explanation.class_names, ka, kb)
    contrast = add_class_overlay(scene, run.volume, name, -1, "DiDA")
    contrast.labels.SetAttribute(CONTRAST, f"{a}\t{b}")
    scale = contrast_scale(explanation, [(ka, kb)])  # one scale over the run's B-scans, as the CLI's contrast maps
    for i in explanation.indices:
        result = contrast_result(explanation.results[i], ka, kb)
        contrast.write(i, mixed_image(result, 0, explanation.weights, scale, explanation.bscan_shape))
    added.append(contrast)
    return Comparison([*overlays, contrast], added)
