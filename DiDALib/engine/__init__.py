"""The DiDA engine: ``grid`` (the partition rule and Mixed Image weights), ``masks`` (masked images built on the
device), ``devices`` (device, precision and batch-size choices), ``core`` (``DiDAEngine``: every masked image of
every grid through the model in shared batches, streamed per B-scan) and ``result`` (``DiDAResult``).

``grid`` and ``result`` need only numpy, so the maps and the scene helpers can use them without torch."""
