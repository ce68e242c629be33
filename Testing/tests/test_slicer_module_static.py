"""Static checks of what only Slicer can run: the module file against its Qt Designer file and the parameter node
wrapper's rules (Slicer/Slicer Base/Python/slicer/parameterNodeWrapper/guiConnectors.py), without importing Qt."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from slicer_imports import imported as _imported
from slicer_imports import slicer_path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "DiDA" / "DiDA.py"
#: The module's own helpers beside DiDA.py (they need the Slicer application); the parameter node's enums live here.
HELPERS = ROOT / "DiDA" / "DiDASlicer"
PARAMETERS = HELPERS / "parameters.py"
UI = ROOT / "DiDA" / "Resources" / "UI" / "DiDA.ui"
#: The two sets the module installs on first use: reading OCT, and explaining (besides PyTorch).
REQUIREMENTS = (ROOT / "DiDA" / "Resources" / "requirements-read.txt",
                ROOT / "DiDA" / "Resources" / "requirements-explain.txt")


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI).getroot()


def ui_widgets(ui) -> dict[str, str]:
    """Every widget of the .ui: name -> class."""
    return {w.get("name"): w.get("class") for w in ui.iter("widget")}


def ui_bindings(ui) -> dict[str, str]:
    """Widgets bound to the parameter node: parameter name -> widget class."""
    out = {}
    for w in ui.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.find("string").text] = w.get("class")
    return out


def class_def(tree, name) -> ast.ClassDef:
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    assert found, f"DiDA.py has no class {name}"
    return found[0]


def parameter_fields(tree) -> dict[str, ast.expr]:
    node = class_def(tree, "DiDAParameterNode")
    return {s.target.id: s.annotation for s in node.body if isinstance(s, ast.AnnAssign)}


def enum_classes(tree, names: bool = False) -> dict[str, list[str]]:
    """Enums of the parameter node (DiDASlicer/parameters.py, imported by DiDA.py): name -> member values (or
    member names, which differ where a value is not an identifier, e.g. ``log_odds = "log-odds"``)."""
    out = {}
    for node in ast.parse(PARAMETERS.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "enum.Enum" for b in node.bases):
            out[node.name] = [s.targets[0].id if names else s.value.value for s in node.body
                              if isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant)]
    return out


@pytest.mark.parametrize("version", [(3, 10), (3, 11), (3, 12)])
def test_module_and_library_parse_on_python_3_10_and_later(version):
    for path in [MODULE, *sorted(HELPERS.glob("*.py")), *sorted((ROOT / "DiDALib").rglob("*.py"))]:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=version)


def test_module_follows_the_scripted_module_pattern(tree):
    names = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    for name in ("DiDA", "DiDAParameterNode", "DiDAWidget", "DiDALogic", "DiDATest", "DiDAFileReader"):
        assert name in names, f"DiDA.py lacks {name}"
    decorators = [ast.unparse(d) for d in class_def(tree, "DiDAParameterNode").decorator_list]
    assert decorators == ["parameterNodeWrapper"]
    reader = {f.name for f in class_def(tree, "DiDAFileReader").body if isinstance(f, ast.FunctionDef)}
    assert {"description", "fileType", "extensions", "canLoadFileConfidence", "load"} <= reader


def test_every_widget_the_code_names_exists_in_the_ui(tree, ui):
    named = {n.attr for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "ui"}
    missing = sorted(named - set(ui_widgets(ui)))
    assert not missing, f"DiDA.py uses widgets that DiDA.ui does not have: {missing}"
    assert len(named) >= 10


def test_every_bound_parameter_exists_on_the_parameter_node(tree, ui):
    fields = parameter_fields(tree)
    bound = ui_bindings(ui)
    missing = sorted(set(bound) - set(fields))
    assert not missing, f"DiDA.ui binds parameters that DiDAParameterNode lacks: {missing}"
    unbound = sorted(set(fields) - set(bound) - set(code_wired(tree)))
    assert not unbound, f"parameters without a widget: {unbound}"


def code_wired(tree) -> tuple[str, ...]:
    """Parameters whose widgets DiDA.py fills and reads itself (``CODE_WIRED``)."""
    found = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "CODE_WIRED"]
    return tuple(ast.literal_eval(found[0])) if found else ()


def test_code_wired_parameters_are_read_and_written_by_the_widget(tree, ui):
    """Compare's class combo boxes list the shown run's classes: DiDA.py fills them and writes the choice back."""
    fields = parameter_fields(tree)
    text = MODULE.read_text(encoding="utf-8")
    assert code_wired(tree) == ("compareClassA", "compareClassB")
    for name in code_wired(tree):
        assert ast.unparse(fields[name]) == "str", name
        box = f"{name}ComboBox"
        assert ui_widgets(ui).get(box) == "QComboBox", f"DiDA.ui has no combo box {box}"
        assert f"p.{name}" in text and f"self._parameterNode.{name} = self.ui.{box}.currentText" in text, name
    assert ui_bindings(ui).get("compareOn") == "QCheckBox"


def test_bound_widgets_have_a_gui_connector_for_their_type(tree, ui):
    """The pairs that slicer.parameterNodeWrapper's connectors accept (otherwise connectGui raises in Slicer)."""
    fields = parameter_fields(tree)
    enums = enum_classes(tree)
    for name, widget in ui_bindings(ui).items():
        annotation = ast.unparse(fields[name])
        if widget == "QComboBox":
            ok = annotation in enums or "Choice(" in annotation
        elif widget == "ctkSliderWidget":
            ok = annotation.startswith("Annotated[float") and "WithinRange(" in annotation  # bounded float only
        elif widget == "qMRMLNodeComboBox":
            ok = annotation.startswith("vtkMRML")
        elif widget == "QSpinBox":  # guiConnectors: an int, bounded by Minimum/Maximum/WithinRange if annotated
            bounded = r"Annotated\[int, (Minimum|Maximum|WithinRange)\(.*\)\]"
            ok = annotation == "int" or re.fullmatch(bounded, annotation)
        else:
            ok = annotation == {"QCheckBox": "bool", "QLineEdit": "str", "ctkPathLineEdit": "Path"}.get(widget)
        assert ok, f"parameter {name}: {annotation} cannot be bound to a {widget}"


def test_enum_labels_cover_every_member(tree):
    parameters = ast.parse(PARAMETERS.read_text(encoding="utf-8"))
    for name, values in enum_classes(tree).items():
        label = [f for f in class_def(parameters, name).body if isinstance(f, ast.FunctionDef) and f.name == "label"]
        assert label, f"{name} has no label(): the combo box would show raw names"
        keys = [k.value for k in ast.walk(label[0]) if isinstance(k, ast.Dict) for k in k.keys]
        assert sorted(keys) == sorted(values), f"{name}.label() covers {keys}, members are {values}"


def test_parameter_defaults_are_members_and_in_range(tree):
    enums = enum_classes(tree, names=True)
    node = class_def(tree, "DiDAParameterNode")
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            annotation = ast.unparse(stmt.annotation)
            if annotation in enums:
                assert ast.unparse(stmt.value).split(".")[0] == annotation
                assert ast.unparse(stmt.value).split(".")[1] in enums[annotation]
            m = re.search(r"WithinRange\(([^,]+), ([^)]+)\)", annotation)
            if m:
                assert float(m.group(1)) <= stmt.value.value <= float(m.group(2))


def test_ui_declares_its_custom_widgets_and_is_the_module_widget(ui):
    declared = {c.find("class").text for c in ui.iter("customwidget")}
    used = {cls for cls in ui_widgets(ui).values() if cls.startswith(("qMRML", "ctk"))}
    assert used <= declared, f"custom widgets used but not declared: {sorted(used - declared)}"
    assert ui.find("class").text == "DiDA" and ui.find("widget").get("class") == "qMRMLWidget"
    receivers = {c.find("receiver").text for c in ui.iter("connection")
                 if c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"}
    node_boxes = {n for n, cls in ui_widgets(ui).items() if cls == "qMRMLNodeComboBox"}
    assert node_boxes <= receivers, "a node selector does not get the scene"


def test_resources_the_module_loads_exist(tree):
    text = MODULE.read_text(encoding="utf-8")
    for rel in re.findall(r'resourcePath\("([^"]+)"\)', text):
        assert (ROOT / "DiDA" / "Resources" / rel).is_file(), rel
    for rel in re.findall(r'"(Resources/[^"]+\.(?:png|ui|txt))"', text):
        assert (ROOT / "DiDA" / rel).is_file(), rel
    assert (ROOT / "DiDA" / "Resources" / "Icons" / "DiDA.png").stat().st_size < 100_000


def test_requirements_cover_the_library_imports():
    """What DiDALib imports and Slicer does not ship is in a requirements file (torch comes from the PyTorch
    extension; numpy, SimpleITK, vtk and slicer are Slicer's own). DiDALib/cli/ serves only the command line (tqdm,
    onnx for dida package), DiDALib/audit/ only dida audit (Ray: the 'audit' extra) and DiDALib/evaluation/ the
    faithfulness benchmark and tests (captum, grad-cam: the 'test' extra); OCT-Converter is the optional 'vendors'
    extra, whose reader says how to install it, and OpenVINO a runtime of the optional 'fast' extra that runtime
    'auto' skips, saying so, where it is missing."""
    from packaging.requirements import Requirement

    reqs = {Requirement(line).name.lower() for path in REQUIREMENTS for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    provided = {"torch", "torchvision", "numpy", "simpleitk", "vtk", "vtkmodules", "slicer"}
    optional = {"oct_converter", "openvino"}  # OpenVINO: a runtime that 'auto' tries where it is installed
    distribution = {"pil": "pillow", "yaml": "pyyaml"}
    imported = set()
    for path in (ROOT / "DiDALib").rglob("*.py"):
        if {"cli", "audit", "evaluation"} & set(path.relative_to(ROOT / "DiDALib").parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "DiDALib"} - optional
    needed = {distribution.get(m.lower(), m.lower()) for m in third_party} - provided
    assert needed <= reqs, f"missing from the requirements files: {sorted(needed - reqs)}"
    assert not reqs & {"torch", "torchvision", "numpy", "simpleitk"}, "never pip-install over Slicer's own packages"
    read = {Requirement(line).name.lower() for line in REQUIREMENTS[0].read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert read == {"eyepy", "pydicom", "pillow", "packaging"}, f"reading OCT needs {sorted(read)}: no more"


def test_bscan_range_cannot_go_below_zero(tree):
    """Without a Minimum, Slicer's QSpinBox connector opens the spin box down to -2**31
    (parameterNodeWrapper/guiConnectors.py, QSliderOrSpinBoxToIntConnector)."""
    fields = parameter_fields(tree)
    for name in ("firstBScan", "lastBScan"):
        assert ast.unparse(fields[name]) == "Annotated[int, Minimum(0)]", name


def test_nothing_on_the_slicer_path_starts_threads():
    """PythonQt holds the GIL while Qt idles: the engine runs in DiDA's worker process, and nothing the module
    imports brings in threads (the worker's server, which reads cancel requests in a thread, runs elsewhere)."""
    path = slicer_path()
    assert "DiDALib.worker.client" in path and "DiDALib.mrml.session" in path, sorted(path)
    assert "DiDALib.worker.server" not in path, "the module imports the worker's server"
    assert "DiDALib.mrml.background" not in path and not (ROOT / "DiDALib" / "mrml" / "background.py").exists()
    forbidden = {"threading", "_thread", "concurrent.futures", "multiprocessing", "queue"}
    # io.signals (the staged write of Export results) asks threading only which thread it is on, never starts one.
    allowed = {"DiDALib.io.signals": {"threading"}}
    uses = {ast.unparse(n) for n in ast.walk(ast.parse((ROOT / "DiDALib" / "io" / "signals.py").read_text()))
            if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "threading"}
    assert uses <= {"threading.current_thread", "threading.main_thread"}, uses
    offenders = {name: sorted(imports & forbidden - allowed.get(name, set())) for name, imports in path.items()
                 if imports & forbidden - allowed.get(name, set())}
    assert not offenders, f"on the Slicer path: {offenders}"
    assert "threading" in _imported(ROOT / "DiDALib" / "worker" / "server.py", "DiDALib.worker"), \
        "this check would not see a threading import"


def test_slicer_packaging_is_imported_not_probed():
    """``slicer.packaging`` (Slicer 5.12+) is not imported by ``import slicer``: hasattr(slicer, "packaging") is
    False until someone imports it, so the module imports it and falls back on ImportError."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in (MODULE, *sorted(HELPERS.glob("*.py")))]
    probes = [n for t in trees for n in ast.walk(t) if isinstance(n, ast.Call) and ast.unparse(n.func) == "hasattr"
              and "packaging" in ast.unparse(n)]
    assert not probes, [ast.unparse(p) for p in probes]
    guarded = [t for tree in trees for t in ast.walk(tree) if isinstance(t, ast.Try)
               and any(isinstance(n, ast.Import) and n.names[0].name == "slicer.packaging" for n in t.body)
               and any(ast.unparse(h.type) == "ImportError" for h in t.handlers)]
    assert guarded, "no `import slicer.packaging` guarded by `except ImportError`"


def test_the_file_reader_asks_the_content_rule(tree):
    reader = class_def(tree, "DiDAFileReader")
    method = next(f for f in reader.body if isinstance(f, ast.FunctionDef) and f.name == "canLoadFileConfidence")
    assert "file_confidence(filePath)" in ast.unparse(method), "the reader does not use DiDALib.mrml.reader"
    assert "detect_format" not in ast.unparse(method), "the reader decides by extension again"


def test_dida_py_stays_a_thin_module():
    """The project's size rule: logic that is not Qt lives in DiDALib (tested on slicer-core)."""
    lines = MODULE.read_text(encoding="utf-8").count("\n")
    assert lines <= 550, f"DiDA.py has {lines} lines"


def test_the_self_test_stays_apart_from_the_code_it_checks():
    """DiDALib/mrml/selftest holds what DiDATest and CI share; no product module imports it (DiDA.py only inside
    DiDATest), and its modules import each other one way (a cycle, as scenarios <-> worker_checks was, breaks
    when a module is imported first from the other side)."""
    library = ROOT / "DiDALib"
    selftest = library / "mrml" / "selftest"
    modules = {}
    for path in library.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        modules[name] = (path, _imported(path, package))
    users = sorted(n for n, (path, imports) in modules.items() if selftest not in path.parents
                   and any(i.startswith("DiDALib.mrml.selftest") for i in imports))
    assert not users, f"product modules import the self-test: {users}"
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    outside = [n for c in tree.body if not (isinstance(c, ast.ClassDef) and c.name == "DiDATest")
               for n in ast.walk(c) if isinstance(n, ast.ImportFrom) and "selftest" in (n.module or "")]
    assert not outside, "DiDA.py imports the self-test outside DiDATest"
    inside = {n: {i for i in imports if i in modules and i.startswith("DiDALib.mrml.selftest.")} - {n}
              for n, (path, imports) in modules.items() if selftest in path.parents}
    assert len(inside) >= 5, sorted(inside)

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in inside.get(start, ()):
            if nxt == target or (nxt not in seen and (seen.add(nxt) or reaches(nxt, target, seen))):
                return True
        return False

    cycles = sorted(n for n in inside if reaches(n, n, set()))
    assert not cycles, f"import cycles in the self-test: {cycles}"


def _calls(function: ast.FunctionDef) -> set[str]:
    return {ast.unparse(n.func) for n in ast.walk(function) if isinstance(n, ast.Call)}


def _method(tree, cls: str, name: str) -> ast.FunctionDef:
    return next(f for f in class_def(tree, cls).body if isinstance(f, ast.FunctionDef) and f.name == name)


def test_loading_a_file_never_installs_pytorch(tree):
    """Reading OCT needs eyepy, pydicom and pillow only: the file reader and Load OCT file... ask for the reading
    set (and OCT-Converter where the file needs it); PyTorch and the rest are asked for only to explain."""
    for cls, name in (("DiDAFileReader", "load"), ("DiDAWidget", "onLoadOCT")):
        calls = _calls(_method(tree, cls, name))
        assert "DiDALogic.ensureReading" in {c.rpartition("(")[0] or c for c in calls}, f"{cls}.{name}: {calls}"
        assert not any("Explaining" in c or "ensureDependencies" in c for c in calls), f"{cls}.{name}: {calls}"
    assert "DiDALogic.ensureExplaining" in _calls(_method(tree, "DiDAWidget", "_explain"))


def test_the_layout_manager_is_never_used_unchecked():
    """``slicer.app.layoutManager()`` is None without a main window: Slicer's generic module tests start Slicer
    with --no-main-window (CMake/SlicerMacroBuildScriptedModule.cmake) and build the widget, and only the main window
    sets the layout manager (Base/QTApp/qSlicerMainWindow.cxx, qSlicerApplication::setLayoutManager). No attribute
    is read straight off the call: its result is held and checked first."""
    unchecked = []
    for path in (MODULE, *sorted(HELPERS.glob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call) \
                    and ast.unparse(node.value.func).endswith("app.layoutManager"):
                unchecked.append(f"{path.name}:{node.lineno}")
    assert not unchecked, f"layoutManager() used unchecked at {unchecked}"
