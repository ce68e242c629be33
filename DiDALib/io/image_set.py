"""Unrelated B-scans as a list: the images of a folder (each file at its own size), or every B-scan of any input
(``dida explain --images``). Each is read when it is explained, so a folder of thousands costs one image of memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .common import natural_key
from .images import IMAGE_EXTENSIONS, open_pil, read_image
from .volume import OCTVolume


@dataclass(frozen=True)
class BScanImage:
    """One unrelated B-scan: its name in tables (the file name, with the page or B-scan where a file holds more),
    its (depth, width), and how to read it."""

    name: str
    shape: tuple[int, int]
    source: str
    _read: Callable[[], OCTVolume] = field(repr=False, compare=False)
    _index: int = 0

    def volume(self) -> OCTVolume:
        """The B-scan as a volume of one (pixel spacing: an image carries none)."""
        whole = self._read()
        if whole.n_bscans == 1:
            return whole
        return OCTVolume(whole.bscans[self._index : self._index + 1], whole.spacing, source=self.source,
                         format=whole.format, spacing_unit=whole.spacing_unit, spacing_placeholder=True,
                         metadata={**whole.metadata, "bscan_of_file": self._index})


class LazyBScans(Sequence):
    """The B-scans (depth, width) of ``images``, each read when indexed (``independent.explain_independent``)."""

    def __init__(self, images: Sequence[BScanImage]):
        self._images = list(images)

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, k):
        return self._images[k].volume().bscans[0]


def _image_files(folder: Path) -> list[Path]:
    files = sorted((f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")),
                   key=lambda f: natural_key(f.name))
    return [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]


def _header(path: Path) -> tuple[tuple[int, int], int]:
    """An image file's (depth, width) and page count, from its header alone."""
    with open_pil(path) as im:
        return (int(im.size[1]), int(im.size[0])), int(getattr(im, "n_frames", 1))


def sizes_differ(path: str | os.PathLike) -> bool:
    """True for a folder of B-scan images whose sizes differ (read from their headers): no volume can hold them.
    Other folders (a Heyex XML export with its fundus image, DICOM slices) are not image folders."""
    from .registry import detect_format

    p = Path(path)
    if not p.is_dir() or detect_format(p) != "image-folder":
        return False
    shapes = {_header(f)[0] for f in _image_files(p)}
    return len(shapes) > 1


def independent_bscans(path: str | os.PathLike, max_bytes: int | None = None) -> list[BScanImage]:
    """Every B-scan of ``path`` as an unrelated image: each image of a folder (every page of a multi-page TIFF), or
    each B-scan of any file DiDA reads. Each file's decoded size (every page: reading one decodes them all) is
    checked against ``max_bytes`` (None: the memory available) from its header first, as ``load_oct`` does."""
    from .limits import check_decoded
    from .registry import detect_format, load_oct

    p = Path(path)
    if p.is_dir() and detect_format(p) == "image-folder":
        out = []
        for f in _image_files(p):
            check_decoded("image", f, max_bytes)
            shape, pages = _header(f)
            read = (lambda f=f: read_image(f, None, source=str(f)))
            if pages == 1:
                out.append(BScanImage(f.name, shape, str(f), read))
            else:
                out += [BScanImage(f"{f.name} [page {k + 1}]", shape, str(f), read, k) for k in range(pages)]
        return out
    volume = load_oct(p, max_bytes=max_bytes)  # a volume file: its B-scans, each taken on its own
    if volume.n_bscans == 1:
        return [BScanImage(p.name, volume.bscans.shape[1:], str(p), lambda: volume)]
    shape = tuple(int(v) for v in volume.bscans.shape[1:])
    return [BScanImage(f"{p.name} [B-scan {k}]", shape, str(p), lambda: volume, k) for k in range(volume.n_bscans)]

