"""Shared fixtures for the CPU unit tests: a tiny real Wan 2.1 transformer (diffusers) and a reference clip."""

import pytest
import torch

from fym.demo import synthetic_clip
from fym.diffusers_host import DiffusersWan, tiny_wan


@pytest.fixture
def host():
    return DiffusersWan(tiny_wan(num_layers=2, num_heads=4, head_dim=32, seed=0))


@pytest.fixture
def clip():
    """(1, 16, 7, 8, 8) latent video of a moving square."""
    return synthetic_clip(frames=7, size=8, seed=0)


@pytest.fixture
def context(host):
    return torch.randn(1, 8, host.model.config.text_dim, generator=torch.Generator().manual_seed(1))
