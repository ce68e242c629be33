"""What DiDA's Slicer logic keeps between clicks, without Qt: the worker process (started on the first run, kept
warm), the session on the volume being explained, and the DiDA views showing a run. ``DiDA.py``'s logic hands it
the parameter node's choices; the CI tests drive it on ``slicer-core``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..worker.client import WorkerClient
from ..worker.protocol import ModelRequest
from .compare import compare
from .layout import show_layout, shows_dida_layout
from .results import DiDARun, find_runs
from .session import ExplainSession
from .views import DiDAViews, ViewLabels


class DiDAController:
    """The worker, the current session and the DiDA views of one Slicer module.

    ``layout_node()`` is the application's layout node and ``display()`` the display choices (opacity, display mode,
    square voxels); ``worker_factory()`` makes the worker client on first use; ``labels()`` makes the views' labels
    (Slicer's text actors) and ``process_events()`` lets the application build a layout's views before they are
    looked up.
    """

    def __init__(self, layout_node: Callable[[], object], display: Callable[[], tuple[float, str, bool]],
                 worker_factory: Callable[[], WorkerClient] = WorkerClient,
                 labels: Callable[[], ViewLabels | None] = lambda: None,
                 process_events: Callable[[], None] = lambda: None):
        self._layout_node = layout_node
        self._display = display
        self._worker_factory = worker_factory
        self._labels = labels
        self._process_events = process_events
        self.worker: WorkerClient | None = None
        self.session: ExplainSession | None = None
        self.views: DiDAViews | None = None
        self.focus: int | None = None  # the B-scan to show when results first appear ("Explain this B-scan")
        self._announced = True  # the current start's results were handed out to be shown
        self._compare: tuple[bool, str, str] = (False, "", "")  # what Compare was last asked to show
        self._enface_key: tuple | None = None  # what the en-face view was last drawn from

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def start(self, volume, model: ModelRequest, settings: Mapping, indices: Sequence[int],
              current: bool = False) -> ExplainSession:
        """Explain B-scans of ``volume`` in the worker. A run with the same model and settings on the same volume is
        continued (its finished B-scans are kept), otherwise a new run is made; ``current`` previews each grid."""
        if self.running:
            raise RuntimeError("DiDA is already running: cancel it first.")
        if not volume:
            raise ValueError("Choose the OCT volume to explain.")
        s, settings = self.session, dict(settings)
        reuse = (s is not None and not s.closed and s.volume is volume and s.model == model
                 and s.settings == settings and s.run is not None and s.run.table.GetScene() is volume.GetScene())
        if not reuse:
            if s is not None:
                s.close()  # its run stays in the scene (latest_run finds it there); the session lets go of it
            if self.worker is None:
                self.worker = self._worker_factory()
            self.session = ExplainSession(volume.GetScene(), volume, self.worker, model, settings,
                                          classes=settings.get("classes", "top3"))
        self.session.start(list(indices), preview=current)
        self.focus = list(indices)[0] if current else None
        self._announced = False
        return self.session

    def newly_shown(self) -> DiDARun | None:
        """The run, the first time it has something to show after ``start`` (the module then shows it once: a user
        who leaves the DiDA View during the run is not pulled back)."""
        if self._announced or self.session is None or self.session.run is None:
            return None
        self._announced = True
        return self.session.run

    def poll(self, max_seconds: float | None = None) -> bool:
        running = self.session.poll(max_seconds) if self.session is not None else False
        if not running:
            self.show_enface()  # the run's end: the en-face view gets the B-scans finished since it was drawn
        return running

    def cancel(self) -> None:
        if self.session is not None:
            self.session.cancel()

    def forget(self) -> None:
        """Drop the session and the views (the scene is closing): a running job is cancelled and its results,
        which have no scene to go to any more, are discarded. The worker stays warm."""
        if self.session is not None:
            self.session.close()
        self.session = None
        if self.views is not None:
            self.views.detach()
        self.views = None
        self._enface_key = None

    def shutdown(self) -> None:
        """Forget the session and stop the worker (the module is being closed)."""
        self.forget()
        if self.worker is not None:
            self.worker.close()
        self.worker = None

    def latest_run(self, volume) -> DiDARun | None:
        if not volume:
            return None
        if self.session is not None and self.session.volume is volume and self.session.run is not None:
            return self.session.run
        runs = find_runs(volume.GetScene(), volume)
        return runs[-1] if runs else None

    def shown_session(self, volume=None) -> ExplainSession | None:
        """The session whose run the DiDA View shows (none shown: the volume's latest run), if it has its results."""
        s, views = self.session, self.views
        run = views.run if views is not None and views.attached else self.latest_run(volume)
        return s if s is not None and s.run is not None and s.run is run else None

    def export(self, folder, volume=None, force: bool = False):
        """Export results: the shown run's folder, as ``dida explain`` writes it (``export.export_session``)."""
        from .export import export_session

        return export_session(folder, self.shown_session(volume), force)

    def device(self) -> tuple[str, str] | None:
        """The device the worker runs on and its name, once a run has told."""
        info = self.session.info if self.session is not None else None
        return (info["device"], info["device_name"]) if info else None

    # -- display -----------------------------------------------------------------------------------------------------

    def show(self, run: DiDARun | None, bscan: int | None = None) -> None:
        """Show a run in the DiDA View (switching to that layout), on B-scan ``bscan`` if given."""
        if run is None:
            raise ValueError("There is no DiDA result for this volume yet: explain a B-scan first.")
        if self.views is not None and self.views.attached and self.views.run is run:
            return
        if self.views is not None and self.views.comparison is not None:  # it belongs to the run shown before
            self.views.comparison.remove(self.views.run.volume.GetScene())
            self.views.set_comparison(None)
        show_layout(self._layout_node())
        self._process_events()  # the layout manager makes the views (and their slice logics)
        if self.views is None or not self.views.attached:
            self.views = DiDAViews(run.volume.GetScene(), labels=self._labels())
        opacity, mode, square_voxels = self._display()
        self.views.opacity = opacity
        self.views.square_voxels = square_voxels
        session = self.session
        self.views.explanation = session.explanation if session is not None and session.run is run else None
        self.views.show(run, bscan=bscan)
        self.views.set_display_mode(mode)
        self.compare(*self._compare)
        self.show_enface()

    def show_enface(self) -> None:
        """The en-face view shows the class of DiDA view 1 over the shown run's finished B-scans (``enface``);
        drawn again only when that class or those B-scans changed."""
        views, session = self.views, self.session
        if views is None or not views.attached or views.run is None or not views.overlays:
            return
        explanation = session.explanation if session is not None and session.run is views.run else None
        k = views.overlays[0].class_index
        key = (views.run.table.GetID(), k, tuple(explanation.indices) if explanation is not None else ())
        if key != self._enface_key:
            from .enface import show_enface

            show_enface(views.run.volume.GetScene(), views.run.volume, explanation, k,
                        [o.class_index for o in views.run.overlays])
            self._enface_key = key

    def reshow(self, volume) -> bool:
        """When the DiDA View was chosen again (from the layout menu), show the volume's latest run in it."""
        if not shows_dida_layout(self._layout_node()) or (self.views is not None and self.views.attached):
            return False
        run = self.latest_run(volume)
        if run is None:
            return False
        self.show(run)
        return True

    def compare(self, on: bool, a: str = "", b: str = "") -> str:
        """Views 1 to 3 show classes ``a``, ``b`` and their contrast (``on``), or the run's top three classes again.
        Returns "" or the one sentence saying why the comparison cannot be shown (a bad pair, no run shown)."""
        self._compare = (bool(on), a, b)
        views = self.views if self.views is not None and self.views.attached else None
        if views is None or views.run is None:
            return "" if not on else "Compare shows in the DiDA View: show a run there first."
        old = views.comparison
        if old is not None and on and old.pair == (a, b):
            return ""
        if old is not None:
            views.set_comparison(None)
            old.remove(views.run.volume.GetScene())
        if not on:
            self.show_enface()
            return ""
        session = self.session
        explanation = session.explanation if session is not None and session.run is views.run else None
        try:
            comparison = compare(views.run.volume.GetScene(), views.run, explanation, a, b)
        except ValueError as exc:
            return str(exc)
        views.set_comparison(comparison)
        self.show_enface()
        return ""

    def jump_to(self, ras) -> tuple[int, int] | None:
        """A click in the en-face view: the DiDA View's B-scan views go to that B-scan, the crosshair to that A-scan
        (``enface.jump_to``); None where no run is shown or the point is outside the volume."""
        views = self.views
        if views is None or not views.attached or views.run is None:
            return None
        from .enface import jump_to

        return jump_to(views.run.volume.GetScene(), views.run.volume, ras)

    def class_names(self) -> list[str]:
        """The classes of the run in the DiDA View that Compare can choose from (none without its results)."""
        views, session = self.views, self.session
        if views is None or session is None or session.run is not views.run or session.explanation is None:
            return []
        return list(session.explanation.class_names)

    def set_display(self, opacity: float, mode: str, square_voxels: bool) -> None:
        """Opacity, evidence shown and B-scan proportions, in every DiDA view at once."""
        if self.views is not None and self.views.attached:
            self.views.set_opacity(opacity)
            self.views.set_display_mode(mode)
            self.views.set_square_voxels(square_voxels)
