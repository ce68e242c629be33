"""The worker process the MRML tests share: started by the first test that runs DiDA, kept warm for the others
(as the Slicer module keeps it), and closed at the end (its folder and every job folder removed)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def worker(tmp_path_factory):
    from DiDALib.worker.client import WorkerClient

    client = WorkerClient(home=tmp_path_factory.mktemp("worker"))
    yield client
    client.close()
    assert not client.home.exists(), "closing the worker left its folder behind"
