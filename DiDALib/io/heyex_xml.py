"""Heidelberg Heyex XML exports (the ``.xml`` file beside its B-scan images) through eyepy: ``ScaleX``/``ScaleY``;
the B-scan distance from the B-scan start/end positions (the XML has no distance field)."""

from __future__ import annotations

import math
from pathlib import Path

from .common import build_volume, parse_laterality, plain, read_errors
from .heyex import HEIDELBERG_BSCAN_ORDER, bscan_positions, eyepy_data, localizer, looks_like_heyex_xml, quiet_eyepy
from .volume import OCTReadError, OCTVolume


def _xml_reader_class():
    from eyepy import EyeVolumeMeta
    from eyepy.io import HeXmlReader

    class _HeXmlReader(HeXmlReader):
        """eyepy's XML reader, with a meta that works for one B-scan and leaves patient fields out."""

        @property
        def meta(self):
            bscan_meta = self.bscan_meta
            distance = 0.0
            if len(bscan_meta) >= 2:  # eyepy's get_bscan_spacing indexes [0] of the pairwise distances
                from eyepy.io.utils import get_bscan_spacing

                distance = float(get_bscan_spacing(bscan_meta))
            return EyeVolumeMeta(
                scale_x=self.parsed_values["scale_x"],
                scale_y=self.parsed_values["scale_y"],
                scale_z=distance,
                scale_unit="mm",
                laterality=self.parsed_values["scan_position"],
                visit_date=self.parsed_values["visit_date"],
                exam_time=self.parsed_values["exam_time"],
                bscan_meta=bscan_meta,
                intensity_transform="default",
            )

    return _HeXmlReader


def read_heyex_xml(p: Path, bscan_distance: float | None, *, source: str) -> OCTVolume:
    if not looks_like_heyex_xml(p):
        raise OCTReadError(
            f"{p}: is not a Heyex XML export: no <HEDX> root element at its start; "
            "expected the .xml file Heyex writes next to the B-scan images"
        )
    reader_class = _xml_reader_class()
    from eyepy.io.he.xml_reader import get_xml_root

    with quiet_eyepy() as notes:
        try:
            with read_errors(p, "cannot be read as a Heyex XML export"):
                reader = reader_class(p)
                series_type = ""
                node = reader.xml_root[0].find("./Patient/Study/Series/Type")
                if node is not None and node.text:
                    series_type = node.text.strip()
                if any(word in series_type.lower() for word in ("circle", "radial", "star")):
                    raise OCTReadError(
                        f"{p}: is a {series_type} scan: its B-scans are not a Cartesian volume; "
                        "DiDA reads line and volume scans"
                    )
                names = [m["scan_name"] for m in reader.bscan_meta]
                if not names:
                    raise OCTReadError(f"{p}: the XML lists no OCT B-scans (no <Image> of type OCT)")
                missing = [n for n in names if not (p.parent / n).is_file()]
                if missing:
                    raise OCTReadError(
                        f"{p}: the XML lists B-scan image(s) missing from {p.parent}: {', '.join(missing[:5])}; "
                        "copy the whole export folder"
                    )
                ev = reader.volume
                bscans, intensity = eyepy_data(ev, str(p))
                parsed = dict(reader.parsed_values)
                fundus = localizer(ev, notes)
        finally:
            get_xml_root.cache_clear()  # eyepy caches parsed XML by path: a re-export at the same path must be re-read
    lateral, axial = parsed.get("scale_x"), parsed.get("scale_y")
    unit = "mm" if all(v is not None and math.isfinite(v) and v > 0 for v in (lateral, axial)) else "pixel"
    metadata = {
        "spacing_source": "XML OphthalmicAcquisitionContext ScaleX (lateral), ScaleY (axial), mm; B-scan distance "
        "= mean distance between consecutive B-scan start/end positions (the XML has no distance field)",
        "intensity": "8-bit B-scan images / 255",
        "bscan_order": HEIDELBERG_BSCAN_ORDER,
        "series_type": series_type,
        "software_version": plain(parsed.get("version")),
        "exam_time": plain(parsed.get("exam_time")),
        "files": names,
        "bscan_positions_mm": bscan_positions(ev.meta["bscan_meta"]),
    }
    if notes:
        metadata["reader_warnings"] = notes
    distance = float(ev.meta["scale_z"]) if unit == "mm" else None
    volume = build_volume(
        source, "heyex-xml", bscans, lateral, axial, distance,
        unit=unit, bscan_distance=bscan_distance, metadata=metadata,
        laterality=parse_laterality(parsed.get("scan_position")),
        missing="the B-scan start/end positions do not differ",
    )
    volume.fundus = fundus
    return volume
