"""NRRD, NIfTI and MetaImage volumes through SimpleITK: the header spacing (x = A-scans, y = depth, z = B-scans)."""

from __future__ import annotations

from pathlib import Path

from .common import last_line
from .volume import OCTReadError, OCTVolume

SITK_IO = {
    "nrrd": ("NrrdImageIO", "NRRD"),
    "nifti": ("NiftiImageIO", "NIfTI"),
    "metaimage": ("MetaImageIO", "MetaImage"),
}


def itk_reader(fmt: str, extensions: tuple[str, ...]):
    """The reader of one SimpleITK format (a key of ``SITK_IO``); ``extensions`` name it in errors."""

    def read(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
        import SimpleITK as sitk

        io_name, label = SITK_IO[fmt]
        reader = sitk.ImageFileReader()
        reader.SetImageIO(io_name)  # the extension's reader only: a PNG renamed .nrrd is an error, not a guess
        reader.SetFileName(str(p))
        try:
            image = reader.Execute()
        except RuntimeError as e:
            raise OCTReadError(
                f"{p}: is not a readable {label} file (SimpleITK {io_name}: {last_line(e)}): expected a {label} "
                f"image ({' '.join(extensions)})"
            ) from e
        volume = OCTVolume.from_sitk(image, source=str(p), format=fmt, bscan_distance=bscan_distance)
        volume.metadata["spacing_source"] = f"{label} header spacing (x lateral, y axial, z B-scan distance), mm"
        return volume

    return read
