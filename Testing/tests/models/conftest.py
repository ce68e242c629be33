"""Fixtures of the model tests: the third-party model files, built once per session (exporting takes seconds)."""

from __future__ import annotations

import pytest
from third_party import ThirdParty, write_all


@pytest.fixture(scope="session")
def third_party(tmp_path_factory) -> ThirdParty:
    return write_all(tmp_path_factory.mktemp("third_party"))
