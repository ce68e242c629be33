"""Synthetic OCT B-scans (phantoms) with known lesions: the demo model's training data and the tests' ground truth.

A phantom is built in three steps:

1. a mean-intensity map in the display (log) domain: vitreous, the retinal layers between the ILM and Bruch's
   membrane as soft-edged bands that follow a gently curved, tilted retina with a foveal pit, and a textured
   choroid with vessel lumens below;
2. the findings of one class, drawn into that map, with the lesion's pixels recorded in a boolean mask;
3. correlated, multiplicative speckle and a noise floor applied in the linear domain, then log compression back
   to display intensities in [0, 1].

Every random choice comes from the ``numpy.random.Generator`` passed in, so a seed fixes a phantom exactly.
Sizes are given for a 256 x 384 B-scan and scale with ``depth`` and ``width``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

CLASSES: tuple[str, ...] = ("normal", "drusen", "wet_amd", "macular_oedema", "geographic_atrophy")
CLASS_TITLES: dict[str, str] = {
    "normal": "Normal",
    "drusen": "Drusen (early AMD)",
    "wet_amd": "Wet AMD",
    "macular_oedema": "Macular oedema",
    "geographic_atrophy": "Geographic atrophy (dry AMD)",
}

# Layers from the ILM down to Bruch's membrane: name, base thickness (px at depth 256), mean display intensity,
# and how much of the layer the foveal pit removes (negative: the layer thickens at the fovea, as the ONL does).
# "srf" (sub-retinal fluid) and "sub_rpe" (drusen or PED content) are empty unless a finding fills them.
_LAYERS: tuple[tuple[str, float, float, float], ...] = (
    ("rnfl", 7.0, 0.74, 1.0),
    ("gcl", 9.0, 0.44, 0.95),
    ("ipl", 7.5, 0.55, 0.9),
    ("inl", 7.5, 0.30, 0.8),
    ("opl", 5.0, 0.54, 0.6),
    ("onl", 16.0, 0.21, -0.45),
    ("elm", 1.5, 0.46, 0.0),
    ("myoid", 3.0, 0.27, 0.0),
    ("ez", 3.0, 0.80, 0.0),
    ("os", 3.5, 0.40, -0.2),
    ("iz", 2.5, 0.63, 0.0),
    ("srf", 0.0, 0.05, 0.0),
    ("rpe", 6.0, 0.88, 0.0),
    ("sub_rpe", 0.0, 0.50, 0.0),
)
_INDEX = {name: i for i, (name, *_rest) in enumerate(_LAYERS)}
_VITREOUS = 0.02
_DYNAMIC_RANGE_DB = 36.0  # display intensity 1 is this many dB above the vitreous


@dataclass(frozen=True)
class Anatomy:
    """The healthy eye behind a phantom: geometry, layer thicknesses and brightness, before any finding."""

    depth: int
    width: int
    bm_depth: float  # Bruch's membrane under the fovea, px from the top
    curvature: float  # how much higher the retina sits at the edges than under the fovea, px
    tilt: float  # depth change from the left to the right edge, px
    fovea_x: float
    pit_depth: float  # 0 (no pit, a B-scan off the fovea) .. 1
    pit_width: float  # Gaussian sigma of the pit, px
    thickness_scale: float
    layer_jitter: tuple[float, ...]  # per-layer thickness factors
    nasal_side: int  # +1 or -1: where the RNFL thickens
    brightness: float  # added to every display intensity
    contrast: float
    looks: int  # frames averaged: fewer looks, coarser speckle
    noise_floor: float  # display level of the noise floor
    choroid_thickness: float
    attenuation: float  # display intensity lost per px below Bruch's membrane

    @property
    def scales(self) -> tuple[float, float]:
        """(axial, lateral) size factors against the 256 x 384 B-scan that the phantom's pixel sizes are set for."""
        return self.depth / 256.0, self.width / 384.0


def sample_anatomy(rng: np.random.Generator, depth: int = 256, width: int = 384) -> Anatomy:
    """A random healthy anatomy for a ``depth`` x ``width`` B-scan."""
    sz = depth / 256.0
    return Anatomy(
        depth=depth,
        width=width,
        bm_depth=depth * rng.uniform(0.56, 0.66),
        curvature=sz * rng.uniform(4.0, 28.0),
        tilt=sz * rng.uniform(-22.0, 22.0),
        fovea_x=width * (0.5 + rng.uniform(-0.12, 0.12)),
        pit_depth=rng.uniform(0.6, 0.9),
        pit_width=width * rng.uniform(0.055, 0.085),
        thickness_scale=rng.uniform(0.88, 1.15),
        layer_jitter=tuple(float(v) for v in rng.uniform(0.85, 1.15, len(_LAYERS))),
        nasal_side=int(rng.choice((-1, 1))),
        brightness=rng.uniform(-0.06, 0.06),
        contrast=rng.uniform(0.9, 1.1),
        looks=int(rng.integers(2, 7)),
        noise_floor=rng.uniform(0.10, 0.18),
        choroid_thickness=sz * rng.uniform(45.0, 70.0),
        attenuation=rng.uniform(0.0025, 0.0045) / sz,
    )


# -- small numpy helpers (no scipy: DiDALib stays light) ----------------------------------------------------------

def _gauss_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3.0 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def _blur_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    if sigma <= 0:
        return a
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    a = np.moveaxis(a, axis, 0)
    p = np.pad(a, [(r, r)] + [(0, 0)] * (a.ndim - 1), mode="reflect")
    n = a.shape[0]
    out = k[0] * p[:n]
    for i in range(1, len(k)):
        out += k[i] * p[i : i + n]
    return np.moveaxis(out, 0, axis)


def _blur(a: np.ndarray, sigma_z: float, sigma_x: float) -> np.ndarray:
    return _blur_axis(_blur_axis(a, sigma_z, 0), sigma_x, 1)


def _smooth_curve(rng: np.random.Generator, n: int, sigma: float, amplitude: float) -> np.ndarray:
    """A slowly varying random curve of length n with standard deviation about ``amplitude``."""
    c = _blur_axis(rng.standard_normal(n), sigma, 0)
    s = c.std()
    return c * (amplitude / s) if s > 0 else c


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _dome(x: np.ndarray, centre: float, half_width: float, height: float, power: float = 0.7) -> np.ndarray:
    u = (x - centre) / half_width
    return height * np.clip(1.0 - u * u, 0.0, None) ** power


def _ellipse(zz, xx, cz, cx, rz, rx, softness: float = 1.0) -> np.ndarray:
    """Ellipse coverage in [0, 1], anti-aliased over about ``softness`` pixels at its edge."""
    r = np.sqrt(((zz - cz) / rz) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - r) * min(rz, rx) / softness + 0.5, 0.0, 1.0)


# -- the phantom ---------------------------------------------------------------------------------------------------

@dataclass
class _Scene:
    """A B-scan under construction: per-column layer thicknesses and values, then pixel maps."""

    anatomy: Anatomy
    x: np.ndarray  # (W,) column centres
    bm: np.ndarray  # (W,) Bruch's membrane depth
    thickness: np.ndarray  # (L, W)
    values: np.ndarray  # (L, W)
    choroid_boost: np.ndarray  # (W,) hyper-transmission (geographic atrophy)
    mask: np.ndarray  # (D, W) bool

    def boundaries(self) -> np.ndarray:
        """(L + 1, W) depths: the ILM first, Bruch's membrane last."""
        below = np.cumsum(self.thickness[::-1], axis=0)[::-1]
        return np.concatenate([self.bm[None] - below, self.bm[None]], axis=0)


def _healthy(anat: Anatomy, rng: np.random.Generator) -> _Scene:
    d, w = anat.depth, anat.width
    sz, sx = anat.scales
    x = np.arange(w) + 0.5
    u = (x - w / 2) / (w / 2)
    bm = (anat.bm_depth - anat.curvature * u * u + 0.5 * anat.tilt * u
          + _smooth_curve(rng, w, 40.0 * sx, 1.2 * sz))
    pit = anat.pit_depth * np.exp(-0.5 * ((x - anat.fovea_x) / anat.pit_width) ** 2)
    # The RNFL thickens towards the optic disc (the nasal side).
    nasal = 0.55 + 0.9 * _sigmoid(anat.nasal_side * (x - anat.fovea_x) / (0.12 * w))
    thickness = np.zeros((len(_LAYERS), w))
    values = np.zeros((len(_LAYERS), w))
    for i, (name, t, v, pit_share) in enumerate(_LAYERS):
        t_i = t * sz * anat.thickness_scale * anat.layer_jitter[i]
        t_i = t_i * (1.0 - pit_share * pit)
        if name == "rnfl":
            t_i = t_i * nasal
        thickness[i] = np.maximum(t_i, 0.0)
        values[i] = v + rng.uniform(-0.03, 0.03)
    thickness[_INDEX["onl"]] += _smooth_curve(rng, w, 30.0 * sx, 0.8 * sz)
    thickness = np.maximum(thickness, 0.0)
    return _Scene(anat, x, bm, thickness, values, np.zeros(w), np.zeros((d, w), dtype=bool))


def _centre(rng: np.random.Generator, anat: Anatomy, spread: float) -> float:
    """A lesion centre near the fovea, but kept off the edges."""
    w = anat.width
    return float(np.clip(anat.fovea_x + rng.uniform(-spread, spread) * w, 0.15 * w, 0.85 * w))


def _add_drusen(scene: _Scene, rng: np.random.Generator) -> list:
    anat = scene.anatomy
    sz, sx = anat.scales
    elevation = np.zeros_like(scene.x)
    for _ in range(int(rng.integers(2, 6))):
        c = _centre(rng, anat, 0.28)
        elevation = np.maximum(
            elevation, _dome(scene.x, c, sx * rng.uniform(8.0, 17.0), sz * rng.uniform(5.0, 11.0), 0.8))
    scene.thickness[_INDEX["sub_rpe"]] += elevation
    scene.values[_INDEX["sub_rpe"]] = rng.uniform(0.46, 0.56)
    # The ONL yields over each druse, so the inner retina stays almost where it was.
    scene.thickness[_INDEX["onl"]] = np.maximum(scene.thickness[_INDEX["onl"]] - 0.7 * elevation, 2.0 * sz)
    return [("sub_rpe", elevation > 0.75 * sz, ("rpe", "sub_rpe"))]


def _add_wet_amd(scene: _Scene, rng: np.random.Generator) -> list:
    anat = scene.anatomy
    sz, sx = anat.scales
    c = _centre(rng, anat, 0.18)
    half = sx * rng.uniform(28.0, 55.0)
    ped = _dome(scene.x, c, half, sz * rng.uniform(12.0, 28.0), 0.6)
    fluid = _dome(scene.x, c + rng.uniform(-0.3, 0.3) * half, half * rng.uniform(1.2, 1.9),
                  sz * rng.uniform(7.0, 18.0), 0.9)
    scene.thickness[_INDEX["sub_rpe"]] += ped
    scene.values[_INDEX["sub_rpe"]] = rng.uniform(0.10, 0.32)  # serous (dark) to fibrovascular (grey)
    scene.thickness[_INDEX["srf"]] += fluid
    scene.values[_INDEX["srf"]] = rng.uniform(0.03, 0.08)
    return [("sub_rpe", ped > 0.75 * sz, ("rpe", "sub_rpe")), ("srf", fluid > 0.75 * sz, ("srf",))]


def _add_oedema(scene: _Scene, rng: np.random.Generator) -> list:
    anat = scene.anatomy
    sz, sx = anat.scales
    c = _centre(rng, anat, 0.12)
    half = sx * rng.uniform(35.0, 65.0)
    swell = sz * rng.uniform(20.0, 40.0) * np.exp(-0.5 * ((scene.x - c) / (0.55 * half)) ** 2)
    scene.thickness[_INDEX["inl"]] += 0.45 * swell
    scene.thickness[_INDEX["onl"]] += 0.55 * swell
    cysts = []
    for _ in range(int(rng.integers(3, 9))):
        cx = float(np.clip(c + rng.uniform(-0.8, 0.8) * half, 0.05 * anat.width, 0.95 * anat.width))
        layer = "inl" if rng.random() < 0.4 else "onl"
        cysts.append((layer, cx, rng.uniform(0.2, 0.8), sx * rng.uniform(5.0, 14.0), rng.uniform(0.35, 0.48)))
    # Macular oedema is the swollen retina itself, not only its cysts: the mask spans ILM to Bruch's membrane
    # wherever the thickening exceeds a quarter of its peak, plus every cyst.
    return [("retina", swell > 0.25 * swell.max()), ("cysts", cysts)]


def _add_atrophy(scene: _Scene, rng: np.random.Generator) -> list:
    anat = scene.anatomy
    _, sx = anat.scales
    c = _centre(rng, anat, 0.25)
    half = sx * rng.uniform(20.0, 50.0)
    a = _sigmoid((half - np.abs(scene.x - c)) / (3.5 * sx))  # 1 inside the atrophic segment, soft edges
    for name in ("elm", "myoid", "ez", "os", "iz"):
        scene.thickness[_INDEX[name]] *= 1.0 - a
    scene.thickness[_INDEX["onl"]] *= 1.0 - 0.55 * a  # the outer retina collapses onto Bruch's membrane
    scene.thickness[_INDEX["rpe"]] *= 1.0 - 0.6 * a
    scene.values[_INDEX["rpe"]] = scene.values[_INDEX["rpe"]] * (1.0 - a) + 0.30 * a
    scene.choroid_boost = a * rng.uniform(0.22, 0.32)
    return [("atrophy", a > 0.5)]


_FINDINGS = {
    "drusen": _add_drusen,
    "wet_amd": _add_wet_amd,
    "macular_oedema": _add_oedema,
    "geographic_atrophy": _add_atrophy,
}


def _intensity(scene: _Scene, rng: np.random.Generator, findings: list) -> np.ndarray:
    """The mean display-intensity map of a scene (no speckle), filling ``scene.mask`` with the findings."""
    anat = scene.anatomy
    d, w = anat.depth, anat.width
    sz, sx = anat.scales
    zz = np.arange(d)[:, None] + 0.5
    xx = scene.x[None, :]
    b = scene.boundaries()
    edge = 0.6 * sz  # soft layer edges: about one pixel wide

    # Choroid and sclera below Bruch's membrane, in the membrane's own coordinate (so vessels follow its curve).
    below = zz - scene.bm[None, :]
    stroma = 0.54 + 0.05 * _blur(rng.standard_normal((d, w)), 2.5 * sz, 4.0 * sx)
    choroid = np.where(below < 4.0 * sz, 0.66, stroma)
    for _ in range(int(rng.integers(14, 24))):
        depth_frac = rng.uniform(0.15, 0.9)
        cx = rng.uniform(0, w)
        cz = scene.bm[min(int(cx), w - 1)] + depth_frac * anat.choroid_thickness
        rz = sz * (2.0 + 8.0 * depth_frac) * rng.uniform(0.7, 1.2)
        rx = rz * rng.uniform(1.3, 2.6) * sx / sz
        choroid = choroid - rng.uniform(0.12, 0.22) * _ellipse(zz, xx, cz, cx, rz, rx, softness=2.5 * sz)
    sclera = _sigmoid((below - anat.choroid_thickness) / (4.0 * sz))
    choroid = choroid * (1.0 - sclera) + 0.36 * sclera
    # Light lost with depth; atrophy lets more through (hyper-transmission), so the choroid there is brighter.
    boost = scene.choroid_boost[None, :]
    choroid = choroid - np.clip(below, 0, None) * anat.attenuation * (1.0 - 2.0 * boost) + boost * (
        1.0 - 0.5 * _sigmoid((below - 1.3 * anat.choroid_thickness) / (6.0 * sz)))

    m = np.full((d, w), _VITREOUS)
    prev = _VITREOUS
    for i in range(len(_LAYERS)):
        v = scene.values[i][None, :]
        m = m + (v - prev) * _sigmoid((zz - b[i][None, :]) / edge)
        prev = v
    m = m + (choroid - prev) * _sigmoid((zz - b[-1][None, :]) / edge)

    for finding in findings:
        kind = finding[0]
        if kind in ("sub_rpe", "srf"):
            _, columns, layers = finding
            top = b[_INDEX[layers[0]]]
            bottom = b[_INDEX[layers[-1]] + 1]
            scene.mask |= columns[None, :] & (zz >= top[None, :] - 1.0) & (zz < bottom[None, :] + 1.0)
        elif kind == "retina":
            columns = finding[1]
            scene.mask |= columns[None, :] & (zz >= b[0][None, :] - 1.0) & (zz < scene.bm[None, :] + 1.0)
        elif kind == "cysts":
            for layer, cx, pos, rx, fill in finding[1]:
                col = min(int(cx), w - 1)
                top, bottom = b[_INDEX[layer], col], b[_INDEX[layer] + 1, col]
                rz = max(2.0 * sz, fill * (bottom - top))
                cz = top + rz + pos * max(bottom - top - 2.0 * rz, 0.0)
                cover = _ellipse(zz, xx, cz, cx, rz, rx)
                rim = _ellipse(zz, xx, cz, cx, rz + 1.2 * sz, rx + 1.2 * sx) - cover
                m = m * (1.0 - cover) + 0.04 * cover + 0.10 * rim  # dark cyst, faint bright wall
                scene.mask |= cover > 0.5
        elif kind == "atrophy":
            columns = finding[1]
            # Complete RPE and outer retinal atrophy: the degenerate outer retina (from the OPL, which subsides)
            # down through the hyper-transmission band below the lost RPE.
            top = b[_INDEX["opl"]]
            bottom = scene.bm + 1.1 * anat.choroid_thickness
            scene.mask |= columns[None, :] & (zz >= top[None, :]) & (zz < bottom[None, :])

    # Retinal vessels: a bright lumen in the inner retina and a shadow on everything below it.
    for _ in range(int(rng.integers(0, 4))):
        cx = rng.uniform(0.05, 0.95) * w
        if abs(cx - anat.fovea_x) < 2.0 * anat.pit_width:
            continue
        col = int(cx)
        cz = 0.5 * (b[_INDEX["gcl"], col] + b[_INDEX["ipl"], col])
        r = sz * rng.uniform(2.0, 3.5)
        m = m + 0.25 * _ellipse(zz, xx, cz, cx, r, r * sx / sz)
        shadow = np.exp(-0.5 * ((xx - cx) / (1.1 * r * sx / sz)) ** 2) * _sigmoid((zz - cz - r) / sz)
        m = m - rng.uniform(0.12, 0.22) * shadow
    return m


def _speckle(mean: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Display intensities with correlated multiplicative speckle (averaged over ``looks`` frames) and a noise
    floor, log-compressed into [0, 1]."""
    d, w = mean.shape
    sz, sx = anat.scales
    dr = _DYNAMIC_RANGE_DB
    linear = 10.0 ** (np.clip(mean, 0.0, 1.2) * dr / 10.0)
    speckle = np.zeros((d, w))
    for _ in range(anat.looks):
        # Blurring complex Gaussian noise gives speckle grains a few pixels across, as an OCT's resolution does.
        field = _blur(rng.standard_normal((d, w)) + 1j * rng.standard_normal((d, w)), 0.7 * sz, 1.1 * sx)
        speckle += field.real ** 2 + field.imag ** 2
    speckle /= speckle.mean()
    floor = 10.0 ** (anat.noise_floor * dr / 10.0) * rng.exponential(1.0, (d, w))
    display = 10.0 * np.log10(linear * speckle + floor) / dr
    display = (display - anat.noise_floor) / (1.0 - anat.noise_floor)
    display = display * anat.contrast + anat.brightness
    return np.clip(display, 0.0, 1.0).astype(np.float32)


def render(label: str, anatomy: Anatomy, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A B-scan of ``anatomy`` with the findings of ``label``: (image float32 in [0, 1], lesion mask bool)."""
    image, mask, _ = render_layers(label, anatomy, rng)
    return image, mask


def render_layers(label: str, anatomy: Anatomy, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``render``, and the drawn layer boundaries per column as row coordinates (the ground truth of the audit's
    retina band): ``ilm``, ``rpe_top``, ``rpe_bottom`` (the RPE layer, lifted by drusen or a PED) and ``bruch``
    (Bruch's membrane)."""
    if label not in CLASSES:
        raise ValueError(f"label {label!r} is not one of {CLASSES}")
    scene = _healthy(anatomy, rng)
    findings = _FINDINGS[label](scene, rng) if label in _FINDINGS else []
    mean = _intensity(scene, rng, findings)
    b = scene.boundaries()
    layers = {"ilm": b[0], "rpe_top": b[_INDEX["rpe"]], "rpe_bottom": b[_INDEX["rpe"] + 1], "bruch": b[-1]}
    return _speckle(mean, anatomy, rng), scene.mask.copy(), layers


def make_bscan(label: str, rng: np.random.Generator, depth: int = 256, width: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """One random phantom B-scan of class ``label``: (image (depth, width) float32 in [0, 1], lesion mask bool).

    The mask marks the finding's pixels (empty for ``normal``)."""
    if depth < 64 or width < 64:
        raise ValueError(f"a phantom needs at least 64 x 64 pixels; got {depth} x {width}")
    return render(label, sample_anatomy(rng, depth, width), rng)


def make_dataset(n_per_class: int, seed: int, depth: int = 256, width: int = 384
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_per_class`` phantoms of every class, interleaved by class: images (N, depth, width) float32, labels (N,)
    int64 indices into ``CLASSES``, lesion masks (N, depth, width) bool. The same seed gives the same set."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class {n_per_class} must be >= 1")
    rng = np.random.default_rng(seed)
    n = n_per_class * len(CLASSES)
    images = np.empty((n, depth, width), dtype=np.float32)
    masks = np.empty((n, depth, width), dtype=bool)
    labels = np.tile(np.arange(len(CLASSES), dtype=np.int64), n_per_class)
    for i, k in enumerate(labels):
        images[i], masks[i] = make_bscan(CLASSES[k], rng, depth, width)
    return images, labels, masks


def make_volume(n_bscans: int = 9, seed: int = 0, depth: int = 256, width: int = 384,
                labels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A demo volume of one eye: B-scans top to bottom through the macula, normal at the periphery and lesions
    of several classes near the centre, where the foveal pit is deepest. ``labels`` (one class per B-scan) puts
    chosen findings in chosen B-scans instead, e.g. one lesion class spanning known B-scans.

    Returns the B-scans (n, depth, width) float32, their class names and their lesion masks (n, depth, width)."""
    if n_bscans < 1:
        raise ValueError(f"n_bscans {n_bscans} must be >= 1")
    rng = np.random.default_rng(seed)
    base = sample_anatomy(rng, depth, width)
    lesions = CLASSES[1:]
    offsets = np.linspace(-1.0, 1.0, n_bscans) if n_bscans > 1 else np.zeros(1)
    central = [i for i in np.argsort(np.abs(offsets), kind="stable") if abs(offsets[i]) <= 0.65]
    if labels is None:
        labels = ["normal"] * n_bscans
        for rank, i in enumerate(sorted(central)):
            labels[i] = lesions[rank % len(lesions)]
    elif len(labels) != n_bscans or any(lbl not in CLASSES for lbl in labels):
        raise ValueError(f"labels must name one of {CLASSES} for each of the {n_bscans} B-scans, got {labels!r}")
    labels = list(labels)
    images = np.empty((n_bscans, depth, width), dtype=np.float32)
    masks = np.empty((n_bscans, depth, width), dtype=bool)
    for i, t in enumerate(offsets):
        # Neighbouring B-scans share the eye; the pit fades away from the fovea and the geometry drifts a little.
        anat = replace(
            base,
            pit_depth=base.pit_depth * float(np.exp(-((t / 0.35) ** 2))),
            bm_depth=base.bm_depth + 6.0 * (depth / 256.0) * t * t,
            tilt=base.tilt + rng.uniform(-3.0, 3.0),
            layer_jitter=tuple(float(v) * rng.uniform(0.97, 1.03) for v in base.layer_jitter),
        )
        images[i], masks[i] = render(labels[i], anat, rng)
    return images, labels, masks
