"""Small Qt helpers of the DiDA module's panel (no DiDA logic: the choices come from ``DiDALib.mrml``)."""


def fill_combo(box, items, current: str) -> None:
    """Make a combo box list ``items`` (kept as it is when they did not change) with ``current`` chosen where it is
    one of them; no signal is sent, so filling it never counts as the user's choice."""
    items = list(items)
    was = box.blockSignals(True)
    try:
        if [box.itemText(i) for i in range(box.count)] != items:
            box.clear()
            box.addItems(items)
        box.currentIndex = items.index(current) if current in items else -1
    finally:
        box.blockSignals(was)


def fill_combos(boxes, items, currents) -> None:
    """``fill_combo`` for several boxes listing the same items, each with its own choice."""
    for box, current in zip(boxes, currents):
        fill_combo(box, items, current)


def enable_grid_rows(ui, p) -> None:
    """The Method group's grid rows: Shapley values run on grids of their own, so the grid choice is off for them;
    custom sizes and weights only with Custom."""
    own = p.estimator.value == "leave-one-out"
    ui.gridPresetComboBox.enabled = own
    ui.customGridsLineEdit.enabled = ui.customWeightsLineEdit.enabled = own and p.gridPreset.value == "custom"


def export_results(controller, volume) -> None:
    """Export results: ask for a folder, ask before replacing an earlier DiDA result there, and write the shown
    run's folder (``DiDALib.mrml.export``); a refusal or failure is one sentence in an error dialog."""
    import qt
    import slicer
    from slicer.i18n import tr as _

    from DiDALib.mrml.export import replaceable

    folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export DiDA results to a folder"))
    if not folder:
        return
    force = replaceable(folder)
    if force and not slicer.util.confirmYesNoDisplay(
            _("{folder} holds an earlier DiDA result. Replace it with this one?").format(folder=folder)):
        return
    try:
        with slicer.util.WaitCursor():
            written = controller.export(folder, volume, force)
    except (ValueError, OSError) as exc:  # refused or failed: nothing was written, and the sentence says why
        slicer.util.errorDisplay(str(exc))
        return
    slicer.util.infoDisplay(_("DiDA's results are in {folder} (open report.html to browse them).").format(
        folder=written))


def device_text(controller) -> str:
    """Where the worker runs, for the Device label."""
    from slicer.i18n import tr as _

    device = controller.device() if controller is not None else None
    if device is None:
        return _("Detected when DiDA first runs (in its own process, where PyTorch is loaded)")
    return (_("Running on CUDA GPU {name}").format(name=device[1]) if device[0].startswith("cuda")
            else _("Running on the CPU: a B-scan takes tens of seconds with the paper's grids"))


def show_failure(session, can_retry_on_cpu: bool) -> bool:
    """The dialog of a run that stopped; True when the user asked to run on the CPU instead (a device error)."""
    import slicer
    from slicer.i18n import tr as _

    from DiDALib.worker.protocol import DEVICE_ERROR, DIED

    if session.error_kind == DEVICE_ERROR and can_retry_on_cpu:
        return bool(slicer.util.confirmYesNoDisplay(_("{error}\n\nRun on the CPU instead?").format(
            error=session.error)))
    if session.error_kind == DIED:  # the sentence says it all: what happened, what is kept, what comes next
        slicer.util.errorDisplay(session.error)
    else:
        slicer.util.errorDisplay(_("DiDA stopped; the B-scans finished before are kept.\n\n{error}").format(
            error=session.error))
    return False


def enface_interactor():
    """The interactor of the DiDA View's en-face view, once the layout manager made that view (else None)."""
    from DiDASlicer.app import slice_widget

    from DiDALib.mrml.layout import ENFACE_VIEW

    widget = slice_widget(ENFACE_VIEW)
    return widget.sliceView().interactor() if widget is not None else None


def enface_click_ras(interactor) -> tuple[float, float, float]:
    """The RAS point under the mouse in the en-face view (its slice node's XY to RAS at the event's position)."""
    from DiDASlicer.app import slice_widget

    from DiDALib.mrml.layout import ENFACE_VIEW

    x, y = interactor.GetEventPosition()
    node = slice_widget(ENFACE_VIEW).mrmlSliceNode()  # the view whose interactor sent the click
    return tuple(node.GetXYToRAS().MultiplyPoint((float(x), float(y), 0.0, 1.0))[:3])
