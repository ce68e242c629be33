"""``python -m DiDALib.worker``: the DiDA worker process (see ``DiDALib.worker``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DESCRIPTION = """\
The DiDA worker: a long-lived process that explains OCT B-scans for DiDA's 3D Slicer module, so that the model
never runs inside Slicer (Slicer stays responsive, and a crash or an out-of-memory error in a model ends this
process, not Slicer). The module starts it (in Slicer with the PythonSlicer executable) and keeps it running
between runs: the model package stays loaded, so a second run on the same model starts computing at once.

It reads requests from stdin, one JSON object per line ("job", "cancel", "shutdown"); each job names a folder
that holds its B-scans (bscans.npy, memory-mapped) and receives its events (events.jsonl: ready, progress, grid,
result, done / cancelled / error). DiDALib/worker/protocol.py describes every field; a line that is not a valid
request (DiDALib/worker/requests.py: a job folder must be a job-* folder directly inside --home) is answered with
an error event or a line on stderr, and the worker goes on. It ends on "shutdown" or when stdin closes; in the
latter case the session that started it is gone, and it removes what it wrote there (nothing else).
"""


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli.common import OneLineParser

    parser = OneLineParser(prog="python -m DiDALib.worker", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", metavar="FOLDER",
                        help="the starting session's folder (its job folders live there): what the worker wrote "
                             "there is removed if stdin closes without a shutdown request")
    try:
        args = parser.parse_args(argv)
    except ValueError as exc:  # OneLineParser's one line
        print(f"DiDA worker: error: {exc}", file=sys.stderr)
        return 2
    from .server import Worker

    return Worker(sys.stdin.buffer, sys.stderr, args.home).serve()


if __name__ == "__main__":
    sys.exit(main())
