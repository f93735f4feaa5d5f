"""Shared test set-up: headless pygame, and the shared/ folder that holds reference recordings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared/ folder beside the checkout; tests that need it skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (it is only beside the developers' checkouts)")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets run fastest on one torch thread and do not stall when the cores are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
