"""Shared fixtures for the CPU unit tests: a tiny real Wan 2.1 transformer (diffusers) and a reference clip."""

import pytest
import torch

from fym.diffusers_host import DiffusersWan, tiny_wan


def synthetic_clip(frames: int, size: int, seed: int) -> torch.Tensor:
    """A bright square moving diagonally over a fixed random background, in latent space: (1, 16, T, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    background = torch.randn(16, 1, size, size, generator=generator) * 0.5
    signature = torch.randn(16, 1, 1, 1, generator=generator).sign() * 1.5
    clip = background.repeat(1, frames, 1, 1).clone()
    side = size // 4
    for t in range(frames):
        offset = round(t * (size - side) / max(frames - 1, 1))
        clip[:, t, offset : offset + side, offset : offset + side] = signature[:, 0]
    return clip[None]


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
