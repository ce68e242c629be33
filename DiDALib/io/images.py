"""B-scans as image files (PNG, JPEG, TIFF): a single image, a multi-page TIFF, or a folder of images in natural
order. Images carry no physical spacing: the volume is in pixel units."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from .common import build_volume, natural_key, short_error
from .volume import OCTReadError, OCTVolume, grey_rule, to_grey, to_unit_range

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@contextlib.contextmanager
def open_pil(p: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Above Pillow's pixel limit it only warns (up to twice the limit, then refuses): refuse both alike.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(p)
    except UnidentifiedImageError as e:
        raise OCTReadError(
            f"{p}: is not a readable image: Pillow cannot identify its contents; expected a PNG, JPEG or TIFF file"
        ) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise OCTReadError(
            f"{p}: {short_error(e)}: an image this large is refused as a possible decompression bomb (a small file "
            "that unpacks to gigabytes); if it is a genuine B-scan, convert it to NRRD and explain that"
        ) from e
    try:
        yield im
    finally:
        im.close()


def _pil_grey(im, where: str) -> tuple[np.ndarray, str | None]:
    """One PIL frame as a 2-D grey array in its own dtype, and a note when colour was reduced."""
    mode = im.mode
    try:
        if mode in ("L", "F") or mode.startswith("I;16"):
            arr = np.array(im)
            return arr.astype(arr.dtype.newbyteorder("="), copy=False), None
        if mode == "I":
            arr = np.array(im)
            if arr.size and arr.min() >= 0 and arr.max() <= 65535:  # 16-bit PNGs open as "I" in some Pillow builds
                return arr.astype(np.uint16), None
            return arr, None
        if mode == "1":
            return np.array(im.convert("L")), None
        if mode in ("LA", "La"):
            return np.array(im)[..., 0], f"{mode}: the grey channel (alpha dropped)"
        if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
            arr = np.array(im)
            channels = 3 if mode == "RGB" else 4
            return to_grey(arr[..., :channels], channels, where), f"{mode} reduced to grey ({grey_rule(channels)})"
        rgb = np.array(im.convert("RGB"))
        return to_grey(rgb, 3, where), f"{mode} converted to RGB, then to grey ({grey_rule(3)})"
    except OCTReadError:
        raise
    except (OSError, ValueError) as e:  # truncated or corrupt pixel data
        raise OCTReadError(f"{where}: the image data cannot be decoded ({short_error(e)}): the file may be truncated") from e


def _append_frame(frames: list[np.ndarray], arr: np.ndarray, where: str, first: str) -> None:
    """Add one B-scan to a stack, refusing one whose size or bit depth differs from the first."""
    if frames and arr.shape != frames[0].shape:
        raise OCTReadError(
            f"{where}: is {arr.shape[1]} x {arr.shape[0]} px but {first} is "
            f"{frames[0].shape[1]} x {frames[0].shape[0]} px: all B-scans must share one size"
        )
    if frames and arr.dtype != frames[0].dtype:
        raise OCTReadError(
            f"{where}: has {arr.dtype} pixels but {first} has {frames[0].dtype}: "
            "export all B-scans with one bit depth"
        )
    frames.append(arr)


def read_image(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    frames: list[np.ndarray] = []
    notes: set[str] = set()
    with open_pil(p) as im:
        container = im.format
        n_frames = int(getattr(im, "n_frames", 1))
        for i in range(n_frames):
            where = f"{p} (page {i + 1} of {n_frames})" if n_frames > 1 else str(p)
            im.seek(i)
            arr, note = _pil_grey(im, where)
            if note:
                notes.add(note)
            _append_frame(frames, arr, where, "page 1")
    fmt = "multipage-tiff" if n_frames > 1 else "image"
    return _image_stack(source, fmt, frames, notes, str(p), {"container": container}, bscan_distance,
                        "an image stack has no B-scan distance")


def read_image_folder(folder: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    files = sorted(
        (f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")),
        key=lambda f: natural_key(f.name),
    )
    files = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise OCTReadError(f"{folder}: no B-scan images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    frames: list[np.ndarray] = []
    notes: set[str] = set()
    for f in files:
        with open_pil(f) as im:
            if int(getattr(im, "n_frames", 1)) > 1:
                raise OCTReadError(
                    f"{f}: is a multi-page TIFF ({im.n_frames} pages) inside a folder of B-scan images: "
                    "expected one B-scan per file; load the multi-page TIFF on its own"
                )
            arr, note = _pil_grey(im, str(f))
        if note:
            notes.add(note)
        _append_frame(frames, arr, str(f), f"{files[0].name} (the first B-scan)")
    extra = {"bscan_order": "natural sort of the file names (B2 before B10)", "files": [f.name for f in files]}
    return _image_stack(source, "image-folder", frames, notes, str(folder), extra, bscan_distance,
                        "a folder of images has no B-scan distance")


def _image_stack(source: str, fmt: str, frames: list[np.ndarray], notes: set[str], where: str, extra: dict,
                 bscan_distance: float | None, missing: str) -> OCTVolume:
    """A volume from grey image frames: no physical spacing (pixel units), colour reductions noted."""
    bscans, intensity = to_unit_range(np.stack(frames), where)
    metadata = {"spacing_source": "none: image files carry no physical spacing; pixel units", "intensity": intensity}
    metadata.update(extra)
    if notes:
        metadata["colour"] = "; ".join(sorted(notes))
    return build_volume(
        source, fmt, bscans, None, None, None, unit="pixel", bscan_distance=bscan_distance, metadata=metadata,
        missing=missing,
    )
