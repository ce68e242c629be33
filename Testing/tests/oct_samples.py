"""Small OCT files of every supported kind, written for tests (the loaders' and the command's)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

#: The shipped OCT sample files (Testing/Data/oct).
DATA = Path(__file__).resolve().parents[1] / "Data" / "oct"
REAL_VOL = DATA / "spectralis_linescan_real.vol"
SYNTH_VOL = DATA / "heyex_synthetic_10x40x50.vol"


def levels(n: int, h: int, w: int, dtype=np.uint8, top: int = 255, step: int = 20) -> np.ndarray:
    """B-scan k is a flat level 10 + step * k (so the order can be read back), with the marker `top` at k=0 (0, 0)."""
    arr = np.empty((n, h, w), dtype=dtype)
    for k in range(n):
        arr[k] = 10 + step * k
    arr[0, 0, 0] = top
    return arr


def write_vol(path: Path, raw: np.ndarray, *, scale=(0.01, 0.004, 0.05), laterality="OS", pattern=0,
              positions=None) -> None:
    """A .vol written with eyepy's own VOL structure (HeVolWriter in eyepy 0.21 fails on its date fields).

    ``positions`` (one (start_x, start_y, end_x, end_y) in mm per B-scan) replaces the default parallel lines: a
    circle B-scan starts on its circle and ends at its centre, a radial one runs through the centre."""
    import construct as cs
    from eyepy.io.he.vol_reader import vol_format

    # eyepy 0.21 cannot build its own exam_time field (its date adapter returns a float for an Int64): swap in
    # the raw 64-bit count of 100 ns units since 1601, which is what the field holds.
    fmt = cs.Struct(*[("exam_time" / cs.Int64ul) if sc.name == "exam_time" else sc for sc in vol_format.subcons])
    n, h, w = raw.shape
    when = datetime.datetime(2020, 1, 2, 3, 4, 5)
    if positions is None:
        positions = [(0.0, 2.0 - scale[2] * k, scale[0] * (w - 1), 2.0 - scale[2] * k) for k in range(n)]
    bscans = [
        dict(
            bscan_hdr_size=256,
            start_x=positions[k][0],
            start_y=positions[k][1],
            end_x=positions[k][2],
            end_y=positions[k][3],
            num_seg=0,
            quality=20.0,
            shift=0,
            iv_transformation=[0.0] * 6,
            layer_segmentations=np.zeros((0, w), np.float32),
            data=np.ascontiguousarray(raw[k], dtype=np.float32),
        )
        for k in range(n)
    ]
    blob = fmt.build(
        dict(
            size_x=w, n_bscans=n, size_y=h, scale_x=scale[0], distance=scale[2], scale_y=scale[1],
            size_x_slo=16, size_y_slo=16, scale_x_slo=0.02, scale_y_slo=0.02, field_size_slo=30, scan_focus=0.0,
            scan_position=laterality, exam_time=132224078450000000, scan_pattern=pattern, bscan_hdr_size=256,
            id="1", reference_id="", pid=0, patient_id="", dob=when.isoformat(), vid=0, visit_id="",
            visit_date=when.isoformat(), grid_type=0, grid_offset=0, grid_type1=0, grid_offset1=0, prog_id="",
            localizer=np.zeros((16, 16), np.uint8), bscans=bscans,
        )
    )  # fmt: skip
    path.write_bytes(blob)


def _dicom_file_meta(sop_class: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def write_opt(
    path: Path,
    arr: np.ndarray,
    *,
    axial,
    lateral,
    thickness=None,
    positions_step=None,
    bits=16,
    photometric="MONOCHROME2",
):
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    opt = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    n, h, w = arr.shape
    ds = Dataset()
    ds.file_meta = _dicom_file_meta(opt)
    ds.SOPClassUID = opt
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OPT"
    ds.PatientName = "Secret^Person"
    ds.PatientID = "ID-12345"
    ds.ImageLaterality = "L"
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = h, w
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    measures = Dataset()
    measures.PixelSpacing = [axial, lateral]  # [row = axial, column = lateral]
    if thickness is not None:
        measures.SliceThickness = thickness
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    if positions_step is not None:
        frames = []
        for k in range(n):
            pos = Dataset()
            pos.ImagePositionPatient = [0.0, 0.0, k * positions_step]
            item = Dataset()
            item.PlanePositionSequence = [pos]
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_dicom_series(folder: Path, arr: np.ndarray, *, row_spacing, col_spacing, step) -> list[Path]:
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    mr = "1.2.840.10008.5.1.4.1.1.4"
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    n, h, w = arr.shape
    folder.mkdir()
    paths = []
    for k in range(n):
        ds = Dataset()
        ds.file_meta = _dicom_file_meta(mr)
        ds.SOPClassUID = mr
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "OT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, k * step]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [row_spacing, col_spacing]
        ds.Rows, ds.Columns = h, w
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(arr[k], dtype=np.uint16).tobytes()
        # names run against the position order: the reader must sort by position, not by name
        path = folder / f"slice_{n - k:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_sample(kind: str, path: Path, arr: np.ndarray, spacing=(0.012, 0.004, 0.06)) -> Path:
    """Write uint8 B-scans (n, depth, width) as ``kind`` at ``path`` (a file or a folder); returns what to load."""
    n = arr.shape[0]
    if kind in ("png-folder", "jpeg-folder", "tiff-folder"):
        path.mkdir()
        ext = {"png-folder": "png", "jpeg-folder": "jpg", "tiff-folder": "tif"}[kind]
        for k in range(n):
            Image.fromarray(arr[k]).save(path / f"B{k + 1}.{ext}", quality=95)
        return path
    if kind == "multipage-tiff":
        pages = [Image.fromarray(a) for a in arr]
        pages[0].save(path, save_all=True, append_images=pages[1:])
        return path
    if kind == "rgb-png":
        Image.fromarray(np.repeat(arr[0][..., None], 3, axis=-1)).save(path)
        return path
    if kind in ("nrrd", "nifti", "metaimage"):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spacing)
        sitk.WriteImage(img, str(path))
        return path
    if kind == "dicom-opt":
        write_opt(path, arr.astype(np.uint16) * 257, axial=spacing[1], lateral=spacing[0], thickness=spacing[2])
        return path
    if kind == "dicom-series":
        write_dicom_series(path, arr.astype(np.uint16) * 257, row_spacing=spacing[1], col_spacing=spacing[0],
                           step=spacing[2])
        return path
    if kind == "heyex-vol":
        write_vol(path, (arr.astype(np.float32) / 255.0) ** 4, scale=spacing)
        return path
    raise ValueError(f"unknown sample kind {kind}")
