"""The audit page (``audit.html``): one self-contained file, offline, like ``report.html``: everything inside
(images as data URLs, numbers as JSON), a Content Security Policy that forbids every request
(``reports.html.content_policy``), colours from the project's one colour rule (``maps.colour``: red for, blue
against, over the grey B-scan). Python makes every picture and number; the script (``audit_script``) only sorts
and filters the table."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..audit.explain import band_of, result_from_record
from ..audit.store import AuditStore
from ..audit.summary import CONFIDENT, INSIDE_FLAG, AuditSummary
from ..maps.colour import overlay
from ..maps.evidence import evidence_map
from ..maps.mixing import MixedImage
from .audit_page_html import PAGE, STYLE
from .audit_script import SCRIPT
from .html import NOTICE, _json, content_policy
from .page_data import image_url

#: Thumbnails carried by the page at most (flagged items first, then the others in the plan's order): a page of
#: 84,000 B-scans stays a page (its table lists every item; rows beyond this have no picture).
PAGE_THUMBNAILS = 2000
#: Items shown per flagged gallery.
GALLERY = 24
BAND_COLOUR = (64, 208, 64)


def _mixed(evidence: np.ndarray, scale: float) -> MixedImage:
    """An evidence map as the two brightness channels of the colour rule, saturating at ``scale``."""
    s = max(float(scale), 1e-12)
    return MixedImage(np.clip(evidence / s, 0, 1), np.clip(-evidence / s, 0, 1), 0, s, np.ones(1))


def _band_lines(rgb: np.ndarray, band) -> np.ndarray:
    """The band's upper and lower edges drawn on every other column (dotted, so the evidence stays visible)."""
    out = rgb.copy()
    h = out.shape[0]
    for edge in (band.top, band.bottom):
        rows = np.clip(np.round(edge - 0.5).astype(int), 0, h - 1)
        cols = np.arange(0, out.shape[1], 2)
        out[rows[cols], cols] = BAND_COLOUR
    return out


def thumbnail_rgb(store: AuditStore, item_id: str, row: dict, classes: Sequence[str], score: str,
                  scale: float) -> np.ndarray:
    """An item's thumbnail: the grey B-scan, its predicted class's evidence over it, and the retina band."""
    arrays = store.arrays(item_id)
    thumb = arrays["thumb"]
    result = result_from_record(row, arrays, classes, score)
    e = evidence_map(result, list(classes).index(row["predicted"]), thumb.shape)
    rgb = overlay(thumb, _mixed(e, scale), 0.6)
    band = band_of(arrays)
    return _band_lines(rgb, band) if band is not None else rgb


def _class_card(name: str, maps, scale: float, figures: dict, bins: int) -> str:
    stats = figures["per_class"][name]
    grey = np.clip(np.rint(maps.grey), 0, 255).astype(np.uint8)
    urls = [image_url(overlay(grey, _mixed(m * sign, scale), 0.85)) for m, sign in
            ((maps.positive, 1.0), (maps.negative, -1.0))]
    h, w = grey.shape
    size = f'width="{w}" height="{h}"'
    mean = stats["inside_mean"]
    text = f"{stats['items']} item(s)" + (f" · evidence inside the retina: mean {mean:.2f}, median "
                                          f"{stats['inside_median']:.2f}" if mean is not None else "")
    if stats.get("recall") is not None:
        text += f" · recall {stats['recall']:.2f}"
    return (f'<div class="card" data-class="{html.escape(name)}"><h3>{html.escape(name)}</h3>'
            f'<p class="note">{html.escape(text)}</p><div class="maps">'
            f'<figure><img alt="mean evidence for {html.escape(name)}" {size} src="{urls[0]}"><figcaption>for</figcaption>'
            f'</figure><figure><img alt="mean evidence against {html.escape(name)}" {size} src="{urls[1]}">'
            f'<figcaption>against</figcaption></figure>{_histogram_svg(stats["inside_histogram"], bins)}</div></div>')


def _histogram_svg(counts: Sequence[int], bins: int) -> str:
    """The distribution of evidence inside the retina as an inline SVG bar chart (no script, no style)."""
    w, h, pad = 180, 110, 16
    top = max(max(counts, default=0), 1)
    bars = []
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        x = pad + i * (w - 2 * pad) / bins
        bars.append(f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{(w - 2 * pad) / bins - 1:.1f}" '
                    f'height="{bh:.1f}" fill="#7fa7d9"><title>{i / bins:.1f}-{(i + 1) / bins:.1f}: {c}</title></rect>')
    return (f'<figure><svg width="{w}" height="{h}" role="img" aria-label="evidence inside the retina">'
            f'{"".join(bars)}<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#666"/>'
            f'<text x="{pad}" y="{h - 3}">0</text><text x="{w - pad - 6}" y="{h - 3}">1</text>'
            f'<text x="{pad}" y="10">max {top}</text></svg><figcaption>share inside the retina</figcaption></figure>')


def _confusion(figures: dict) -> str:
    names = figures["classes"]
    counts = np.asarray(figures["confusion"]["counts"])
    if not counts.sum():
        return '<p class="note">The dataset gives no labels that name the model\'s classes: no confusion matrix.</p>'
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for t, name in enumerate(names):
        total = max(int(counts[t].sum()), 1)
        cells = "".join(f'<td class="s{min(9, int(10 * c / total))}">{c}</td>' for c in counts[t])
        rows.append(f'<tr><th class="name">{html.escape(name)}</th>{cells}</tr>')
    return (f'<table id="confusion"><caption>rows: label · columns: predicted</caption><thead><tr><th></th>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _gallery(ids: Sequence[str], rows: dict, thumbs: dict[str, int], urls: list[str], extra) -> str:
    if not ids:
        return '<p class="note">none</p>'
    out = []
    for i in ids[:GALLERY]:
        r = rows[i]
        img = f'<img alt="{html.escape(i)}" src="{urls[thumbs[i]]}">' if i in thumbs else ""
        out.append(f'<div class="thumb" data-id="{html.escape(i)}">{img}<div class="id">{html.escape(i)}</div>'
                   f'<div>{html.escape(str(r.get("label") or "?"))} → {html.escape(r["predicted"])} · {extra(r)}</div></div>')
    more = f'<p class="note">and {len(ids) - GALLERY} more (summary.json)</p>' if len(ids) > GALLERY else ""
    return "".join(out) + more


def _probability(row: dict) -> str:
    return f"p {row['probability']:.2f}"


def _pairs(summary: AuditSummary, figures: dict, rows: dict, thumbs: dict, urls: list[str]) -> str:
    if not summary.pairs:
        return '<p class="note">none</p>'
    peak = max(float(np.abs(m).max()) for m in summary.pairs.values()) or 1e-12
    out = []
    for entry in figures["flags"]["confused_pairs"]:
        label, pred = entry["label"], entry["predicted"]
        contrast = summary.pairs[(label, pred)]
        grey = summary.classes[label].grey if label in summary.classes else np.full(summary.frame, 96.0)
        url = image_url(overlay(np.clip(np.rint(grey), 0, 255).astype(np.uint8), _mixed(contrast, peak), 0.85))
        members = [i for i, r in rows.items() if r.get("label_class") == label and r.get("predicted") == pred]
        out.append(f'<div class="card pair"><h3>label {html.escape(label)}, predicted {html.escape(pred)}: '
                   f'{entry["count"]} item(s)</h3><div class="maps"><figure><img alt="contrast {html.escape(pred)} '
                   f'rather than {html.escape(label)}" src="{url}"><figcaption>red: speaks for {html.escape(pred)} '
                   f'rather than {html.escape(label)}; blue: the reverse</figcaption></figure></div>'
                   f'<div class="gallery">{_gallery(members, rows, thumbs, urls, _probability)}'
                   f'</div></div>')
    return "".join(out)


def audit_html(store: AuditStore, summary: AuditSummary, settings: dict, folder: str = "AUDIT") -> str:
    """The page of an audit as text."""
    figures = summary.figures
    classes = settings["classes"]
    score = settings["score_mode"]
    records = list(store.records())
    rows = {i: {**row, "status": status, "reason": reason} for i, status, reason, row in records}
    flags = figures["flags"]
    flagged = {i: "wrong reasons" for i in flags["right_for_wrong_reasons"]}
    flagged.update({i: "confident, wrong" for i in flags["wrong_and_confident"]})
    order = [*flagged, *(i for i in rows if i not in flagged and rows[i]["status"] == "done")]
    thumbs: dict[str, int] = {}
    urls: list[str] = []
    for i in order[:PAGE_THUMBNAILS]:
        thumbs[i] = len(urls)
        urls.append(image_url(thumbnail_rgb(store, i, rows[i], classes, score, summary.scale)))
    table = []
    for i, r in rows.items():
        table.append({"id": i, "status": r["status"], "reason": r["reason"], "label": r.get("label"),
                      "label_class": r.get("label_class"), "predicted": r.get("predicted"),
                      "probability": r.get("probability"), "margin": r.get("margin"), "correct": r.get("correct"),
                      "inside": r.get("inside"), "above": r.get("above"), "below": r.get("below"),
                      "border": r.get("border"), "centroid_in_band": r.get("centroid_in_band"),
                      "flags": flagged.get(i, ""), "thumb": thumbs.get(i)})
    data = {"classes": classes, "rows": table, "thumbs": urls, "folder": folder}
    scale = max([float(max(m.positive.max(), m.negative.max())) for m in summary.classes.values()] or [1e-12])
    cards = "".join(_class_card(n, summary.classes[n], scale, figures, figures["histogram_bins"])
                    for n in classes if n in summary.classes)
    acc = figures["accuracy"]
    accuracy = (f'<div><div class="big" id="accuracy">{acc:.3f}</div><div class="note">accuracy on '
                f'{figures["labelled"]} labelled item(s)</div></div>' if acc is not None else "")
    unfinished = ""
    if figures["unfinished"]:
        unfinished = (f'<p class="warn" id="unfinished">This audit is unfinished: {figures["unfinished"]} of '
                      f'{figures["items"]} item(s) are still to be explained (run it again with --resume).</p>')
    failures = ""
    if figures["failures"]:
        lis = "".join(f"<li><b>{html.escape(f['id'])}</b>: {html.escape(str(f['reason']))}</li>"
                      for f in figures["failures"])
        failures = f'<section id="failures"><h2>Failed items ({len(figures["failures"])})</h2><ul>{lis}</ul></section>'
    run = " · ".join(html.escape(p) for p in (
        f"data {os.path.basename(str(settings['data']).rstrip('/'))}", f"model {settings.get('model_name') or ''}",
        f"score {score}", f"grids {settings['grids']}", f"fill {settings['fill']}",
        f"{figures['explained']} of {figures['items']} item(s) explained" + (
            f", {figures['failed']} failed" if figures["failed"] else ""),
        *([f"sample {settings['sample']} (seed {settings['seed']})"] if settings.get("sample") else [])))
    frame = summary.frame
    frame_text = (f"Every B-scan's evidence for the class resampled onto the median B-scan's shape ({frame[0]} x "
                  f"{frame[1]} here), then averaged over the class's items (its labelled items; its predicted items "
                  f"without labels), over their mean B-scan; one brightness scale for every class (full at "
                  f"{scale:.3g}). Thumbnails: the predicted class's evidence, full at {summary.scale:.3g}.")
    footer = (f"Made by dida {__version__} from the audit's records: red = evidence for, blue = against (DiDA's "
              "evidence map, in the units of the score); green dots: the retina band found on each B-scan. Nothing on "
              "this page is loaded from anywhere else.")
    return PAGE.substitute(
        policy=content_policy(STYLE, SCRIPT), title=html.escape(f"DiDA audit · {os.path.basename(str(settings['data']))}"),
        style=STYLE, script=SCRIPT, data=_json(data), run=run,
        notice=f'<p class="notice" id="notice">{html.escape(NOTICE)}</p>' if settings.get("demo_model") else "",
        unfinished=unfinished, accuracy=accuracy, confusion=_confusion(figures), frame_text=html.escape(frame_text),
        classes=cards, inside_flag=f"{INSIDE_FLAG:g}", confident=f"{CONFIDENT:g}",
        n_wrong_reasons=len(flags["right_for_wrong_reasons"]), n_confident=len(flags["wrong_and_confident"]),
        wrong_reasons=_gallery(flags["right_for_wrong_reasons"], rows, thumbs, urls,
                               lambda r: f"in retina {r['inside']:.2f}"),
        confident_items=_gallery(flags["wrong_and_confident"], rows, thumbs, urls, _probability),
        pairs=_pairs(summary, figures, rows, thumbs, urls), failures=failures, footer=html.escape(footer))


def write_audit_page(path: str | os.PathLike, store: AuditStore, summary: AuditSummary, settings: dict) -> Path:
    """Write the page to ``path`` (a temporary file beside the audit's ``audit.html``); the folder shown in the
    page's commands is the audit folder's name."""
    out = Path(path)
    folder = out.parent.name or "AUDIT"
    out.write_text(audit_html(store, summary, settings, folder), encoding="utf-8")
    return out
