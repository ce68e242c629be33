"""DiDA in a worker process of its own: the Slicer module never runs the model in Slicer's process.

- ``protocol``: what the two sides say to each other (requests as JSON lines on the worker's stdin; per job a folder
  with the B-scans as a ``.npy`` the worker memory-maps, and ``events.jsonl``, the events the worker appends);
- ``server``: the worker itself (``python -m DiDALib.worker``), which keeps the model package loaded between jobs;
- ``client``: the side the Slicer session drives from the main thread, without threads: it starts the worker on
  first use (and again after it died), writes requests and reads new events when polled.

Why a process: PythonQt, as Slicer uses it, holds the GIL while Qt idles, so a Python thread in Slicer barely runs;
and a crash, a CUDA out-of-memory or a runaway allocation in a model then ends the worker, not Slicer.
"""
