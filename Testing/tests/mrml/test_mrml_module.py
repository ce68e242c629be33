"""What the Slicer module decides without Qt (DiDALib.mrml.reader, requirements, choices, controller), on
slicer-core: which files its reader claims against Slicer's own readers, what must be installed, the settings a
run gets from the parameter node, and the controller that keeps the worker, the session and the views."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from DiDALib.engine.schedule import EVIDENCE_GRIDS, grid_json
from DiDALib.mrml import choices, requirements
from DiDALib.mrml.controller import DiDAController
from DiDALib.mrml.layout import BSCAN_VIEW, show_layout, view_node
from DiDALib.mrml.reader import ALTERNATIVE, CLAIM, file_confidence, xml_root
from DiDALib.mrml.results import find_runs
from DiDALib.mrml.selftest import fixtures
from DiDALib.mrml.volumes import show_bscan
from DiDALib.worker.protocol import ModelRequest

ROOT = Path(__file__).resolve().parents[3]
OCT = ROOT / "Testing" / "Data" / "oct"
#: What Slicer's Texts reader (qSlicerFileReader's default rule: 0.5 + 0.01 x the extension matched) gives an .xml.
TEXTS_READER_XML = 0.5 + 0.01 * len(".xml")


def test_reader_claims_heyex_xml_by_its_content_and_leaves_other_xml_to_texts(tmp_path):
    assert xml_root(OCT / "heyex_xml" / "test_dummy.xml") == "HEDX"
    assert file_confidence(OCT / "heyex_xml" / "test_dummy.xml") == CLAIM > TEXTS_READER_XML
    others = {
        "scene.xml": '<?xml version="1.0"?><MRML version="Slicer5"><Volume id="v1"/></MRML>',
        "mentions.xml": "<!-- a HEDX export was here --><notes><HEDX/></notes>",
        "broken.xml": "<HEDX",  # not even well-formed, and no root element complete
        "text.xml": "plain text, not XML",
    }
    for name, text in others.items():
        (tmp_path / name).write_text(text)
        assert file_confidence(tmp_path / name) < TEXTS_READER_XML, f"{name} is taken from Slicer's Texts reader"
    assert file_confidence(OCT / "heyex_synthetic_10x40x50.vol") == CLAIM
    copy = tmp_path / "renamed.XML"  # the content decides, whatever the case of the extension
    shutil.copy(OCT / "heyex_xml" / "test_dummy.xml", copy)
    assert file_confidence(copy) == CLAIM


def test_reader_is_the_alternative_for_formats_slicer_reads(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    path = tmp_path / "volume.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 8, 8), np.uint8)), str(path))
    assert file_confidence(path) == ALTERNATIVE < 0.5 + 0.01 * len(".nrrd")
    assert file_confidence(tmp_path / "missing.nrrd") == 0.0


def test_an_old_torch_or_a_missing_torchvision_counts_as_missing(monkeypatch):
    versions = {"torch": "2.1.0", "torchvision": "0.16.0", "timm": "1.0.11"}

    def version(name):
        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert requirements.torch_unmet() == ["torch>=2.4", "torchvision>=0.19"]
    versions.update(torch="2.5.1")
    del versions["torchvision"]
    assert requirements.torch_unmet() == ["torchvision>=0.19"]
    assert requirements.unmet(["timm>=1.0.10", "safetensors>=0.4"]) == ["safetensors>=0.4"]
    versions.update(torchvision="0.20.1")
    assert requirements.torch_unmet() == []


def test_torch_floors_match_the_project_dependencies():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"torch{requirements.TORCH_VERSION}"' in text and f'"torchvision{requirements.TORCHVISION_VERSION}"' in text


ENUM_FIELDS = ("classChoice", "gridPreset", "fill", "scoreMode", "device", "scope", "runtime", "estimator")


def module_defaults() -> dict:
    """The defaults of ``DiDAParameterNode`` in DiDA.py (read from its source: the wrapper needs the Slicer app),
    an enum member (DiDASlicer/parameters.py) as its value."""
    import ast

    values = {}  # "Enum.member" -> its value
    for node in ast.parse((ROOT / "DiDA" / "DiDASlicer" / "parameters.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            values |= {f"{node.name}.{s.targets[0].id}": s.value.value for s in node.body
                       if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)}
    module = ast.parse((ROOT / "DiDA" / "DiDA.py").read_text(encoding="utf-8"))
    node = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "DiDAParameterNode")
    return {s.target.id: values[ast.unparse(s.value)] if ast.unparse(s.value) in values else ast.literal_eval(s.value)
            for s in node.body if isinstance(s, ast.AnnAssign) and s.value is not None}


def _parameters(volume, **changes):
    values = {k: v for k, v in module_defaults().items()
              if k in (*ENUM_FIELDS, "classNames", "customGrids", "customWeights", "firstBScan", "lastBScan")}
    values.update(changes)
    enums = {k: SimpleNamespace(value=v) for k, v in values.items() if k in ENUM_FIELDS}
    return SimpleNamespace(**{**values, **enums}, inputVolume=volume)


def test_run_choices_from_the_parameter_node(env):
    volume = fixtures.make_test_volume(env, n_bscans=4)
    settings, indices = choices.run_choices(_parameters(volume), current=False)
    assert settings == {"grids": [7, 9, 11, 13, 15, 17, 19, 21], "weights": None, "fill": "background",
                        "score": None, "classes": "top3", "device": "auto", "runtime": "auto"}  # the module's defaults
    assert indices == [0, 1, 2, 3]
    settings, indices = choices.run_choices(_parameters(volume, gridPreset="custom", customGrids="3; 5",
                                                        customWeights="1, 2", classChoice="named",
                                                        classNames="drusen, normal", scoreMode="logits",
                                                        scope="range", firstBScan=1, lastBScan=2), current=False)
    assert settings["grids"] == [3, 5] and settings["weights"] == [1.0, 2.0] and settings["score"] == "logits"
    assert settings["classes"] == ["drusen", "normal"] and indices == [1, 2]
    settings = choices.run_choices(_parameters(volume, gridPreset="evidence", fill="black"), current=False)[0]
    assert settings["grids"] == [grid_json(g) for g in EVIDENCE_GRIDS] and settings["fill"] == "black"
    assert "7@1/2_1/2" in settings["grids"] and settings["weights"] is None
    show_bscan(view_node(env.scene, "Red"), volume, 2)
    assert choices.run_choices(_parameters(volume), current=True)[1] == [2]  # the B-scan on screen in Red
    show_layout(env.layout_node)
    show_bscan(view_node(env.scene, BSCAN_VIEW), volume, 3)
    assert choices.run_choices(_parameters(volume, scope="current"), current=False)[1] == [3]  # in the DiDA View
    for bad, message in (({"gridPreset": "custom", "customGrids": "7.5"}, "whole numbers"),
                         ({"gridPreset": "custom", "customGrids": "7, x"}, "numbers separated by commas"),
                         ({"gridPreset": "custom", "customWeights": "1"}, "weight"),
                         ({"classChoice": "named"}, "Name at least one class"),
                         ({"scope": "range", "firstBScan": 2, "lastBScan": 9}, "not within 0 to 3")):
        with pytest.raises(ValueError, match=message):
            choices.run_choices(_parameters(volume, **bad), current=False)


def test_the_evidence_preset_and_the_default_fill_reach_the_worker(env, worker, mrml_package):
    """A run with the module's defaults but the evidence preset: the worker explains with the evidence schedule's
    12 shifted grids and says it filled with the retina background, which the run records."""
    from DiDALib.mrml.session import ExplainSession

    volume = fixtures.make_test_volume(env, n_bscans=1)
    settings, indices = choices.run_choices(_parameters(volume, gridPreset="evidence"), current=False)
    session = ExplainSession(env.scene, volume, worker, mrml_package, {**settings, "device": "cpu", "batch_size": 64},
                             classes=settings["classes"])
    assert session.run_blocking(indices, timeout=240) == "complete", session.error
    assert session.explanation.results[0].grids == EVIDENCE_GRIDS
    assert session.info["fill"] == "background" and session.run.setting("Fill") == "background"
    assert session.run.setting("Grids").split() == [str(g) for g in EVIDENCE_GRIDS]


def test_shapley_values_reach_the_scene_and_the_export(env, worker, mrml_package, tmp_path):
    """The Method group's Shapley choice: the worker explains with the Shapley grids whatever the grid preset, the
    run records the estimator, and Export results writes run.json and the results file saying so."""
    import json

    from DiDALib.engine.estimators import SHAPLEY_GRIDS, Shapley, shapley_passes
    from DiDALib.io.results import load_results
    from DiDALib.mrml.export import export_session
    from DiDALib.mrml.session import ExplainSession

    volume = fixtures.make_test_volume(env, n_bscans=1)
    settings, indices = choices.run_choices(_parameters(volume, estimator="shapley", gridPreset="evidence"),
                                            current=False)
    assert settings["grids"] == list(SHAPLEY_GRIDS) and settings["estimator"] == "shapley"
    session = ExplainSession(env.scene, volume, worker, mrml_package, {**settings, "device": "cpu", "batch_size": 64},
                             classes=settings["classes"])
    assert session.run_blocking(indices, timeout=240) == "complete", session.error
    result = session.explanation.results[0]
    assert result.estimator == "shapley" and result.grids == SHAPLEY_GRIDS and set(result.stderr) == set(SHAPLEY_GRIDS)
    assert session.run.setting("Estimator") == "shapley"
    out = export_session(tmp_path / "export", session, figures=False, report=False)
    run = json.loads((out / "run.json").read_text())
    passes = shapley_passes(SHAPLEY_GRIDS, Shapley().counts(SHAPLEY_GRIDS))
    assert run["estimator"] == "shapley" and run["masked_images_per_bscan"] == passes - 1
    assert run["shapley"]["stderr"]["largest"] > 0
    assert load_results(out / "dida_results.npz").results[0].estimator == "shapley"


def test_model_texts_and_overlay_memory(env, mrml_package, tmp_path):
    assert choices.describe_model(mrml_package).startswith("DiDA test model (random weights): 4 classes")
    assert "not for clinical use" in choices.describe_model(mrml_package)
    assert choices.describe_model(tmp_path).startswith("Model problem:")
    volume = fixtures.make_test_volume(env, n_bscans=2)
    assert choices.overlay_memory(volume, "top3", mrml_package) == 2 * 48 * 64 * 5 * 3
    assert choices.overlay_memory(volume, "all", mrml_package) == 2 * 48 * 64 * 5 * 4
    assert choices.describe_volume(volume).startswith("2 B-scan(s) of 48 x 64 pixels")
    with pytest.raises(ValueError, match="Choose a model package folder"):
        choices.model_folder(False, "")


def test_controller_continues_a_run_and_forgets_it_with_the_scene(env, worker, mrml_package):
    shown = []
    controller = DiDAController(lambda: env.layout_node, lambda: (0.5, "both", True), worker_factory=lambda: worker,
                                process_events=lambda: shown.append(True))
    volume = fixtures.make_test_volume(env, n_bscans=3)
    model = ModelRequest(str(mrml_package))
    session = controller.start(volume, model, fixtures.TEST_SETTINGS, [1], current=True)
    assert controller.focus == 1 and controller.running
    while controller.poll():
        pass
    assert controller.device() == ("cpu", "cpu")
    run = controller.newly_shown()
    assert run is session.run and controller.newly_shown() is None, "a run is to be shown once per start"
    controller.show(run, bscan=1)
    assert shown and controller.views.attached and controller.views.bscan == 1 and controller.views.opacity == 0.5
    assert controller.start(volume, model, fixtures.TEST_SETTINGS, [0, 2]) is session, "the run was not continued"
    assert controller.focus is None
    while controller.poll():
        pass
    assert session.run.finished == [0, 1, 2]
    other = controller.start(volume, model, {**fixtures.TEST_SETTINGS, "fill": "mean"}, [0])
    assert other is not session and session.closed, "other settings must make a new run"
    assert session.run is None and len(find_runs(env.scene, volume)) == 1, "the first run left the scene"
    controller.cancel()
    env.layout_node.SetViewArrangement(env.layout_node.SlicerLayoutOneUpRedSliceView)
    assert not controller.views.attached
    show_layout(env.layout_node)
    assert controller.reshow(volume) and controller.views.attached, "the DiDA View came back without its run"
    controller.forget()
    assert controller.session is None and controller.views is None and other.closed
    assert controller.worker is worker and worker.alive, "the worker must stay warm after the scene closed"


RESOURCES = ROOT / "DiDA" / "Resources"


def _installed(monkeypatch, versions: dict[str, str]) -> None:
    def version(name):
        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_reading_and_explaining_are_two_installs(monkeypatch, tmp_path):
    """Reading OCT asks for eyepy, pydicom and pillow, never for PyTorch; explaining asks for PyTorch (through the
    PyTorch extension) and timm and the rest. On a fresh Slicer (nothing installed) each says so in one question."""
    _installed(monkeypatch, {})
    read = requirements.reading_plan(RESOURCES, OCT / "heyex_synthetic_10x40x50.vol")
    assert read.torch == [] and {requirements.name_of(r) for r in read.packages} >= {"eyepy", "pydicom", "pillow"}
    assert not {"torch", "torchvision", "timm"} & {requirements.name_of(r) for r in read.packages}
    assert "read" in read.question() and "PyTorch" not in read.question()
    explain = requirements.explaining_plan(RESOURCES)
    assert explain.torch == ["torch>=2.4", "torchvision>=0.19"] and "timm" in " ".join(explain.packages)
    assert "PyTorch extension" in explain.question()
    _installed(monkeypatch, {"eyepy": "0.21.0", "pydicom": "3.0.2", "pillow": "12.2.0", "packaging": "26.2"})
    assert requirements.reading_plan(RESOURCES, OCT / "heyex_synthetic_10x40x50.vol").empty


def test_a_vendor_file_asks_for_oct_converter_once(monkeypatch, tmp_path):
    """A Topcon, Zeiss, Bioptigen or Optovue file needs OCT-Converter: named in the one question, with what it
    brings; a Heidelberg file never asks for it, and an installed OCT-Converter is not asked for again."""
    from DiDALib.io.registry import SUPPORTED_FORMATS

    through = {name for name, info in SUPPORTED_FORMATS.items() if "OCT-Converter" in info.description}
    assert set(requirements.VENDOR_FORMATS) == through
    base = {"eyepy": "0.21.0", "pydicom": "3.0.2", "pillow": "12.2.0", "packaging": "26.2"}
    _installed(monkeypatch, base)
    for name in ("scan.fda", "scan.fds", "Macular Cube 512x128_z.img", "scan.oct"):
        (tmp_path / name).write_bytes(b"\0" * 64)
        plan = requirements.reading_plan(RESOURCES, tmp_path / name)
        assert plan.packages == [requirements.OCT_CONVERTER] and plan.torch == [], name
        assert "needs OCT-Converter" in plan.question() and plan.question().count("?") == 1, plan.question()
    assert requirements.reading_plan(RESOURCES, OCT / "spectralis_linescan_real.vol").empty
    _installed(monkeypatch, {**base, "oct-converter": "0.7.0"})
    assert requirements.reading_plan(RESOURCES, tmp_path / "scan.fda").empty
