"""Shared pytest configuration.

Async tests run on anyio's asyncio backend. Hypothesis runs a modest number of
examples by default; ``HYPOTHESIS_PROFILE=thorough`` runs many more.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("default", settings.get_profile("default"))
settings.register_profile("thorough", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
