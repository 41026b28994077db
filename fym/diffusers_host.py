"""WanHost over diffusers' WanTransformer3DModel (the maintained Wan 2.1 implementation on PyPI).

Used by CI, the demo (bench/demo.py) and anyone using `fym` as a Python library.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .host import GIVEN_BY_CONCAT, AdapterHooks, Condition, QKCallback, RecentTables, WanShape

_DIFFUSERS_NAMES = {"q": "to_q", "k": "to_k", "v": "to_v"}


def tiny_wan(
    num_layers: int = 2, num_heads: int = 4, head_dim: int = 32, ffn_dim: int = 256, text_dim: int = 64, seed: int = 0
) -> nn.Module:
    """A small random-weight Wan 2.1 T2V transformer (same architecture, fewer and narrower layers)."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=num_heads,
        attention_head_dim=head_dim,
        in_channels=16,
        out_channels=16,
        text_dim=text_dim,
        freq_dim=64,
        ffn_dim=ffn_dim,
        num_layers=num_layers,
        rope_max_seq_len=256,
    ).eval()


class _FramePositionRoPE(nn.Module):
    """diffusers' WanRotaryPosEmbed with the temporal part taken at given (possibly fractional) positions.

    The temporal tables of recent sets of positions are kept in `tables` on the device."""

    def __init__(self, rope: nn.Module, positions: tuple[float, ...], tables: RecentTables) -> None:
        super().__init__()
        self.rope, self.positions, self.tables = rope, positions, tables

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = self.rope(hidden_states)  # (1, S, 1, head_dim), frame-major tokens
        frames = hidden_states.shape[2]
        if len(self.positions) != frames:
            raise ValueError(f"{len(self.positions)} frame positions for {frames} latent frames")
        per_frame = cos.shape[1] // frames
        key = (self.positions, per_frame, cos.device, cos.dtype)
        t_cos, t_sin = self.tables.get_or_make(key, lambda: self._temporal(per_frame, cos))
        cos, sin = cos.clone(), sin.clone()
        cos[..., : self.rope.t_dim] = t_cos
        sin[..., : self.rope.t_dim] = t_sin
        return cos, sin

    def _temporal(self, per_frame: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The temporal cos and sin (1, S, 1, t_dim) at self.positions, repeated over each frame's tokens."""
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        t_cos, t_sin = get_1d_rotary_pos_embed(
            self.rope.t_dim,
            torch.tensor(self.positions, dtype=torch.float64),
            use_real=True,
            repeat_interleave_real=True,
            freqs_dtype=torch.float64,
        )
        return tuple(t.to(like).repeat_interleave(per_frame, 0)[None, :, None] for t in (t_cos, t_sin))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """diffusers' interleaved-pair rotary embedding; x (B, S, heads, head_dim), cos/sin (1, S, 1, head_dim)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class DiffusersWan(AdapterHooks):
    """WanHost over a diffusers WanTransformer3DModel: text-to-video, or image-to-video by concatenated
    channels (Wan 2.2 A14B I2V's scheme, no CLIP image embedder) with Condition.per_frame["concat"]."""

    def __init__(self, model: nn.Module) -> None:
        config = model.config
        if getattr(config, "image_dim", None) or config.in_channels not in (
            config.out_channels,
            2 * config.out_channels + 4,
        ):
            raise ValueError(
                "DiffusersWan: text-to-video transformers, or image-to-video ones whose first frame comes as extra "
                "input channels (mask + image) without a CLIP image embedder, are supported"
            )
        self.model = model.requires_grad_(False)  # only adapters train
        self.shape = WanShape(len(model.blocks), config.num_attention_heads, config.attention_head_dim)

    def linear(self, layer: int, projection: str) -> nn.Module:
        attn = self.model.blocks[layer].attn1
        return attn.to_out[0] if projection == "o" else getattr(attn, _DIFFUSERS_NAMES[projection])

    def velocity(self, x_t, sigma, condition, frame_positions=None):
        condition = Condition.of(condition)
        dtype = next(self.model.parameters()).dtype
        if condition.first_frame not in (None, GIVEN_BY_CONCAT):
            raise ValueError(f"DiffusersWan: a first frame given {condition.first_frame!r} is not supported")
        if "concat" in condition.per_frame:  # (B, 4 + C, T, H, W): mask, then the first-frame image latent
            x_t = torch.cat([x_t, condition.per_frame["concat"].to(x_t).expand(x_t.shape[0], -1, -1, -1, -1)], 1)
        with self._rope_at(frame_positions):
            return self.model(
                hidden_states=x_t.to(dtype),
                timestep=sigma * 1000,
                encoder_hidden_states=condition.text.to(dtype),
                return_dict=False,
            )[0].float()

    @contextlib.contextmanager
    def _rope_at(self, frame_positions: torch.Tensor | None) -> Iterator[None]:
        if frame_positions is None:
            yield
            return
        rope = self.model.rope
        tables = self.__dict__.setdefault("_rope_tables", RecentTables())
        self.model.rope = _FramePositionRoPE(rope, tuple(float(p) for p in frame_positions), tables)
        try:
            yield
        finally:
            self.model.rope = rope

    def capture_qk(self, x_t, sigma, condition, on_qk: QKCallback) -> None:
        state: dict[str, torch.Tensor] = {}
        handles = []

        def keep_rope(module, args):
            state["cos"], state["sin"] = args[3]

        def keep_q(module, args, output):
            state["q"] = output

        def emit(layer, heads):
            def hook(module, args, output):
                q = _rotate(state["q"].unflatten(2, (heads, -1)), state["cos"], state["sin"])
                k = _rotate(output.unflatten(2, (heads, -1)), state["cos"], state["sin"])
                on_qk(layer, q.float(), k.float())

            return hook

        for layer, block in enumerate(self.model.blocks):
            attn = block.attn1
            handles += [
                attn.register_forward_pre_hook(keep_rope),
                attn.norm_q.register_forward_hook(keep_q),
                attn.norm_k.register_forward_hook(emit(layer, attn.heads)),
            ]
        try:
            with torch.no_grad():
                self.velocity(x_t, sigma, condition)
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def checkpointing(self, enabled: bool) -> Iterator[None]:
        previous = self.model.gradient_checkpointing
        if enabled:
            self.model.enable_gradient_checkpointing()
        try:
            yield
        finally:
            if not previous:
                self.model.disable_gradient_checkpointing()
