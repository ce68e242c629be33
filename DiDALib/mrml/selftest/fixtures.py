"""What the self-test scenarios run on: the test model package (tiny, random weights), a small phantom volume, the
stored result of the one on the other, and a ``Fixture``: a finished run shown in the DiDA View of an
*environment* (an object with ``scene``, ``app_logic``, ``layout_node``, ``show_dida_layout()``,
``slice_logic(name)``, ``renderer(name)`` and ``save_and_reload(folder)``; ``headless.HeadlessEnvironment`` on
``slicer-core``, ``DiDASlicer.app.SlicerEnvironment`` inside Slicer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...io.volume import OCTVolume
from ..results import DiDARun
from ..session import ExplainSession
from ..views import DiDAViews
from ..volumes import add_oct_volume

#: The test model: timm's tiny EfficientNet, grey input of 32 x 32, four classes.
TEST_CLASSES = ("normal", "drusen", "wet_amd", "macular_oedema")
TEST_GRIDS = (3, 5)
TEST_SPACING = (0.0114, 0.0039, 0.12)
#: A run of the test model: 35 model passes per B-scan, a few milliseconds. A fixed batch size spares the tests the
#: CPU batch-size tuning (the engine's own tests cover it; results do not depend on the batch size).
TEST_SETTINGS = {"grids": list(TEST_GRIDS), "device": "cpu", "batch_size": 16}
#: A run slow enough to act on while it goes: 886 passes per B-scan, about a tenth of a second on a 2-core CPU.
SLOW_SETTINGS = {"grids": [9, 11, 13, 15, 17], "device": "cpu", "batch_size": 16}
#: The stored result of the test model on the test volume (``Testing/Data``; ``Resources/Testing`` when built).
STORED_RESULTS = "dida_results.npz"



@dataclass
class Fixture:
    """A finished run on a small volume, shown in the DiDA View."""

    env: object
    volume: object
    session: ExplainSession
    views: DiDAViews

    @property
    def run(self) -> DiDARun:
        return self.session.run


def make_test_package(folder: str | Path, seed: int = 0) -> Path:
    """A small model package (timm ``test_efficientnet``, random weights, 32 x 32 grey input) written to
    ``folder``: enough to run DiDA for real in seconds on a CPU."""
    import timm
    import torch

    from ...models.package import save_model_package
    from ...models.spec import ModelSpec

    torch.manual_seed(seed)
    spec = ModelSpec(architecture="timm:test_efficientnet", classes=TEST_CLASSES, input_size=(32, 32), channels=1,
                     mean=(0.5,), std=(0.25,), name="DiDA test model (random weights)", demo=True,
                     description="tiny random model for tests")
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(TEST_CLASSES), in_chans=1)
    return save_model_package(folder, spec, model)


def make_test_package_apart(python: str, folder: str | Path) -> Path:
    """``make_test_package`` in a process of its own, run by ``python`` (the worker's): building the model imports
    timm and torch, which Slicer's own process never does."""
    import subprocess

    from ...worker.client import library_environment

    code = "import sys; from DiDALib.mrml.selftest.fixtures import make_test_package; make_test_package(sys.argv[1])"
    run = subprocess.run([python, "-c", code, str(folder)], env=library_environment(), capture_output=True,
                         text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"the test model package could not be made: {run.stderr.strip()[-1000:]}")
    return Path(folder)


def make_failing_package(folder: str | Path, fail_after: int) -> Path:
    """A TorchScript model package whose model raises once it has scored ``fail_after`` images (the load check
    scores one): a model that breaks in the middle of a run, as a CUDA error would. It has no convolution and a
    fixed score mode, so that no image is scored but the run's (no memory-format probe, no ``auto`` pass)."""
    import json
    import warnings

    import torch

    class FailsLater(torch.nn.Module):
        def __init__(self, after: int):
            super().__init__()
            self.head = torch.nn.Linear(16, len(TEST_CLASSES))
            self.after = after
            self.seen = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.seen >= self.after:
                raise RuntimeError("CUDA error: device-side assert triggered (a test model that breaks on purpose)")
            self.seen += x.shape[0]
            return self.head(torch.nn.functional.avg_pool2d(x, 8).flatten(1))

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript; packages still bring it (models/torchscript)
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(FailsLater(fail_after)).save(str(out / "model.pt"))
    spec = {"format": "dida-model/1", "name": "DiDA failing test model", "architecture": "torchscript",
            "weights": "model.pt", "classes": list(TEST_CLASSES), "input_size": [32, 32], "channels": 1,
            "mean": [0.5], "std": [0.25], "score": "probabilities"}
    (out / "model.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return out


def make_test_volume(env, n_bscans: int = 5, depth: int = 48, width: int = 64, seed: int = 3):
    """A small phantom OCT volume node (B-scans through a macula with lesions)."""
    from ...phantom import make_volume

    bscans, _labels, _masks = make_volume(n_bscans=n_bscans, seed=seed, depth=depth, width=width)
    volume = OCTVolume(bscans, TEST_SPACING, source="phantom.nrrd", format="phantom")
    return add_oct_volume(env.scene, volume, "phantom")


def shown(env, volume, session: ExplainSession) -> Fixture:
    """The session's run shown in the DiDA View of ``env``, on its middle explained B-scan."""
    env.show_dida_layout()
    views = DiDAViews(env.scene)
    views.set_opacity(1.0)
    views.show(session.run, bscan=session.explanation.indices[len(session.explanation.indices) // 2])
    return Fixture(env, volume, session, views)


def explain_volume(env, worker, package_dir: str | Path, timeout: float = 120.0) -> Fixture:
    """Run DiDA for real (in the worker) over a small volume and show the run in the DiDA View."""
    volume = make_test_volume(env)
    session = ExplainSession(env.scene, volume, worker, package_dir, TEST_SETTINGS, classes="top3")
    state = session.run_blocking(timeout=timeout)
    assert state == "complete", f"the run ended {state}: {session.summary()}"
    return shown(env, volume, session)


def stored_results_path() -> Path:
    """The stored result: in a source checkout ``Testing/Data``, in a built extension ``Resources/Testing``."""
    library = Path(__file__).resolve().parents[2]  # DiDALib
    candidates = [library.parent / "Testing" / "Data" / STORED_RESULTS,
                  library.parent / "Resources" / "Testing" / STORED_RESULTS]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"the stored DiDA result is missing: looked for {', '.join(map(str, candidates))}")


def stored_fixture(env, path: str | Path | None = None) -> Fixture:
    """The stored result of the test model on the test volume, applied to the scene as a run streams it."""
    from ...io.results import load_results

    explanation = load_results(path or stored_results_path())
    volume = make_test_volume(env)
    shape = tuple(volume.GetImageData().GetDimensions()[1::-1])
    assert explanation.bscan_shape == shape, f"the stored result is for {explanation.bscan_shape} B-scans, not {shape}"
    session = ExplainSession(env.scene, volume, None, None, classes="top3", name="DiDA stored")
    state = session.replay(explanation)
    assert state == "complete", session.summary()
    return shown(env, volume, session)


def write_stored_results(path: str | Path, worker, package_dir: str | Path) -> Path:
    """Run the test model on the test volume and store the result (what ``stored_fixture`` reads)."""
    from ...io.results import write_results

    from .headless import HeadlessEnvironment

    with HeadlessEnvironment() as env:
        fx = explain_volume(env, worker, package_dir)
        fx.views.detach()
        made_by = "DiDALib.mrml.selftest.fixtures.write_stored_results"
        return write_results(Path(path), fx.session.explanation, {"made_by": made_by, "settings": TEST_SETTINGS})
