"""The narrow interface between the algorithm and a Wan implementation.

Two hosts implement it: `fym.diffusers_host.DiffusersWan` (diffusers' WanTransformer3DModel: CI and the
standalone API) and `nodes.wan_host.ComfyWan` (ComfyUI's WanModel). The algorithm is written once against it.

Tensor layout everywhere: latents (B, C, T, H, W), normalised as the model expects (C = 16, or 48 for Wan 2.2
TI2V 5B); what a clip is conditioned on is a `Condition` (a bare (B, L, text_dim) text tensor is accepted
wherever a Condition is); self-attention tokens are frame-major, token = t * (Hp * Wp) + row * Wp + col with
Hp = H / 2, Wp = W / 2 (Wan's 1x2x2 patches); a head h owns channels h * head_dim ... (h + 1) * head_dim - 1.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import nn

PROJECTIONS = ("q", "k", "v", "o")  # ComfyUI's names for the self-attention linears

# on_qk(layer, q, k): q and k are (B, S, heads, head_dim), after RoPE.
QKCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class WanShape:
    """What must match between a model, a head map and a LoRA file."""

    num_layers: int
    num_heads: int
    head_dim: int

    @property
    def dim(self) -> int:
        return self.num_heads * self.head_dim

    def as_dict(self) -> dict[str, int]:
        return {"num_layers": self.num_layers, "num_heads": self.num_heads, "head_dim": self.head_dim}


GIVEN_BY_CONCAT = "concat"  # Wan I2V (2.1 I2V, 2.2 A14B I2V): first frame in extra input channels, generated too
GIVEN_CLEAN = "clean"  # Wan 2.2 TI2V 5B: latent frame 0 enters clean at timestep 0 and is not generated


def shifted_noise_level(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's flow-matching shift of noise levels u in [0, 1]: shift * u / (1 + (shift - 1) * u)."""
    return shift * u / (1 + (shift - 1) * u)


def unshifted_noise_level(sigma: float, shift: float) -> float:
    """The inverse of shifted_noise_level: the u in [0, 1] that the shift takes to sigma."""
    return sigma / (shift - (shift - 1) * sigma)


def select_frames(video: torch.Tensor, frames: Sequence[int]) -> torch.Tensor:
    """Latent frames `frames` (K ints) of video (B, C, T, H, W): (B, C, K, H, W), cut by slices (no index tensor
    is copied to the device)."""
    return torch.cat([video[:, :, frame : frame + 1] for frame in frames], dim=2)


@dataclass(frozen=True)
class Condition:
    """What a clip is conditioned on besides its noisy latent.

    Args:
        text: (1, L, text_dim) caption embedding.
        per_frame: tensors (1, C, T, H, W) over the clip's T latent frames (e.g. the first-frame image and mask of
            an image-to-video model); `select` cuts them with the sampled frames.
        extras: host-specific conditioning passed on unchanged.
        first_frame: how latent frame 0 is given: None (text-to-video), GIVEN_BY_CONCAT or GIVEN_CLEAN.
    """

    text: torch.Tensor
    per_frame: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    first_frame: str | None = None

    @staticmethod
    def of(condition: Condition | torch.Tensor) -> Condition:
        """A Condition from a Condition or a bare text embedding (1, L, text_dim)."""
        return condition if isinstance(condition, Condition) else Condition(condition)

    def select(self, frames: Sequence[int]) -> Condition:
        """The condition of the clip's latent frames `frames` (K ints), in that order."""
        return replace(self, per_frame={name: select_frames(value, frames) for name, value in self.per_frame.items()})

    def ungiven(self) -> Condition:
        """The condition of one frame to generate, none given (spatial-stage single frames): the clip's last
        latent frame's, which a first-frame image leaves empty."""
        last = {name: value[:, :, -1:] for name, value in self.per_frame.items()}
        return replace(self, per_frame=last, first_frame=None)

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """x_t = sigma * noise + (1 - sigma) * x0 for x0, noise (B, C, T, H, W) and sigma (B,) or a number; a
        GIVEN_CLEAN first frame stays clean, as the sampler keeps it."""
        s = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device).reshape(-1, 1, 1, 1, 1)
        x_t = s * noise + (1 - s) * x0
        if self.first_frame == GIVEN_CLEAN:
            x_t = torch.cat([x0[:, :, :1], x_t[:, :, 1:]], dim=2)
        return x_t

    def to(self, device) -> Condition:
        return replace(self, text=self.text.to(device), per_frame={k: v.to(device) for k, v in self.per_frame.items()})


class RecentTables(OrderedDict):
    """RoPE tables kept on the device by the sets of frame positions they were made for, only the `keep` most
    recently used: a stage draws a new set most steps (one frame per part of the clip), so an unbounded cache
    would grow all run (about 1000 sets of several MiB each in 2000 steps at 81 frames)."""

    def __init__(self, keep: int = 4) -> None:
        super().__init__()
        self.keep = keep

    def get_or_make(self, key, make: Callable[[], object]):
        if key not in self:
            self[key] = make()
        self.move_to_end(key)
        while len(self) > self.keep:
            self.popitem(last=False)
        return self[key]


class WanHost(Protocol):
    shape: WanShape

    def linear(self, layer: int, projection: str) -> nn.Module:
        """The self-attention linear `projection` ('q', 'k', 'v' or 'o') of block `layer`."""

    def velocity(
        self,
        x_t: torch.Tensor,
        sigma: torch.Tensor,
        condition: Condition | torch.Tensor,
        frame_positions: Sequence[float] | None,
    ) -> torch.Tensor:
        """Flow-matching velocity prediction (noise - x0) for x_t (B, C, T, H, W) at sigma (B,) in [0, 1].

        With a GIVEN_CLEAN first frame, x_t's frame 0 is the clean latent and the host runs it at timestep 0.
        frame_positions: temporal RoPE positions of the T latent frames (T floats, on the host: reading them
        must not wait for the device), or None for 0..T-1.
        """

    def capture_qk(
        self, x_t: torch.Tensor, sigma: torch.Tensor, condition: Condition | torch.Tensor, on_qk: QKCallback
    ) -> None:
        """One no-grad forward that calls on_qk for every self-attention layer."""

    def attach(self, key: str, adapters: dict[tuple[int, str], nn.Module]) -> None:
        """Run adapter(x, y) beside each (layer, projection) linear (input x, output y), under a key."""

    def detach(self, key: str) -> None:
        """Remove the adapters added under key; the model is as before attach."""

    def checkpointing(self, enabled: bool) -> contextlib.AbstractContextManager:
        """Gradient checkpointing of every block while the context is open."""


class AdapterHooks:
    """attach/detach for a host with `linear(layer, projection)`: each adapter runs beside its linear as a
    forward hook, y -> adapter(x, y), so the model's weights are never touched (any storage dtype works)."""

    @property
    def _hooks(self) -> dict:
        """key -> the hook handles attached under it (made on first use: hosts keep their own __init__)."""
        return self.__dict__.setdefault("_adapter_hooks", {})

    def attach(self, key: str, adapters: dict[tuple[int, str], nn.Module]) -> None:
        if key in self._hooks:
            raise ValueError(f"adapters already attached under {key!r}")
        self._hooks[key] = [
            self.linear(layer, projection).register_forward_hook(
                lambda _module, args, output, _adapter=adapter: _adapter(args[0], output)
            )
            for (layer, projection), adapter in adapters.items()
        ]

    def detach(self, key: str) -> None:
        for handle in self._hooks.pop(key, []):
            handle.remove()

    def attached_keys(self) -> list[str]:
        return list(self._hooks)
