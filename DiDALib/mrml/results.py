"""A DiDA run's results in the scene: the score table (B-scan x class), the score plot, the subject hierarchy
folder under the input volume, and the run record that ties them to the overlays and says which B-scans are done.

Everything a run needs later (after the widget is closed or the scene is saved and loaded again) is kept in node
attributes and node references, so ``find_runs`` rebuilds a ``DiDARun`` from the scene alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import vtk
from vtkmodules.util import numpy_support

from .overlays import ROLE, ClassOverlay, overlay_from_labels
from .volumes import nodes_of_class, remove_node, scene_hierarchy

INPUT_REFERENCE = "DiDAInput"
OVERLAY_REFERENCE = "DiDAOverlay"
CHART_REFERENCE = "DiDAChart"
BSCAN_COLUMN = "B-scan"

STATUS = "DiDA.Status"  # "running", "complete", "cancelled" or "failed"
FINISHED = "DiDA.FinishedBScans"  # B-scan indices with a complete result, space separated
UNFINISHED = "DiDA.UnfinishedBScans"  # asked for but not finished (cancelled, failed or still running)
STATUSES = ("running", "complete", "cancelled", "failed")
#: Series colours of the score plot: neither red nor blue, which mean evidence in the overlays.
SERIES_COLORS = ((0.95, 0.6, 0.1), (0.2, 0.7, 0.3), (0.6, 0.3, 0.8), (0.4, 0.4, 0.4), (0.1, 0.7, 0.8))


# -- score table and plot ----------------------------------------------------------------------------------------

def add_score_table(scene, class_names: Sequence[str], name: str):
    """An empty score table: a "B-scan" column and one score column per class."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table.SetAttribute(ROLE, "scores")
    write_scores(table, class_names, [], np.zeros((0, len(class_names))))
    return table


def write_scores(table, class_names: Sequence[str], indices: Sequence[int], scores: np.ndarray) -> None:
    """Replace the table's rows by the scores (rows: B-scans in ``indices`` order, columns: classes)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(indices), len(class_names))
    t = vtk.vtkTable()
    col = vtk.vtkIntArray()
    col.SetName(BSCAN_COLUMN)
    for i in indices:
        col.InsertNextValue(int(i))
    t.AddColumn(col)
    for k, name in enumerate(class_names):
        col = vtk.vtkDoubleArray()
        col.SetName(name)
        for v in scores[:, k]:
            col.InsertNextValue(float(v))
        t.AddColumn(col)
    table.SetAndObserveTable(t)
    table.Modified()


def read_scores(table) -> tuple[list[int], list[str], np.ndarray]:
    """(B-scan indices, class names, scores (B-scans x classes)) of a score table."""
    t = table.GetTable()
    names = [t.GetColumnName(c) for c in range(1, t.GetNumberOfColumns())]
    rows = t.GetNumberOfRows()
    indices = [int(v) for v in _column(t, 0)] if t.GetNumberOfColumns() else []
    scores = np.stack([_column(t, c) for c in range(1, len(names) + 1)], axis=1) if names else np.zeros((rows, 0))
    return indices, names, scores.reshape(rows, len(names)).astype(np.float64)


def _column(t, c: int) -> np.ndarray:
    # A table read from a .tsv holds strings until Slicer's schema says otherwise: convert either way.
    col = t.GetColumn(c)
    if hasattr(col, "GetValue") and col.IsA("vtkStringArray"):
        return np.array([float(col.GetValue(i)) for i in range(col.GetNumberOfValues())])
    return numpy_support.vtk_to_numpy(col).astype(np.float64)


def add_score_plot(scene, table, class_names: Sequence[str], name: str, score_label: str = "score"):
    """A chart with one line per class: its score across the B-scans."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle(name)
    chart.SetXAxisTitle(BSCAN_COLUMN)
    chart.SetYAxisTitle(score_label)
    chart.SetAttribute(ROLE, "plot")
    set_plot_classes(scene, chart, table, class_names)
    return chart


def set_plot_classes(scene, chart, table, class_names: Sequence[str]) -> None:
    """Make the chart show exactly these classes' score series, in this order (series are reused by name)."""
    existing = {}
    for i in range(chart.GetNumberOfPlotSeriesNodes()):
        series = chart.GetNthPlotSeriesNode(i)
        if series is not None:
            existing[series.GetYColumnName()] = series
    chart.RemoveAllPlotSeriesNodeIDs()
    for name, series in list(existing.items()):
        if name not in class_names:
            remove_node(scene, series)
    for rank, name in enumerate(class_names):
        series = existing.get(name)
        if series is None:
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{name} score"))
            series.SetAttribute(ROLE, "series")
            series.SetAndObserveTableNodeID(table.GetID())
            series.SetXColumnName(BSCAN_COLUMN)
            series.SetYColumnName(name)
            series.SetPlotType(series.PlotTypeScatter)
            series.SetMarkerStyle(series.MarkerStyleCircle)
        series.SetColor(*SERIES_COLORS[rank % len(SERIES_COLORS)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())


def plot_series(chart) -> list:
    return [chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())]


# -- subject hierarchy -------------------------------------------------------------------------------------------

def subject_item(scene, node, parent_item: int | None = None) -> int:
    """The subject hierarchy item of a node, created when Slicer's plugins have not made one (slicer-core)."""
    sh = scene_hierarchy(scene)
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(parent_item if parent_item is not None else sh.GetSceneItemID(), node)
    return item


def group_under(scene, volume, nodes: Sequence, folder_name: str, folder: int | None = None) -> int:
    """Put nodes in a folder under the input volume's subject hierarchy item; returns the folder item."""
    sh = scene_hierarchy(scene)
    if not folder:
        folder = sh.CreateFolderItem(subject_item(scene, volume), folder_name)
    for node in nodes:
        if node is not None:
            sh.SetItemParent(subject_item(scene, node, folder), folder)
    return folder


# -- the run record ----------------------------------------------------------------------------------------------

def _indices_text(indices) -> str:
    return " ".join(str(int(i)) for i in sorted(indices))


def parse_indices(text: str | None) -> list[int]:
    return [int(v) for v in (text or "").split()]


@dataclass
class DiDARun:
    """The nodes of one DiDA run on one input volume. ``table`` is the record: it references the input volume,
    the chart and the overlays (labelmaps, ranked), and carries the run's settings and status as attributes."""

    volume: object
    table: object
    chart: object
    overlays: list[ClassOverlay] = field(default_factory=list)
    folder: int = 0  # subject hierarchy folder under the input volume

    @classmethod
    def create(cls, scene, volume, class_names: Sequence[str], settings: dict[str, str], name: str,
               score_label: str = "score") -> DiDARun:
        table = add_score_table(scene, class_names, f"{name} scores")
        table.SetNodeReferenceID(INPUT_REFERENCE, volume.GetID())
        for key, value in settings.items():
            table.SetAttribute(f"DiDA.{key}", str(value))
        chart = add_score_plot(scene, table, [], f"{name} scores across B-scans", score_label)
        chart.SetNodeReferenceID(INPUT_REFERENCE, volume.GetID())
        table.SetNodeReferenceID(CHART_REFERENCE, chart.GetID())
        run = cls(volume, table, chart, [], group_under(scene, volume, [table, chart], name))
        run.set_status("running", [], [])
        return run

    @classmethod
    def from_table(cls, table) -> DiDARun | None:
        volume = table.GetNodeReference(INPUT_REFERENCE)
        if volume is None:
            return None
        overlays = [overlay_from_labels(table.GetNthNodeReference(OVERLAY_REFERENCE, i))
                    for i in range(table.GetNumberOfNodeReferences(OVERLAY_REFERENCE))]
        return cls(volume, table, table.GetNodeReference(CHART_REFERENCE), [o for o in overlays if o is not None])

    # settings and status ------------------------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        return self.table.GetAttribute(f"DiDA.{key}")

    @property
    def status(self) -> str:
        return self.table.GetAttribute(STATUS) or ""

    @property
    def finished(self) -> list[int]:
        return parse_indices(self.table.GetAttribute(FINISHED))

    @property
    def unfinished(self) -> list[int]:
        return parse_indices(self.table.GetAttribute(UNFINISHED))

    def nodes(self) -> list:
        """Every node of the run that carries its status (the table and all overlay volumes)."""
        return [self.table] + [n for o in self.overlays for n in o.nodes]

    def set_status(self, status: str, finished, unfinished) -> None:
        """Mark the run and every overlay node: its status and which B-scans are finished or not."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        for node in self.nodes():
            was = node.StartModify()  # one Modified event per node, not one per attribute
            node.SetAttribute(STATUS, status)
            node.SetAttribute(FINISHED, _indices_text(finished))
            node.SetAttribute(UNFINISHED, _indices_text(unfinished))
            node.EndModify(was)

    # overlays and scores ---------------------------------------------------------------------------------------------

    def set_overlays(self, scene, overlays: Sequence[ClassOverlay]) -> None:
        """Rank the run's overlays (best first): references, hierarchy and the plot follow; overlays that are no
        longer listed are removed from the scene."""
        keep = {id(o.labels) for o in overlays}
        for old in self.overlays:
            if id(old.labels) not in keep:
                old.remove(scene)
        self.overlays = list(overlays)
        self.table.RemoveNodeReferenceIDs(OVERLAY_REFERENCE)
        for o in self.overlays:
            self.table.AddNodeReferenceID(OVERLAY_REFERENCE, o.labels.GetID())
            for node in o.nodes:
                node.SetNodeReferenceID(INPUT_REFERENCE, self.volume.GetID())
        if not self.folder:
            self.folder = scene_hierarchy(scene).GetItemParent(subject_item(scene, self.table))
        group_under(scene, self.volume, [n for o in self.overlays for n in o.nodes], "", self.folder)
        set_plot_classes(scene, self.chart, self.table, [o.class_name for o in self.overlays])
        status = self.status or "running"
        self.set_status(status, self.finished, self.unfinished)

    def write_scores(self, class_names: Sequence[str], indices: Sequence[int], scores: np.ndarray) -> None:
        write_scores(self.table, class_names, indices, scores)

    def score(self, class_name: str, bscan: int) -> float | None:
        """The score of a class on a B-scan, from the table (None where the B-scan has no result)."""
        indices, names, scores = read_scores(self.table)
        if class_name not in names or bscan not in indices:
            return None
        return float(scores[indices.index(bscan), names.index(class_name)])


def find_runs(scene, volume=None) -> list[DiDARun]:
    """The DiDA runs in the scene (of one input volume if given), oldest first."""
    runs = []
    for table in nodes_of_class(scene, "vtkMRMLTableNode"):
        if table.GetAttribute(ROLE) != "scores":
            continue
        run = DiDARun.from_table(table)
        if run is not None and (volume is None or run.volume is volume or run.volume.GetID() == volume.GetID()):
            runs.append(run)
    return runs
