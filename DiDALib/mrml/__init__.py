"""Everything that touches Slicer's scene, in plain MRML calls that run inside Slicer and on the ``slicer-core``
wheel: ``volumes`` (OCT volumes as nodes), ``overlays`` (labelmap overlays and float maps), ``results`` (a run's
nodes, scores and plot), ``layout`` (the DiDA View), ``session`` (a run applied to the scene as it streams),
``background`` (the job the session drives), ``headless`` and ``scenarios`` (the scene checks shared by CI and
``DiDATest``)."""
