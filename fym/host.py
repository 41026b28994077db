"""The narrow interface between the algorithm and a Wan 2.1 implementation.

Two hosts implement it: `fym.diffusers_host.DiffusersWan` (diffusers' WanTransformer3DModel: CI and the
standalone API) and `nodes.wan_host.ComfyWan` (ComfyUI's WanModel). The algorithm is written once against it.

Tensor layout everywhere: latents (B, C=16, T, H, W), normalised as the model expects; text context
(B, L, text_dim); self-attention tokens are frame-major, token = t * (Hp * Wp) + row * Wp + col with
Hp = H / 2, Wp = W / 2 (Wan's 1x2x2 patches); a head h owns channels h * head_dim ... (h + 1) * head_dim - 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
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


class WanHost(Protocol):
    shape: WanShape

    def linear(self, layer: int, projection: str) -> nn.Module:
        """The self-attention linear `projection` ('q', 'k', 'v' or 'o') of block `layer`."""

    def velocity(
        self, x_t: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, frame_positions: torch.Tensor | None
    ) -> torch.Tensor:
        """Flow-matching velocity prediction (noise - x0) for x_t (B, 16, T, H, W) at sigma (B,) in [0, 1].

        frame_positions: (T,) float temporal RoPE positions of the T latent frames, or None for 0..T-1.
        """

    def capture_qk(self, x_t: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, on_qk: QKCallback) -> None:
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
