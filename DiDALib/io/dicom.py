"""DICOM through pydicom: a single (multi-frame) file such as Ophthalmic Tomography, with ``PixelSpacing`` =
[axial, lateral] and the distance from ``SpacingBetweenSlices``, the frame positions or ``SliceThickness``; or a
folder of slices through SimpleITK's series reader. Patient, study and institution fields are never copied."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .common import build_volume, head_bytes, last_line, parse_laterality, plain, read_errors, short_error
from .volume import OCTReadError, OCTVolume, grey_rule, to_grey, to_unit_range

DICOM_EXTENSIONS = (".dcm", ".dicom")
DICOM_OPT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.4"


def is_dicom(p: Path) -> bool:
    return head_bytes(p, 132)[128:132] == b"DICM"


def _dicom_seq_item(ds, *path: str):
    node = ds
    for name in path:
        seq = getattr(node, name, None) if node is not None else None
        if not seq:
            return None
        node = seq[0]
    return node


def _dicom_pixel_measures(ds) -> tuple[list[float] | None, float | None, float | None, str]:
    """(PixelSpacing [row, col], SpacingBetweenSlices, SliceThickness, where found) from a DICOM dataset."""
    for path, where in (
        (("SharedFunctionalGroupsSequence", "PixelMeasuresSequence"), "shared functional groups"),
        (("PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence"), "per-frame functional groups (frame 1)"),
        ((), "the top-level attributes"),
    ):
        node = _dicom_seq_item(ds, *path) if path else ds
        if node is None:
            continue
        ps = getattr(node, "PixelSpacing", None)
        between = getattr(node, "SpacingBetweenSlices", None)
        thick = getattr(node, "SliceThickness", None)
        if ps is not None or between is not None or thick is not None:
            if path and ps is None and getattr(ds, "PixelSpacing", None) is not None:
                ps = ds.PixelSpacing
            if thick is None:
                thick = getattr(ds, "SliceThickness", None)
            if between is None:
                between = getattr(ds, "SpacingBetweenSlices", None)
            return (
                [float(v) for v in ps] if ps is not None and len(ps) == 2 else None,
                _positive(between),
                _positive(thick),
                where,
            )
    return None, None, None, "nowhere"


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _dicom_frame_distance(ds) -> tuple[float | None, str | None]:
    frames = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not frames or len(frames) < 2:
        return None, None
    positions = []
    for item in frames:
        pos = _dicom_seq_item(item, "PlanePositionSequence")
        ipp = getattr(pos, "ImagePositionPatient", None) if pos is not None else None
        if ipp is None or len(ipp) != 3:
            return None, None
        positions.append([float(v) for v in ipp])
    steps = np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1)
    if not np.all(steps > 0):
        return None, None
    note = None
    if not np.allclose(steps, steps.mean(), rtol=0.04):
        note = f"frame positions are not equally spaced ({steps.min():g} to {steps.max():g} mm): the mean is used"
    return float(steps.mean()), note


def _dicom_laterality(ds) -> str | None:
    for value in (
        getattr(ds, "ImageLaterality", None),
        getattr(ds, "Laterality", None),
        getattr(_dicom_seq_item(ds, "SharedFunctionalGroupsSequence", "FrameAnatomySequence"), "FrameLaterality", None),
    ):
        lat = parse_laterality(value)
        if lat:
            return lat
    return None


def _dicom_metadata(ds) -> dict:
    """Acquisition facts only: patient, study and institution identifiers are left out on purpose."""
    meta: dict = {}
    sop = getattr(ds, "SOPClassUID", None)
    if sop is not None:
        meta["sop_class"] = str(sop)
        meta["sop_class_name"] = str(getattr(sop, "name", sop))
    for tag, key in (
        ("Modality", "modality"),
        ("Manufacturer", "manufacturer"),
        ("ManufacturerModelName", "model"),
        ("PhotometricInterpretation", "photometric"),
        ("BitsStored", "bits_stored"),
    ):
        value = getattr(ds, tag, None)
        if value is not None and value != "":
            meta[key] = plain(value if isinstance(value, (int, float)) else str(value))
    return meta


def _dicom_intensity(arr: np.ndarray, ds, where: str) -> tuple[np.ndarray, str]:
    bits = getattr(ds, "BitsStored", None)
    bscans, intensity = to_unit_range(arr, where, bits_stored=int(bits) if bits else None)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":  # 0 = white in MONOCHROME1
        bscans = 1.0 - bscans
        intensity += "; MONOCHROME1 inverted (bright = high)"
    return bscans.astype(np.float32, copy=False), intensity


def read_dicom(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    if p.is_dir():
        return _read_dicom_series(p, bscan_distance, source=source)
    import pydicom
    from pydicom.errors import InvalidDicomError

    with read_errors(p, "the DICOM file cannot be parsed"):
        try:
            ds = pydicom.dcmread(p)
        except InvalidDicomError as e:
            raise OCTReadError(
                f"{p}: is not a DICOM file ({short_error(e)}): expected a DICOM Part 10 file (128-byte preamble + 'DICM')"
            ) from e
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        kind = getattr(getattr(ds, "SOPClassUID", None), "name", "this object")
        raise OCTReadError(f"{p}: has no pixel data ({kind}): expected an image, e.g. Ophthalmic Tomography")
    with read_errors(p, "its pixel data cannot be decoded", ": install the decoder pydicom names (e.g. pylibjpeg, "
                     "pylibjpeg-libjpeg) or export uncompressed DICOM"):
        arr = ds.pixel_array
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    colour = None
    if samples > 1:
        arr = to_grey(np.asarray(arr), samples, str(p))
        colour = f"{samples} samples per pixel reduced to grey ({grey_rule(samples)})"
    arr = np.asarray(arr)
    if arr.ndim == 2 and frames == 1:
        arr = arr[None]
    if arr.ndim != 3:
        raise OCTReadError(
            f"{p}: pixel data of shape {arr.shape} ({frames} frame(s)): expected frames of rows x columns"
        )
    bscans, intensity = _dicom_intensity(arr, ds, str(p))
    pixel_spacing, between, thickness, where = _dicom_pixel_measures(ds)
    metadata = _dicom_metadata(ds)
    metadata.update({"dicom_layout": "single file", "intensity": intensity, "bscan_order": "frame order of the file"})
    if colour:
        metadata["colour"] = colour
    if pixel_spacing is not None and all(v > 0 for v in pixel_spacing):
        unit, axial, lateral = "mm", pixel_spacing[0], pixel_spacing[1]
        sources = [f"PixelSpacing [row = axial, column = lateral] from {where}"]
    else:
        unit, axial, lateral = "pixel", None, None
        sources = ["no PixelSpacing: pixel units"]
    distance = None
    if unit == "mm":
        frame_distance, note = _dicom_frame_distance(ds)
        if between is not None:
            distance, how = between, "SpacingBetweenSlices"
        elif frame_distance is not None:
            distance, how = frame_distance, "the frame positions (PlanePositionSequence)"
            if note:
                metadata["note"] = note
        elif thickness is not None:
            distance, how = thickness, "SliceThickness"
        if distance is not None:
            sources.append(f"B-scan distance from {how}")
    metadata["spacing_source"] = "; ".join(sources)
    return build_volume(
        source, "dicom", bscans, lateral, axial, distance, unit=unit, bscan_distance=bscan_distance,
        metadata=metadata, laterality=_dicom_laterality(ds),
        missing="no SpacingBetweenSlices, frame positions or SliceThickness",
    )


def _read_dicom_series(folder: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    import pydicom
    import SimpleITK as sitk

    try:
        series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError as e:
        raise OCTReadError(f"{folder}: cannot list its DICOM series ({last_line(e)})") from e
    if not series_ids:
        raise OCTReadError(f"{folder}: no readable DICOM image series in the folder (GDCM found none)")
    by_size = sorted(
        ((list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)), sid) for sid in series_ids),
        key=lambda t: -len(t[0]),
    )
    files, series_uid = by_size[0]
    try:
        first = pydicom.dcmread(files[0], stop_before_pixels=True)
    except Exception as e:
        raise OCTReadError(f"{files[0]}: the DICOM header cannot be read ({short_error(e)})") from e
    if len(files) > 1:
        for f in files:
            frames = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["NumberOfFrames"]).get("NumberOfFrames")
            if frames is not None and int(frames) > 1:
                raise OCTReadError(
                    f"{f}: is a multi-frame DICOM file ({int(frames)} frames) in a folder of {len(files)} DICOM "
                    "files: load the multi-frame file itself"
                )
    if len(files) == 1:
        return read_dicom(Path(files[0]), bscan_distance, source=source)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise OCTReadError(f"{folder}: the DICOM series cannot be read ({last_line(e)})") from e
    arr = sitk.GetArrayFromImage(image)
    components = image.GetNumberOfComponentsPerPixel()
    metadata = _dicom_metadata(first)
    if components > 1:
        arr = to_grey(arr, components, str(folder))
        metadata["colour"] = f"{components} components reduced to grey ({grey_rule(components)})"
    if arr.ndim != 3:
        raise OCTReadError(f"{folder}: the DICOM series gave an array of shape {arr.shape}: expected 3-D")
    bscans, intensity = _dicom_intensity(arr, first, str(folder))
    spacing = [float(s) for s in image.GetSpacing()]
    has_spacing = getattr(first, "PixelSpacing", None) is not None
    unit = "mm" if has_spacing else "pixel"
    distance = spacing[2] if unit == "mm" and getattr(first, "ImagePositionPatient", None) is not None else None
    metadata.update(
        {
            "dicom_layout": "series folder",
            "intensity": intensity,
            "bscan_order": "slice position along the slice normal (GDCM sort)",
            "files": [Path(f).name for f in files],
            "spacing_source": "PixelSpacing and the slice positions, via SimpleITK's series reader"
            if has_spacing
            else "no PixelSpacing: pixel units",
        }
    )
    if len(by_size) > 1:
        metadata["note"] = (
            f"the folder holds {len(by_size)} DICOM series; the largest ({len(files)} files) was read, "
            f"the others ({', '.join(str(len(f)) for f, _ in by_size[1:])} files) were left out"
        )
    return build_volume(
        source, "dicom", bscans, spacing[0], spacing[1], distance, unit=unit, bscan_distance=bscan_distance,
        metadata=metadata, laterality=_dicom_laterality(first), missing="the slices have no positions",
    )
