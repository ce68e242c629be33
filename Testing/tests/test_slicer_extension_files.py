"""The extension's packaging: the catalog entry, the CMake metadata and extension.s4ext agree, and the CMake files
configure (with Slicer absent: stopping at find_package(Slicer); with a stand-in Slicer package: shipping every
file of the module and of DiDALib where Slicer will look for them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Copies of Slicer's catalog-entry schema (Slicer/Slicer Schemas/) and of ExtensionsIndex's accepted categories.
SLICER_DATA = ROOT / "Testing" / "Data" / "slicer"
CMAKE = shutil.which("cmake")
RAW_PREFIX = re.compile(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/(.+)$")


def cmake_vars() -> dict[str, str]:
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', text))


def s4ext() -> dict[str, str]:
    out = {}
    for line in (ROOT / "extension.s4ext").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_catalog_entry_validates_against_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = SLICER_DATA / "slicer-extension-catalog-entry-schema-v1.0.2.json"
    entry = json.loads((ROOT / "DiDA.json").read_text(encoding="utf-8"))
    jsonschema.validate(entry, json.loads(schema_path.read_text(encoding="utf-8")))
    categories = (SLICER_DATA / "accepted-extension-categories.txt").read_text(encoding="utf-8").splitlines()
    assert entry["category"] in categories
    # ExtensionsIndex rules: the entry is not named Slicer*, the repository is.
    assert not (ROOT / "DiDA.json").stem.startswith("Slicer")
    assert re.search(r"/Slicer[^/]*?(\.git)?$", entry["scm_url"]), entry["scm_url"]


def test_metadata_agrees_across_cmake_s4ext_and_catalog_entry():
    cm, s4, entry = cmake_vars(), s4ext(), json.loads((ROOT / "DiDA.json").read_text(encoding="utf-8"))
    project = re.search(r"^project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text(), re.M).group(1)
    assert project == "DiDA" == (ROOT / "DiDA.json").stem
    depends = cm["EXTENSION_DEPENDS"].split()
    assert depends == ["PyTorch"] == entry["build_dependencies"] == s4["depends"].split()
    assert cm["EXTENSION_CATEGORY"] == entry["category"] == s4["category"]
    for key, s4key in (("HOMEPAGE", "homepage"), ("CONTRIBUTORS", "contributors"), ("DESCRIPTION", "description"),
                       ("ICONURL", "iconurl"), ("SCREENSHOTURLS", "screenshoturls")):
        assert cm[f"EXTENSION_{key}"] == s4[s4key], key
    assert s4["scmurl"] == entry["scm_url"]
    # The icon and screenshot URLs point at files of this repository.
    for url in [cm["EXTENSION_ICONURL"], *cm["EXTENSION_SCREENSHOTURLS"].split()]:
        path = ROOT / RAW_PREFIX.match(url).group(1)
        assert path.is_file(), f"{url} names {path}, which does not exist"
    shot = ROOT / RAW_PREFIX.match(cm["EXTENSION_SCREENSHOTURLS"].split()[0]).group(1)
    assert shot.stat().st_size < 500_000


def test_module_cmake_follows_the_template():
    text = (ROOT / "DiDA" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert (ROOT / "DiDA" / "Testing" / "CMakeLists.txt").read_text().strip() == "add_subdirectory(Python)"
    assert (ROOT / "DiDA" / "Testing" / "Python" / "CMakeLists.txt").is_file()
    assert "add_subdirectory(DiDA)" in (ROOT / "CMakeLists.txt").read_text()


@pytest.mark.skipif(CMAKE is None, reason="cmake is not installed")
def test_configure_without_slicer_stops_at_find_package(tmp_path):
    run = subprocess.run([CMAKE, "-S", str(ROOT), "-B", str(tmp_path / "build")], capture_output=True, text=True,
                         timeout=240)
    assert run.returncode != 0
    assert 'Could not find a package configuration file provided by "Slicer"' in run.stderr.replace("\n  ", " ")
    assert "cmake_minimum_required" not in run.stderr, "the installed CMake rejects the version range"


# A stand-in for Slicer's CMake package: the macros record what they are given, and compute where
# ctkMacroCompilePythonScript would copy each file (relative: <destination>/<path>; absolute: <destination>/<path
# relative to the current binary directory>).
FAKE_USE_SLICER = r"""
set(BUILD_TESTING ON)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.10/qt-scripted-modules")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")
set(RECORD "${CMAKE_BINARY_DIR}/slicer-macro-calls.txt")
file(WRITE "${RECORD}" "")
function(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  if(MY_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "Unknown keywords given to slicerMacroBuildScriptedModule(): ${MY_UNPARSED_ARGUMENTS}")
  endif()
  file(APPEND "${RECORD}" "MODULE ${MY_NAME} ${MY_WITH_GENERIC_TESTS}\n")
  # As ctkMacroCompilePythonScript (CTK as Slicer 5.10 and 5.12 pin it, CMake/ctkMacroCompilePythonScript.cmake):
  # the whole scripted-modules build folder is installed, whatever was put there.
  install(DIRECTORY "${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}/"
    DESTINATION "${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}" COMPONENT RuntimeLibraries USE_SOURCE_PERMISSIONS)
  foreach(kind SCRIPTS RESOURCES)
    foreach(f ${MY_${kind}})
      if(IS_ABSOLUTE "${f}")
        set(src "${f}")
        file(RELATIVE_PATH tgt "${CMAKE_CURRENT_BINARY_DIR}" "${f}")
      else()
        set(src "${CMAKE_CURRENT_SOURCE_DIR}/${f}")
        set(tgt "${f}")
      endif()
      if(NOT EXISTS "${src}")
        message(FATAL_ERROR "slicerMacroBuildScriptedModule(${kind}) given nonexistent file '${f}'")
      endif()
      file(APPEND "${RECORD}" "${kind} ${src}|${tgt}\n")
    endforeach()
  endforeach()
endfunction()
function(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT;TESTNAME_PREFIX" "SLICER_ARGS" ${ARGN})
  file(APPEND "${RECORD}" "UNITTEST ${CMAKE_CURRENT_SOURCE_DIR}/${MY_SCRIPT}\n")
endfunction()
"""


@pytest.mark.skipif(CMAKE is None, reason="cmake is not installed")
def test_configure_with_a_stand_in_slicer_ships_module_and_library(tmp_path):
    fake = tmp_path / "FakeSlicer"
    fake.mkdir()
    (fake / "UseSlicer.cmake").write_text(FAKE_USE_SLICER)
    (fake / "Empty.cmake").write_text("")
    (fake / "SlicerConfig.cmake").write_text(
        'set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake")\n'
        'set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/Empty.cmake")\n'
        'set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/Empty.cmake")\n')
    build = tmp_path / "build"
    run = subprocess.run([CMAKE, "-S", str(ROOT), "-B", str(build), f"-DSlicer_DIR={fake}"], capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    lines = (build / "slicer-macro-calls.txt").read_text().splitlines()
    assert "MODULE DiDA TRUE" in lines
    shipped = {}
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind in ("SCRIPTS", "RESOURCES"):
            src, tgt = rest.split("|")
            assert not tgt.startswith(".."), f"{src} would be copied outside the scripted modules folder"
            shipped[tgt] = Path(src)
    library = {f"DiDALib/{p.relative_to(ROOT / 'DiDALib').as_posix()}": p for p in (ROOT / "DiDALib").rglob("*.py")}
    assert any("/" in t.removeprefix("DiDALib/") for t in library), "the library has subpackages to ship"
    helpers = {f"DiDASlicer/{p.name}": p for p in (ROOT / "DiDA" / "DiDASlicer").glob("*.py")}
    expected = {"DiDA.py", *library, *helpers, "Resources/Icons/DiDA.png", "Resources/UI/DiDA.ui",
                "Resources/requirements-read.txt", "Resources/requirements-explain.txt"}
    assert expected <= set(shipped), f"not shipped: {sorted(expected - set(shipped))}"
    for tgt, original in {**library, **helpers}.items():
        assert shipped[tgt].read_bytes() == original.read_bytes(), f"{tgt} is not a copy of {original}"
    assert f"UNITTEST {ROOT / 'DiDA' / 'DiDA.py'}" in lines
    # The demo model lands beside DiDALib, where DiDALib.models.demo_model_path() looks.
    package = ROOT / "Resources" / "Models" / "kermany-oct" / "model.json"
    demo = ["model.json", json.loads(package.read_text()).get("weights", "model.safetensors")] \
        if package.exists() else []
    demo = sorted(demo + (["MODEL_CARD.md"] if demo and (package.parent / "MODEL_CARD.md").exists() else []))
    copied = build / "lib/Slicer-5.10/qt-scripted-modules/Resources/Models/kermany-oct"
    assert sorted(p.name for p in copied.glob("*")) == demo
    for name in demo:
        assert (copied / name).read_bytes() == (package.parent / name).read_bytes()
    # The installed layout: every shipped file at its place under the scripted-modules folder, the demo model beside
    # DiDALib. Each subpackage imports there, and the demo model is found, without the source checkout on the path.
    installed = tmp_path / "installed"
    for tgt, src in shipped.items():
        (installed / tgt).parent.mkdir(parents=True, exist_ok=True)
        (installed / tgt).write_bytes(src.read_bytes())
    shutil.copytree(copied, installed / "Resources" / "Models" / "kermany-oct")
    # What CTK installs: the demo model once (it was installed twice), and the stored result DiDATest shows
    # without torch (20 KB: it is packaged, so DiDATest runs in an installed extension too).
    run = subprocess.run([CMAKE, "--install", str(build), "--prefix", str(tmp_path / "prefix")], capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    done = [line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith(("-- Installing", "-- Up-to"))]
    twice = sorted({p for p in done if done.count(p) > 1})
    assert not twice, f"installed twice: {twice}"
    modules = tmp_path / "prefix" / "lib/Slicer-5.10/qt-scripted-modules"
    assert sorted(p.name for p in (modules / "Resources" / "Models" / "kermany-oct").iterdir()) == demo
    assert (modules / "Resources" / "Testing" / "dida_results.npz").is_file()
    stored = build / "lib/Slicer-5.10/qt-scripted-modules/Resources/Testing/dida_results.npz"
    assert stored.read_bytes() == (ROOT / "Testing" / "Data" / "dida_results.npz").read_bytes()
    (installed / "Resources" / "Testing").mkdir()
    shutil.copy(stored, installed / "Resources" / "Testing")
    code = ("import DiDALib, DiDALib.engine.core, DiDALib.maps.mixing, DiDALib.io.registry, DiDALib.models.package, "
            "DiDALib.mrml.layout, DiDALib.reports.figures, DiDALib.pipeline, DiDALib.cli, DiDALib.worker.server; "
            "from DiDALib.models.package import demo_model_path; print(DiDALib.__file__); print(demo_model_path()); "
            "from DiDALib.mrml.selftest.fixtures import stored_results_path; print(stored_results_path())")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {[str(installed)]!r} + "
                          f"{[p for p in sys.path if 'site-packages' in p]!r}; {code}"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=240)
    assert run.returncode == 0, run.stderr
    where, demo_path, stored_path = run.stdout.split()
    assert Path(where) == installed / "DiDALib" / "__init__.py"
    assert Path(demo_path) == installed / "Resources" / "Models" / "kermany-oct"
    assert Path(stored_path) == installed / "Resources" / "Testing" / "dida_results.npz"


def test_the_module_runs_from_a_clone(tmp_path):
    """The README's clone path: Edit > Application Settings > Modules > Additional module paths gets <clone>/DiDA,
    and Slicer puts only that folder on sys.path (Base/QTGUI/qSlicerScriptedLoadableModuleFactory.cxx,
    ctkFactoryScriptedItem::load). DiDA.py imports DiDASlicer first, which finds DiDALib beside the module folder,
    so the module and its worker import this checkout's DiDALib, and no torch."""
    code = ("import sys; import DiDASlicer, DiDALib.mrml.controller, DiDALib.mrml.choices as c; print(DiDALib.__file__);"
            " print(c.describe_model(c.model_folder(True, None))); print('torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    site = [p for p in sys.path if "site-packages" in p]
    run = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:] = {[str(ROOT / 'DiDA')]!r} + "
                          f"{site!r} + sys.path; {code}"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    where, described, torch = run.stdout.splitlines()
    assert Path(where) == ROOT / "DiDALib" / "__init__.py" and "classes" in described and torch == "False"
