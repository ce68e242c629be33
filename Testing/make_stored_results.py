"""Write ``Testing/Data/dida_results.npz``: the tiny test model (``DiDALib.mrml.fixtures.make_test_package``) run in
the worker on the test volume. ``DiDATest`` shows this stored result where torch is absent (Slicer's CI), and the CI
tests check the same scene with it.

    python Testing/make_stored_results.py [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from DiDALib.mrml.selftest.fixtures import STORED_RESULTS, make_test_package, write_stored_results  # noqa: E402
from DiDALib.worker.client import WorkerClient  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "Testing" / "Data" / STORED_RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, WorkerClient() as worker:
        path = write_stored_results(args.out, worker, make_test_package(Path(tmp) / "model"))
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
