"""The Slicer-application side of the DiDA module that needs ``slicer.app`` or Qt and so cannot run on
``slicer-core``: installing DiDA's Python packages (``dependencies``) and the test environment of ``DiDATest``
(``environment``). Shipped beside ``DiDA.py``; a folder, so that Slicer does not take it for a module."""
