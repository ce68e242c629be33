"""Everything that touches Slicer's scene, in plain MRML calls that run inside Slicer and on the ``slicer-core``
wheel: ``volumes`` (OCT volumes as nodes), ``overlays`` (labelmap overlays and float maps), ``results`` (a run's
nodes, scores and plot), ``layout`` (the DiDA View layout) and ``views`` (its four views kept together), ``session``
(a worker's run applied to the scene as it streams), ``controller`` (what the module keeps between clicks), and the
module's Qt-free decisions: ``reader`` (which files its reader claims), ``requirements`` (what must be installed),
``choices`` (the parameter node's choices as a run). ``selftest`` holds the module's self-test (the scene checks
shared by CI and ``DiDATest``), apart from the code it checks."""
