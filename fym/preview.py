"""Previews during training: a few frames sampled with the LoRA as it is now, from a fixed noise.

A preview is a short Euler run of the flow-matching model (no guidance, PREVIEW_STEPS steps) on the first
frames of the reference's size, so it costs a few forward passes; the host turns the latent into pixels
cheaply (ComfyUI: its latent-to-RGB factors, no VAE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .config import PREVIEW_STEPS
from .host import Condition, WanHost, shifted_noise_level, unshifted_noise_level


@dataclass
class Preview:
    """Previews of a training run.

    Args:
        every: steps between previews (0 = none).
        show: called with the step and the sampled latent (1, C, K, H, W).
        condition: what to sample; None = the training clip's condition (the reconstruction).
        frames: latent frames sampled (the first `frames` of the clip; 1 for the spatial stage).
        seed: seed of the fixed noise, so successive previews differ only by the LoRA.
    """

    every: int
    show: Callable[[int, torch.Tensor], None]
    condition: Condition | None = None
    frames: int = 1
    seed: int = 0


def sample(
    host: WanHost,
    reference: torch.Tensor,
    condition: Condition,
    steps: int,
    shift: float,
    seed: int,
    noise_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Sample a clip shaped like `reference` (1, C, K, H, W) from a seeded noise in `steps` Euler steps on Wan's
    shifted schedule; returns the latent (1, C, K, H, W). A GIVEN_CLEAN first frame is kept as the reference's.

    The model runs only inside noise_range (low, high), a Wan 2.2 A14B expert's: below 1 the run starts from the
    reference noised to `high` (what the expert gets from the other one); above 0 its last step goes from `low`
    straight to 0 (the expert's estimate of the clean clip)."""
    low, high = noise_range
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed)).to(reference)
    u = torch.linspace(unshifted_noise_level(high, shift), unshifted_noise_level(low, shift), steps + 1)
    sigmas = shifted_noise_level(u, shift).tolist()
    if low > 0:
        sigmas.append(0.0)
    x = condition.noised(reference, noise, sigmas[0])
    with torch.no_grad():
        for sigma, following in zip(sigmas[:-1], sigmas[1:], strict=True):
            velocity = host.velocity(x, torch.full((1,), sigma, device=x.device), condition, None)
            x = condition.noised(reference, x + (following - sigma) * velocity, 1.0)  # re-keeps a clean frame 0
    return x


def preview_latent(
    host: WanHost,
    latents: torch.Tensor,
    condition: Condition,
    preview: Preview,
    shift: float,
    noise_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The preview of the current LoRA: the first `preview.frames` latent frames of the training clip
    (spatial stage: its first frame), sampled with the preview's condition inside the stage's noise_range
    (1, C, K, H, W)."""
    spatial = latents.shape[2] == 1
    reference = latents[:1] if spatial else latents[:, :, : preview.frames]
    condition = preview.condition or condition
    condition = condition.ungiven() if spatial else condition.select(range(reference.shape[2]))
    return sample(host, reference, condition, PREVIEW_STEPS, shift, preview.seed, noise_range)
