"""The DiDA module's self-test, apart from the scene code it checks: what ``DiDATest`` runs inside Slicer and CI
runs on ``slicer-core`` (the same functions). ``scenarios`` runs them (``DIDATEST``); ``checks`` and ``map_checks``
check what the scene shows, ``worker_checks`` runs in DiDA's worker process; ``fixtures`` is what they run on (the
test model, a phantom volume, the stored result), ``headless`` Slicer's scene and logics without the application.
Imports go one way: fixtures, then the checks, then scenarios."""
