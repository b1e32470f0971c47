"""The vendor fixture every loopback-vendor module shares: the module's own `served` (vendor, url)."""

from __future__ import annotations

from typing import Any

import pytest
from providers.fakes import FakeVendor


@pytest.fixture
def vendor(served: tuple[FakeVendor, Any]) -> FakeVendor:
    """The module's FakeVendor, its queued replies and recorded requests cleared for this test."""
    served[0].reset()
    return served[0]
