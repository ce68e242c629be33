"""What DiDA's Slicer side does, in a Python where torch, timm and torchvision cannot be imported: the check that
Slicer's own process never imports them (only DiDA's worker process does).

Run by ``test_without_torch.py`` in a subprocess, with the test's own Python (torch installed, ``--block`` makes it
unimportable) and with a virtual environment that has slicer-core and the packages Slicer ships but no torch at all
(``.ci/run`` makes it), as Slicer's extension test machines have. It

- imports every ``DiDALib.mrml`` module (its ``selftest`` subpackage too), ``DiDALib.io.registry`` and every
  ``DiDALib`` module the Slicer module reaches (``--modules``);
- describes the bundled demo model package, as the module panel does when it opens;
- reads an OCT file into a scene (``--oct``), as the module's file reader does;
- runs what ``DiDATest`` runs, on slicer-core: the stored-result scenario, and the worker scenarios (the worker
  imports torch, this process must not) or, without torch, their skip with its reason;
- with ``--run``, explains one B-scan in a real worker process through the module's controller (as the panel
  does), then shows, compares and exports the run (the worker imports torch; this process must not);

and prints one JSON report. It exits 1 if a step failed or torch (timm, torchvision) entered ``sys.modules``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import pkgutil
import sys
import tempfile
import traceback
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "timm", "torchvision")


class RefuseTorch(importlib.abc.MetaPathFinder):
    """Makes torch, timm and torchvision (and so every module that imports them) unimportable."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: Slicer's process must not import it)",
                                      name=name)
        return None


def loaded() -> list[str]:
    """The blocked packages that entered ``sys.modules``."""
    return sorted({m.partition(".")[0] for m in sys.modules} & set(BLOCKED))


def import_all(extra: list[str]) -> list[str]:
    import DiDALib.mrml

    names = [m.name for m in pkgutil.walk_packages(DiDALib.mrml.__path__, "DiDALib.mrml.")]
    names = list(dict.fromkeys([*names, "DiDALib.io.registry", *extra]))
    for name in names:
        importlib.import_module(name)
    return names


def describe_demo() -> str:
    from DiDALib.mrml.choices import describe_model, model_folder

    text = describe_model(model_folder(True, None))
    assert not text.startswith("Model problem"), text
    return text


def read_oct(path: str) -> list[int]:
    from DiDALib.mrml.selftest.headless import HeadlessEnvironment
    from DiDALib.mrml.volumes import load_oct_node

    with HeadlessEnvironment() as env:
        node = load_oct_node(env.scene, path, app_logic=env.app_logic)
        return list(node.GetImageData().GetDimensions())


def didatest(log: list[str], worker_runs: bool) -> dict:
    """What ``DiDATest`` runs (``DiDA/DiDA.py``), step by step, on slicer-core: a skipped step says why. Without
    ``worker_runs`` its worker scenarios are left to the suite's own tests of them."""
    from DiDALib.mrml.selftest import scenarios
    from DiDALib.mrml.selftest.headless import HeadlessEnvironment

    out = {}
    for step in scenarios.DIDATEST:
        if step is scenarios.worker_runs and not worker_runs:
            out[step.__name__] = "not run (--no-worker-runs)"
            continue
        try:
            step(HeadlessEnvironment, log=log.append)
            out[step.__name__] = "passed"
        except unittest.SkipTest as reason:
            out[step.__name__] = f"skipped: {reason}"
    return out


def run_in_worker() -> dict:
    """One B-scan explained in a real worker through the module's controller, then shown, compared, exported."""
    from DiDALib.mrml.controller import DiDAController
    from DiDALib.mrml.selftest import fixtures
    from DiDALib.mrml.selftest.headless import HeadlessEnvironment
    from DiDALib.worker.protocol import ModelRequest

    with tempfile.TemporaryDirectory() as tmp:
        package = fixtures.make_test_package_apart(sys.executable, Path(tmp) / "model")  # it imports timm and torch
        with HeadlessEnvironment() as env:
            controller = DiDAController(lambda: env.layout_node, lambda: (0.6, "both", True))
            try:
                volume = fixtures.make_test_volume(env, n_bscans=2)
                session = controller.start(volume, ModelRequest(str(package)), fixtures.TEST_SETTINGS, [1],
                                           current=True)
                state = session.wait(timeout=300)
                assert state == "complete", session.summary()
                controller.show(controller.newly_shown(), bscan=1)
                names = controller.class_names()
                assert controller.compare(True, names[0], names[1]) == ""
                written = controller.export(Path(tmp) / "export", volume)
                return {"state": state, "exported": sorted(p.name for p in Path(written).iterdir())}
            finally:
                controller.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", action="store_true", help="make torch, timm and torchvision unimportable")
    parser.add_argument("--modules", nargs="*", default=[], help="more modules to import")
    parser.add_argument("--oct", help="an OCT file to read into a scene")
    parser.add_argument("--run", action="store_true", help="explain a B-scan in a real worker process")
    parser.add_argument("--no-worker-runs", action="store_true", help="leave out DiDATest's worker scenarios")
    args = parser.parse_args(argv)
    if args.block:
        sys.meta_path.insert(0, RefuseTorch())
    sys.path.insert(0, str(ROOT))
    report: dict = {"python": sys.executable, "blocked": args.block, "steps": {}, "failed": []}
    log: list[str] = []
    steps = [("import", lambda: import_all(args.modules)), ("describe_demo", describe_demo)]
    if args.oct:
        steps.append(("read_oct", lambda: read_oct(args.oct)))
    steps.append(("didatest", lambda: didatest(log, not args.no_worker_runs)))
    if args.run:
        steps.append(("run_in_worker", run_in_worker))
    for name, step in steps:
        try:
            report["steps"][name] = step()
        except (Exception, unittest.SkipTest) as exc:
            report["failed"].append(name)
            frames = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)
                      if "DiDALib" in f.filename]  # the import chain that reached torch
            report["steps"][name] = " > ".join([*frames, "".join(traceback.format_exception_only(exc)).strip()])
        report["steps"][f"{name}: torch loaded"] = loaded()
    report["log"] = log
    report["loaded"] = loaded()
    print(json.dumps(report, indent=1, default=str))
    return 1 if report["failed"] or report["loaded"] else 0


if __name__ == "__main__":
    sys.exit(main())
