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
