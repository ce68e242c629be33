"""``dida audit``: a model audited over a whole labelled dataset, every B-scan explained on its own.

One idea per module: ``dataset`` lists the items (ImageFolder, CSV, OCT files) and samples them, ``retina`` finds
the retina band of a B-scan from its own pixels, ``measures`` reads one item's evidence (where it lies, what
speaks against the label), ``explain`` is the per-item DiDA call and the record a worker returns, ``store`` keeps
the records (SQLite, one transaction per batch, keyed by item), ``executor`` runs the workers on Ray, ``folder``
the audit folder's rules (created staged, resumed under its lock, final files replaced atomically), ``summary``
the dataset-level figures. The page is ``reports.audit_page``; the command is ``cli.audit``.

Nothing here imports torch or Ray at module level: only the workers and the command's run do.
"""
