"""Fixtures shared by the engine tests."""

import pytest

from sava.data import bundled
from sava.models import load_bundled
from tests.device import DEVICE


@pytest.fixture(scope="module")
def model():
    """The default white-box target of the attack tests (a test file may define its own)."""
    return load_bundled("c3d-digits", device=DEVICE)


@pytest.fixture(scope="module")
def clips():
    """The digits test split, which ``model`` was trained for."""
    return bundled("digits", "test")
