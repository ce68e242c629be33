"""The OCT volume type: B-scans as display intensities in [0, 1], with their physical spacing, and SimpleITK conversion.

Array layout: ``bscans[k, j, i]`` = B-scan ``k``, depth row ``j`` (row 0 = vitreous, top), A-scan ``i``.
``to_sitk()`` maps it to an image of size (width, depth, n_bscans), spacing (lateral, axial, B-scan distance),
origin (0, 0, 0) and the identity direction (LPS). In Slicer each B-scan is then an axial slice, shown upright and
unflipped, and the slice slider walks the B-scans in file order.

Single-B-scan volumes and files that do not give the B-scan distance get a placeholder distance
(:func:`placeholder_distance`): the caller's ``bscan_distance`` when given, else the lateral spacing, so that a
voxel is never flat; ``spacing_placeholder`` then says that the third spacing was not read from the file.

Circle and radial scans are stacks of B-scans that are not parallel slices (``geometry`` ``"circle"`` or
``"radial"``, :func:`bscan_stack`): each B-scan is an ordinary image for a classifier, with its true A-scan
spacing along its circle or line (``bscan_spacing``), but the stack is no 3-D volume. Their third spacing is always
a placeholder, and ``to_sitk`` writes the geometry into the image's metadata (``DiDA_scan_geometry``), so a saved
stack says what it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SPACING_UNITS = ("mm", "pixel")
#: how the B-scans lie: parallel slices of a volume (or one line), around circles, or as lines through one centre
GEOMETRIES = ("cartesian", "circle", "radial")
GEOMETRY_KEY = "DiDA_scan_geometry"  # the SimpleITK / NRRD metadata key that carries ``geometry``
# ITU-R BT.601 luma weights: the same as Pillow's convert("L"), so colour exports match what viewers show as grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class OCTReadError(ValueError):
    """A file or folder that cannot be read as OCT B-scans.

    The message names the file, what was found and what was expected.
    """


@dataclass
class Fundus:
    """The scan's fundus image (SLO/NIR localizer): grey float32 in [0, 1], ``spacing`` (x, y) in mm per pixel, in
    the coordinates of the B-scan positions (``metadata["bscan_positions_mm"]``: start and end x, y of each B-scan)."""

    image: np.ndarray
    spacing: tuple[float, float]

    def __post_init__(self) -> None:
        img = np.asarray(self.image, dtype=np.float32)
        if img.ndim != 2 or min(img.shape) < 1:
            raise ValueError(f"fundus image has shape {img.shape}: expected a 2-D grey image")
        if not all(math.isfinite(float(v)) and float(v) > 0 for v in self.spacing) or len(self.spacing) != 2:
            raise ValueError(f"fundus spacing {self.spacing!r} must be two positive numbers (x, y mm per pixel)")
        self.image = np.ascontiguousarray(np.clip(img, 0.0, 1.0))
        self.spacing = (float(self.spacing[0]), float(self.spacing[1]))


@dataclass
class OCTVolume:
    """B-scans (n_bscans, depth, width) as float32 in [0, 1] with their spacing in mm (or pixels) and provenance."""

    bscans: np.ndarray
    spacing: tuple[float, float, float]  # (lateral = between A-scans, axial = depth pixel, between B-scans)
    laterality: str | None = None
    source: str = ""
    format: str = ""
    spacing_placeholder: bool = False
    spacing_unit: str = "mm"
    metadata: dict = field(default_factory=dict)
    geometry: str = "cartesian"
    bscan_spacing: tuple[float, ...] | None = None  # non-Cartesian: each B-scan's A-scan spacing along its path
    fundus: Fundus | None = None  # the SLO/NIR localizer where the file has one (Heyex VOL and XML)

    def __post_init__(self) -> None:
        what = f"OCTVolume({self.source!r})" if self.source else "OCTVolume"
        arr = np.asarray(self.bscans)
        if arr.ndim != 3 or min(arr.shape) < 1:
            raise ValueError(
                f"{what}: bscans has shape {arr.shape}: expected a non-empty (n_bscans, depth, width) array "
                "(a single 2-D B-scan needs a leading axis: bscan[None])"
            )
        if arr.dtype != np.float32:
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise ValueError(f"{what}: bscans has dtype {arr.dtype}: expected float32 intensities in [0, 1]")
            arr = arr.astype(np.float32)
        # C order keeps sitk.GetImageFromArray and torch.from_numpy cheap and predictable.
        self.bscans = np.ascontiguousarray(arr)
        lo, hi = float(self.bscans.min()), float(self.bscans.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{what}: bscans has non-finite values (NaN or inf): repair them before building a volume")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{what}: bscans range [{lo:g}, {hi:g}] is outside [0, 1]: scale to display intensities first "
                "(see DiDALib.io.volume.to_unit_range)"
            )
        try:
            spacing = tuple(float(s) for s in self.spacing)
        except (TypeError, ValueError):
            raise ValueError(
                f"{what}: spacing {self.spacing!r} must be three numbers (lateral, axial, distance)"
            ) from None
        if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(
                f"{what}: spacing {self.spacing!r} must be three positive finite numbers (lateral, axial, distance)"
            )
        self.spacing = spacing  # type: ignore[assignment]
        if self.spacing_unit not in SPACING_UNITS:
            raise ValueError(f"{what}: spacing_unit {self.spacing_unit!r} must be one of {SPACING_UNITS}")
        if self.laterality not in (None, "OD", "OS"):
            raise ValueError(f"{what}: laterality {self.laterality!r} must be 'OD', 'OS' or None")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"{what}: geometry {self.geometry!r} must be one of {GEOMETRIES}")
        if self.geometry != "cartesian":
            self.spacing_placeholder = True  # B-scans around a circle or a centre have no distance between them
        if self.bscan_spacing is not None:
            values = tuple(float(v) for v in self.bscan_spacing)
            if len(values) != self.n_bscans or not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"{what}: bscan_spacing needs one positive A-scan spacing per B-scan "
                                 f"({self.n_bscans}), got {self.bscan_spacing!r}")
            self.bscan_spacing = values

    @property
    def cartesian(self) -> bool:
        """True for parallel B-scans (a volume or a line scan); False for circle and radial scans."""
        return self.geometry == "cartesian"

    @property
    def n_bscans(self) -> int:
        """Number of B-scans (axis 0)."""
        return int(self.bscans.shape[0])

    @property
    def depth(self) -> int:
        """Rows per B-scan (axial samples, axis 1)."""
        return int(self.bscans.shape[1])

    @property
    def width(self) -> int:
        """A-scans per B-scan (axis 2)."""
        return int(self.bscans.shape[2])

    def describe(self) -> str:
        """One line for logs and the CLI: size, spacing and where it came from."""
        lat, ax, dist = self.spacing
        unit = self.spacing_unit
        dist_text = f"{dist:.6g}" + (" (placeholder)" if self.spacing_placeholder else "")
        eye = f", {self.laterality}" if self.laterality else ""
        if not self.cartesian:
            along = "circle" if self.geometry == "circle" else "line"
            return (f"{self.n_bscans} {self.geometry} B-scan(s) x {self.depth} x {self.width} px, A-scan spacing "
                    f"along the {along} {lat:.6g} x axial {ax:.6g} {unit}; not a 3-D volume: each B-scan is its own "
                    f"image [{self.format or 'unknown format'}{eye}]")
        return (
            f"{self.n_bscans} B-scan(s) x {self.depth} x {self.width} px, spacing lateral {lat:.6g} x axial {ax:.6g} "
            f"x B-scan distance {dist_text} {unit} [{self.format or 'unknown format'}{eye}]"
        )

    def to_sitk(self):
        """A SimpleITK float32 image: size (width, depth, n_bscans), spacing (lateral, axial, distance), LPS."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.bscans, isVector=False)
        image.SetSpacing(tuple(float(s) for s in self.spacing))
        image.SetOrigin((0.0, 0.0, 0.0))
        image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        if not self.cartesian:
            image.SetMetaData(GEOMETRY_KEY, self.geometry)
            image.SetMetaData("DiDA_note", geometry_note(self.geometry))
        return image

    @classmethod
    def from_sitk(
        cls, image, source: str = "", format: str = "", *, bscan_distance: float | None = None
    ) -> OCTVolume:
        """The inverse of ``to_sitk`` for any image in that convention: x = A-scans, y = depth, z = B-scans.

        A 2-D image is one B-scan; a single B-scan gets the placeholder B-scan distance. Colour pixels become
        grey (luminance); intensities are scaled to [0, 1] by :func:`to_unit_range`. The direction is not
        applied (the voxel order is taken as stored) but is recorded in ``metadata`` when not the identity.
        """
        import SimpleITK as sitk

        where = source or "the SimpleITK image"
        if not isinstance(image, sitk.Image):
            raise TypeError(f"from_sitk needs a SimpleITK.Image, got {type(image).__name__}")
        dim = image.GetDimension()
        size = tuple(image.GetSize())
        components = image.GetNumberOfComponentsPerPixel()
        arr = sitk.GetArrayViewFromImage(image)
        if components > 1:
            arr = to_grey(arr, components, where)
        if dim == 4:
            if size[3] != 1:
                raise OCTReadError(
                    f"{where}: a 4-D image of size {size} (x, y, z, t) cannot be read as B-scans: expected a 3-D "
                    "volume (x = A-scans, y = depth, z = B-scans) or a 2-D B-scan; extract one time point first"
                )
            arr = arr[0]
            dim = 3
        if dim not in (2, 3):
            raise OCTReadError(f"{where}: a {dim}-D image cannot be read as B-scans: expected 2-D or 3-D")
        arr = arr[None] if dim == 2 else arr
        spacing = tuple(float(s) for s in image.GetSpacing())[:dim]
        bscans, intensity = to_unit_range(arr, where)
        metadata: dict = {"intensity": intensity, "spacing_source": "image header (SimpleITK spacing)"}
        if components > 1:
            metadata["colour"] = f"{components} components reduced to grey ({grey_rule(components)})"
        direction = tuple(float(v) for v in image.GetDirection())
        identity = tuple(float(v) for v in np.eye(dim).ravel())
        if not np.allclose(direction, identity, atol=1e-6):
            metadata["direction"] = list(direction[: dim * dim])
            metadata["note"] = (
                "the file's direction matrix is not the identity; its voxel order was kept as stored "
                "(x = A-scans, y = depth, z = B-scans)"
            )
        origin = tuple(float(v) for v in image.GetOrigin())[:dim]
        if any(abs(v) > 0 for v in origin):
            metadata["origin"] = list(origin)
        lateral, axial = spacing[0], spacing[1]
        distance = spacing[2] if dim == 3 else None
        geometry = image.GetMetaData(GEOMETRY_KEY) if image.HasMetaDataKey(GEOMETRY_KEY) else "cartesian"
        if geometry not in GEOMETRIES:
            raise OCTReadError(f"{where}: its {GEOMETRY_KEY} is {geometry!r}: expected one of {GEOMETRIES}")
        placeholder = bscans.shape[0] == 1  # one B-scan has no neighbour: a z spacing there is not a distance
        if placeholder:
            why = "a 2-D image holds one B-scan" if dim == 2 else "a single B-scan"
            distance = placeholder_distance(metadata, lateral, bscan_distance, why, file_distance=distance)
        elif geometry != "cartesian":
            metadata["spacing_note"] = geometry_note(geometry)
        return cls(
            bscans=bscans,
            spacing=(lateral, axial, float(distance)),
            source=source,
            format=format,
            spacing_placeholder=placeholder,
            spacing_unit="mm",
            metadata=metadata,
            geometry=geometry,
        )


def geometry_note(geometry: str) -> str:
    """One sentence for users and files: what a non-Cartesian stack of B-scans is and is not."""
    path = "around a circle" if geometry == "circle" else "along lines through one centre"
    return (f"a {geometry} scan: a stack of independent B-scans {path}, not a 3-D volume; each B-scan has its true "
            "A-scan spacing, and the third spacing is a display placeholder, not a distance")


def bscan_stack(source: str, fmt: str, bscans: np.ndarray, geometry: str, bscan_spacing, axial: float, *,
                metadata: dict, unit: str = "mm", laterality: str | None = None,
                bscan_distance: float | None = None) -> OCTVolume:
    """A circle or radial scan as a stack of B-scans: each with its A-scan spacing along its circle or line
    (``bscan_spacing``, mm), the volume's lateral spacing theirs (their mean where they differ, as for circles of
    several radii, and said so), and a placeholder third spacing."""
    if geometry not in GEOMETRIES[1:]:
        raise ValueError(f"bscan_stack is for circle and radial scans, not {geometry!r}")
    spacing = [float(v) for v in bscan_spacing] if bscan_spacing is not None else None
    if unit == "pixel" or not spacing:
        lateral, axial, spacing = 1.0, 1.0, None
    else:
        lateral = float(np.mean(spacing))
        if max(spacing) - min(spacing) > 0.01 * lateral:
            metadata["lateral_note"] = ("the B-scans' A-scan spacings differ (see bscan_spacing): the volume's lateral "
                                        "spacing is their mean")
    metadata["spacing_note"] = geometry_note(geometry)
    distance = check_bscan_distance(bscan_distance) if bscan_distance is not None else lateral
    return OCTVolume(bscans=bscans, spacing=(lateral, float(axial), distance), laterality=laterality, source=source,
                     format=fmt, spacing_placeholder=True, spacing_unit=unit, metadata=metadata, geometry=geometry,
                     bscan_spacing=tuple(spacing) if spacing else None)


def placeholder_distance(
    metadata: dict, lateral: float, bscan_distance: float | None, why: str, file_distance: float | None = None
) -> float:
    """The B-scan distance used where the file gives none: ``bscan_distance`` when given, else ``lateral``.

    The lateral spacing gives the voxels a thickness equal to their width, so that a single B-scan renders as a
    thin but not flat slab in Slicer; it is a placeholder, never a measurement. ``metadata`` gets a
    ``spacing_note`` saying where it came from (``why`` the file has none), and ``file_bscan_distance`` when the
    file did give one that cannot serve (one B-scan has no neighbour).
    """
    if file_distance is not None:
        metadata["file_bscan_distance"] = float(file_distance)
    said = f"B-scan distance not in the file ({why})"
    if bscan_distance is not None:
        value = check_bscan_distance(bscan_distance)
        metadata["spacing_note"] = f"{said}: the caller's bscan_distance {value:g} is used"
        return value
    metadata["spacing_note"] = f"{said}: placeholder = the lateral spacing {float(lateral):g}"
    return float(lateral)


def check_bscan_distance(bscan_distance: float) -> float:
    """A caller's B-scan distance as a positive finite float, or a ValueError saying what is wrong."""
    try:
        value = float(bscan_distance)
    except (TypeError, ValueError):
        raise ValueError(f"bscan_distance {bscan_distance!r} must be a number (mm between B-scans)") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"bscan_distance {bscan_distance!r} must be a positive finite number (mm between B-scans)")
    return value


def grey_rule(components: int) -> str:
    """How :func:`to_grey` reduces ``components`` channels, in words (for metadata)."""
    if components == 2:
        return "grey + alpha: the grey channel"
    return "luminance 0.299 R + 0.587 G + 0.114 B" + (" (alpha dropped)" if components == 4 else "")


def to_grey(arr: np.ndarray, components: int, where: str) -> np.ndarray:
    """Reduce a trailing channel axis to grey: RGB(A) by luminance, grey+alpha by its grey channel.

    Integer inputs stay integer (rounded) so that the dtype-based scaling of :func:`to_unit_range` still applies.
    """
    if arr.shape[-1] != components:
        raise OCTReadError(f"{where}: expected {components} channels on the last axis, found shape {arr.shape}")
    if components == 2:
        return np.ascontiguousarray(arr[..., 0])
    if components not in (3, 4):
        raise OCTReadError(
            f"{where}: pixels with {components} components cannot be read as grey B-scans: expected grey, "
            "grey + alpha, RGB or RGBA"
        )
    rgb = arr[..., :3]
    grey = rgb[..., 0] * np.float32(LUMA_WEIGHTS[0])
    grey = grey + rgb[..., 1] * np.float32(LUMA_WEIGHTS[1])
    grey = grey + rgb[..., 2] * np.float32(LUMA_WEIGHTS[2])
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        info = np.iinfo(arr.dtype) if arr.dtype != bool else None
        grey = np.rint(grey)
        if info is not None:
            grey = np.clip(grey, info.min, info.max)
        return grey.astype(arr.dtype)
    return grey


def to_unit_range(arr: np.ndarray, where: str, *, bits_stored: int | None = None) -> tuple[np.ndarray, str]:
    """Display intensities in [0, 1] as float32, and a sentence saying how they were obtained.

    Unsigned 8/16-bit (and non-negative signed 8/16-bit) integers are divided by their dtype's maximum (or by
    ``2**bits_stored - 1`` where a DICOM file says fewer bits are used); floats already in [0, 1] are kept;
    anything else (wider integers, negative values, floats outside [0, 1]) is min-max scaled over the whole volume.
    NaN or inf pixels raise :class:`OCTReadError`: silently zeroing them would hide a broken export.
    """
    convert, how = unit_range_rule(arr, where, bits_stored=bits_stored)
    return convert(np.asarray(arr)), how


def unit_range_rule(arr: np.ndarray, where: str, *, bits_stored: int | None = None,
                    bounds: tuple[float, float] | None = None) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """``to_unit_range``'s rule for a whole volume, decided from its dtype, minimum and maximum, as a function
    that converts any part of it (a few B-scans at a time give the same numbers as the whole) and its sentence.
    ``bounds``: the volume's minimum and maximum where the caller has them already (NaN where it holds one)."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return (lambda a: a.astype(np.float32)), "boolean pixels: False = 0, True = 1"
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise OCTReadError(f"{where}: pixels of type {arr.dtype} cannot be read as intensities: expected real numbers")
    if arr.size == 0:
        raise OCTReadError(f"{where}: the image is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = map(float, bounds or (arr.min(), arr.max()))  # NaN or inf anywhere shows in these two
        if not (np.isfinite(lo) and np.isfinite(hi)):
            n_nan = int(np.isnan(arr).sum())
            n_inf = int(np.isinf(arr).sum())
            raise OCTReadError(
                f"{where}: {n_nan} NaN and {n_inf} infinite pixel(s) in a float image: expected finite intensities; "
                "repair the export (e.g. replace them with 0 in the source program) and load it again"
            )
        if lo >= 0.0 and hi <= 1.0:
            return (lambda a: a.astype(np.float32)), f"{arr.dtype} kept (already within [0, 1])"
        how = f"{arr.dtype} in [{lo:g}, {hi:g}] min-max scaled over the volume to [0, 1]"
        return (lambda a: _min_max(a, lo, hi)), how
    info = np.iinfo(arr.dtype)
    lo, hi = map(int, bounds or (arr.min(), arr.max()))
    if arr.dtype.itemsize <= 2 and lo >= 0:
        maximum = info.max
        if bits_stored is not None and 0 < bits_stored < 8 * arr.dtype.itemsize and hi <= 2**bits_stored - 1:
            maximum = 2**bits_stored - 1

        def divide(a: np.ndarray) -> np.ndarray:
            out = a.astype(np.float32)
            out /= np.float32(maximum)  # a division (not * 1/max) maps the maximum to exactly 1.0
            np.clip(out, 0.0, 1.0, out=out)
            return out

        bits = f" ({bits_stored} bits stored)" if maximum != info.max else ""
        return divide, f"{arr.dtype} / {maximum}{bits}"
    return (lambda a: _min_max(a, lo, hi)), f"{arr.dtype} in [{lo}, {hi}] min-max scaled over the volume to [0, 1]"


def _min_max(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    out = arr.astype(np.float32)
    if hi <= lo:  # a constant image: nothing to stretch, show it black rather than divide by zero
        return np.zeros_like(out)
    out -= np.float32(lo)
    out /= np.float32(hi - lo)  # a division keeps the maximum at exactly 1.0
    np.clip(out, 0.0, 1.0, out=out)
    return out
