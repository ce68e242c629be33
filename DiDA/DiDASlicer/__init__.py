"""The Slicer-application side of the DiDA module that needs ``slicer.app`` or Qt and so cannot run on
``slicer-core``: installing DiDA's Python packages (``dependencies``), the application's layout, views and the
environment of ``DiDATest`` (``app``), the parameter node's choices (``parameters``), panel helpers (``widgets``).
Shipped beside ``DiDA.py``; a folder, so that Slicer does not take it for a module.

Importing it makes ``DiDALib`` importable when the module runs from a source checkout (Additional module paths:
``<checkout>/DiDA``): Slicer puts only the module's folder on ``sys.path`` (ctkFactoryScriptedItem::load in
``qSlicerScriptedLoadableModuleFactory.cxx``), and ``DiDALib`` lies beside that folder there; in a built
extension it lies in it."""

import importlib.util
import os
import sys


def _library_beside_the_module() -> None:
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if importlib.util.find_spec("DiDALib") is None and os.path.isfile(os.path.join(checkout, "DiDALib", "__init__.py")):
        sys.path.append(checkout)


_library_beside_the_module()
