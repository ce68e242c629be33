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
