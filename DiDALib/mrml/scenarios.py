"""Scenarios that check DiDA in a scene, shared by the CI tests (``slicer-core``) and ``DiDATest`` (inside Slicer).

They work on an *environment*: an object with ``scene``, ``app_logic``, ``layout_node``, ``show_dida_layout()``,
``slice_logic(name)``, ``renderer(name)`` and ``save_and_reload(folder)`` (returning the environment with the
scene read back). ``HeadlessEnvironment`` is the ``slicer-core`` one; ``DiDA.py`` has the one for the Slicer
application. The checks live in ``checks`` (what the scene shows) and ``worker_checks`` (runs in the worker
process); ``run_all`` runs every one, ``run_stored`` those that need no torch, on a stored result.
"""

from __future__ import annotations

from pathlib import Path

import vtk

from ..io.volume import OCTVolume
from . import checks, map_checks
from .checks import Fixture
from .headless import HeadlessSlicer
from .session import ExplainSession
from .views import DiDAViews
from .volumes import add_oct_volume

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


class HeadlessEnvironment(HeadlessSlicer):
    """The scenarios' environment on ``slicer-core``."""

    def __init__(self, scene=None):
        super().__init__(scene)
        self._renderers: dict[str, vtk.vtkRenderer] = {}

    def renderer(self, name: str):
        """A renderer for each view (Slicer's slice views have one each), made on first use."""
        return self._renderers.setdefault(name, vtk.vtkRenderer())

    def save_and_reload(self, folder) -> HeadlessEnvironment:
        return HeadlessEnvironment.load(self.save(folder))


def make_test_package(folder: str | Path, seed: int = 0) -> Path:
    """A small model package (timm ``test_efficientnet``, random weights, 32 x 32 grey input) written to
    ``folder``: enough to run DiDA for real in seconds on a CPU."""
    import timm
    import torch

    from ..models.package import save_model_package
    from ..models.spec import ModelSpec

    torch.manual_seed(seed)
    spec = ModelSpec(architecture="timm:test_efficientnet", classes=TEST_CLASSES, input_size=(32, 32), channels=1,
                     mean=(0.5,), std=(0.25,), name="DiDA test model (random weights)", demo=True,
                     description="tiny random model for tests")
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(TEST_CLASSES), in_chans=1)
    return save_model_package(folder, spec, model)


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
    from ..phantom import make_volume

    bscans, _labels, _masks = make_volume(n_bscans=n_bscans, seed=seed, depth=depth, width=width)
    volume = OCTVolume(bscans, TEST_SPACING, source="phantom.nrrd", format="phantom")
    return add_oct_volume(env.scene, volume, "phantom")


def _shown(env, volume, session: ExplainSession) -> Fixture:
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
    return _shown(env, volume, session)


def stored_results_path() -> Path:
    """The stored result: in a source checkout ``Testing/Data``, in a built extension ``Resources/Testing``."""
    library = Path(__file__).resolve().parents[1]
    candidates = [library.parent / "Testing" / "Data" / STORED_RESULTS,
                  library.parent / "Resources" / "Testing" / STORED_RESULTS]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"the stored DiDA result is missing: looked for {', '.join(map(str, candidates))}")


def stored_fixture(env, path: str | Path | None = None) -> Fixture:
    """The stored result of the test model on the test volume, applied to the scene as a run streams it."""
    from ..io.results import load_results

    explanation = load_results(path or stored_results_path())
    volume = make_test_volume(env)
    shape = tuple(volume.GetImageData().GetDimensions()[1::-1])
    assert explanation.bscan_shape == shape, f"the stored result is for {explanation.bscan_shape} B-scans, not {shape}"
    session = ExplainSession(env.scene, volume, None, None, classes="top3", name="DiDA stored")
    state = session.replay(explanation)
    assert state == "complete", session.summary()
    return _shown(env, volume, session)


def write_stored_results(path: str | Path, worker, package_dir: str | Path) -> Path:
    """Run the test model on the test volume and store the result (what ``stored_fixture`` reads)."""
    from ..io.results import write_results

    with HeadlessEnvironment() as env:
        fx = explain_volume(env, worker, package_dir)
        fx.views.detach()
        return write_results(Path(path), fx.session.explanation,
                             {"made_by": "DiDALib.mrml.scenarios.write_stored_results", "settings": TEST_SETTINGS})


#: The checks of a run shown in the DiDA View, in order (the last one leaves and re-enters the layout).
FIXTURE_CHECKS = (checks.check_overlay_colours, checks.check_overlay_geometry, checks.check_layout,
                  checks.check_link_survival, checks.check_crosshair, checks.check_display_controls,
                  checks.check_resize_keeps_proportions, checks.check_scores_and_plot, checks.check_hierarchy,
                  checks.check_input_candidates, map_checks.check_compare, map_checks.check_enface,
                  checks.check_leaving_the_layout)


def _close(env) -> None:  # headless environments free their logics; the Slicer application keeps its own
    getattr(env, "close", lambda: None)()


def _scene_checks(env, fx: Fixture, folder: str | Path, log) -> None:
    for check in FIXTURE_CHECKS:
        log(check.__doc__.strip().splitlines()[0])
        check(fx)
    log("save and reload")
    fx.views.detach()
    _close(checks.check_save_reload(fx, folder))
    _close(env)


def run_stored(env_factory, folder: str | Path, log=print) -> None:
    """Every scene check on the stored result (no torch needed): ``DiDATest`` runs this where torch is absent."""
    env = env_factory()
    log("volume round trip")
    checks.check_volume_round_trip(env)
    checks.check_show_volume(env)
    log("the stored result of the test model")
    _scene_checks(env, stored_fixture(env), folder, log)


def run_all(env_factory, package_dir: str | Path, folder: str | Path, worker, log=print) -> None:
    """Every scenario in turn, with runs in ``worker`` (``DiDATest`` calls this inside Slicer)."""
    from .worker_checks import WORKER_CHECKS

    env = env_factory()
    log("volume round trip")
    checks.check_volume_round_trip(env)
    checks.check_show_volume(env)
    log("explaining a small volume in the worker")
    _scene_checks(env, explain_volume(env, worker, package_dir), folder, log)
    for check in WORKER_CHECKS:
        log(check.__doc__.strip().splitlines()[0])
        env = env_factory()
        check(env, worker, package_dir)
        _close(env)


def worker_unmet() -> str:
    """What the worker scenarios need and is not installed ("" when all is there)."""
    from .requirements import torch_unmet, unmet

    return ", ".join(torch_unmet() + unmet(["timm", "safetensors"]))


def run_in_slicer(env_factory, worker: bool, log=print) -> None:
    """``DiDATest``'s scenarios in temporary folders: on the stored result, or (``worker``) with runs of the test
    model in a worker process of their own."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if not worker:
            run_stored(env_factory, Path(tmp) / "scene", log=log)
            return
        from ..worker.client import WorkerClient

        with WorkerClient() as client:
            package = make_test_package(Path(tmp) / "model")
            run_all(env_factory, package, Path(tmp) / "scene", client, log=log)
