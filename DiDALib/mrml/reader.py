"""How sure DiDA's file reader in Slicer (``DiDAFileReader``) is that it should read a file.

Slicer asks every reader and reads with the most confident one; a reader without its own rule scores
``0.5 + 0.01 x the length of the extension it matched`` (qSlicerFileReader::canLoadFileConfidence), so Slicer's
Texts reader takes any ``.xml`` at 0.54. DiDA claims Heidelberg's own formats and Heyex XML exports (the content
decides: the root element is ``HEDX``) and leaves every other XML to the Texts reader; for images, NRRD, NIfTI and
DICOM Slicer's own readers stay the default and DiDA is offered as the alternative.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

#: A file only DiDA reads well: Heidelberg VOL/E2E, a Heyex XML export, a DICOM Ophthalmic Tomography file.
CLAIM = 0.9
#: A file Slicer reads itself (images, NRRD, NIfTI, DICOM): DiDA's reader is the alternative in Add Data.
ALTERNATIVE = 0.4
#: An XML file that is not a Heyex export: below the Texts reader, which keeps it.
OTHER_XML = 0.1
#: Formats that only DiDA reads; the reader offers itself for these even before DiDALib's packages are installed.
OCT_ONLY_EXTENSIONS = (".vol", ".e2e")
HEYEX_XML_ROOT = "HEDX"


def xml_root(path: str | os.PathLike, limit: int = 1 << 16) -> str | None:
    """The tag of an XML file's root element, read from at most its first ``limit`` bytes; None where none is found
    there (not XML, or a root element that starts later)."""
    parser = ET.XMLPullParser(events=("start",))
    with open(path, "rb") as f:
        for _ in range(0, limit, 4096):
            chunk = f.read(4096)
            if not chunk:
                break
            try:
                parser.feed(chunk)
                for _event, element in parser.read_events():  # a syntax error is raised here, not by feed
                    return element.tag
            except ET.ParseError:
                return None
    return None


def is_ophthalmic_tomography(path: str | os.PathLike) -> bool:
    """Whether a DICOM file is an Ophthalmic Tomography image (read up to the pixels, not past them)."""
    try:
        import pydicom

        from ..io.dicom import DICOM_OPT_SOP_CLASS

        return str(pydicom.dcmread(path, stop_before_pixels=True).get("SOPClassUID", "")) == DICOM_OPT_SOP_CLASS
    except Exception:  # unreadable, not DICOM, pydicom missing: not a file to claim
        return False


def file_confidence(path: str | os.PathLike) -> float:
    """DiDA's confidence for a file (0 where it cannot read it), as ``canLoadFileConfidence`` returns it."""
    name = os.fspath(path).lower()
    if name.endswith(OCT_ONLY_EXTENSIONS):
        return CLAIM
    if name.endswith(".xml"):
        try:
            return CLAIM if xml_root(path) == HEYEX_XML_ROOT else OTHER_XML
        except OSError:
            return 0.0
    try:
        from ..io.registry import OCTReadError, detect_format

        fmt = detect_format(path)
    except (ImportError, OCTReadError, OSError, ValueError):
        return 0.0
    if fmt == "dicom" and is_ophthalmic_tomography(path):
        return CLAIM
    return ALTERNATIVE
