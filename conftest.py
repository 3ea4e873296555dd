"""Doctests run in a fresh temporary directory, so examples may write files as users would."""

import pytest


@pytest.fixture(autouse=True)
def _doctests_in_a_temporary_directory(request, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
