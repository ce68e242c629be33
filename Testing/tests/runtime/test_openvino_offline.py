"""The OpenVINO runtime sends nothing over the network: importing ``openvino`` imports its model converter, whose
telemetry (``openvino_telemetry``) posts a usage event from a forked process unless the user opted out. DiDA sends
nothing at run time, and in the worker that fork copies the lock of the thread reading stdin: the child hangs and
the worker never ends (test_mrml_worker's vanished session found it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = r"""
import multiprocessing.process as mpp, time, urllib.request
started = []
mpp.BaseProcess.start = lambda self: started.append(self)
urllib.request.urlopen = lambda *a, **k: started.append("urlopen")
from DiDALib.runtime.openvino_runtime import import_openvino
ov = import_openvino()
assert hasattr(ov, "Core")
time.sleep(1.5)  # the telemetry sends from a thread pool, after the import returned
print(len(started))
"""


def test_importing_openvino_sends_nothing_and_forks_nothing(tmp_path):
    if importlib.util.find_spec("openvino") is None:  # not imported here: this process would send the event
        pytest.skip("OpenVINO is an optional runtime ('fast' and 'test' extras)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}  # no opt-out file of the user's
    env.pop("CI", None)  # openvino_telemetry stays quiet on CI machines only
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "0", "importing openvino started a process or a network request"
