"""MotionBench-mini's model: a small Wan 2.1 T2V transformer (diffusers), its weights file and ComfyUI keys.

Architecture = Wan 2.1 with fewer, narrower parts: head_dim 128 (as every Wan 2.1), 4 heads (dim 512), 4 layers,
ffn 256, text_dim 4096, freq_dim 256, patch (1, 2, 2), 16 latent channels in and out, qk RMSNorm across heads,
cross-attention norm, eps 1e-6. ComfyUI's model detection reads exactly these from the weights (dim from
head.modulation, heads = dim / 128, ffn from blocks.0.ffn.0, layers by counting, text_dim 4096 and freq_dim 256
fixed), so `to_comfy_state_dict` output loads in ComfyUI's UNETLoader as WAN21_T2V.

The image-to-video variant (`I2V_WEIGHTS`, `build(i2v=True)`) is the same network with 36 input channels: the
noisy latent's 16, then the first-frame concat of `world.first_frame_concat` (4 mask + 16 image channels), Wan 2.2
A14B I2V's scheme (no CLIP image embedder). ComfyUI detects it as WAN21_T2V with in_dim 36 and builds that concat
itself (WAN21.concat_cond). `i2v_from_t2v` initialises it from the T2V weights, new input channels at zero.
"""

from __future__ import annotations

import os
import re

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "motionbench_wan.safetensors")
I2V_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "motionbench_wan_i2v.safetensors")
I2V_IN_CHANNELS = 2 * 16 + 4  # latent, then the first-frame concat: 4 mask + 16 image channels
CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=256,
    num_layers=4,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)


def build(seed: int = 0, i2v: bool = False) -> nn.Module:
    """A freshly initialised MotionBench Wan (float32, eval mode), seeded; i2v: 36 input channels."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(**{**CONFIG, "in_channels": I2V_IN_CHANNELS if i2v else CONFIG["in_channels"]}).eval()


def i2v_from_t2v(t2v: nn.Module) -> nn.Module:
    """The image-to-video MotionBench Wan initialised from a T2V one: every weight copied, the 20 new input
    channels of patch_embedding (first-frame mask and image) at zero, so it starts as the T2V model."""
    i2v = build(i2v=True)
    state = {k: v.detach().clone().float() for k, v in t2v.state_dict().items()}
    weight = state["patch_embedding.weight"]  # (dim, 16, 1, 2, 2)
    state["patch_embedding.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], I2V_IN_CHANNELS - 16,
                                                                        *weight.shape[2:])], 1)  # fmt: skip
    i2v.load_state_dict(state)
    return i2v


def save(model: nn.Module, path: str = WEIGHTS, dtype: torch.dtype = torch.float16) -> None:
    """Write the model's weights with diffusers key names as `dtype` safetensors."""
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    config = {**CONFIG, "in_channels": model.config.in_channels}
    save_file(state, path, metadata={"format": "diffusers.WanTransformer3DModel", "config": repr(config)})


def load(path: str = WEIGHTS, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The trained MotionBench Wan from `path` (diffusers keys), in `dtype`, eval mode, no gradients; T2V or I2V
    by the file's patch_embedding (16 or 36 input channels)."""
    if not os.path.exists(path):
        builder = "pretrain_i2v" if path == I2V_WEIGHTS else "pretrain"
        raise FileNotFoundError(f"{path} is missing; build it with: python -m bench.motionbench.{builder}")
    state = load_file(path)
    model = build(i2v=state["patch_embedding.weight"].shape[1] == I2V_IN_CHANNELS)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    if dtype != torch.float32:
        model = model.to(dtype)
    return model.eval().requires_grad_(False)


# diffusers name -> ComfyUI WanModel name, applied in order to each key (regex, replacement).
_TO_COMFY = [
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^proj_out\.", "head.head."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^blocks\.(\d+)\.attn1\.", r"blocks.\1.self_attn."),
    (r"^blocks\.(\d+)\.attn2\.", r"blocks.\1.cross_attn."),
    (r"\.to_q\.", ".q."),
    (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."),
    (r"\.to_out\.0\.", ".o."),
    (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm3."),  # diffusers norm2 is the cross-attention norm
    (r"^blocks\.(\d+)\.ffn\.net\.0\.proj\.", r"blocks.\1.ffn.0."),
    (r"^blocks\.(\d+)\.ffn\.net\.2\.", r"blocks.\1.ffn.2."),
    (r"^blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation"),
]


def comfy_key(key: str) -> str:
    """One diffusers WanTransformer3DModel key -> ComfyUI WanModel key."""
    for pattern, replacement in _TO_COMFY:
        key = re.sub(pattern, replacement, key)
    return key


def to_comfy_state_dict(model: nn.Module | dict) -> dict[str, torch.Tensor]:
    """A diffusers Wan (module or state dict) -> ComfyUI WanModel state dict (same tensors, renamed).

    Every tensor keeps its shape and layout: the two implementations order the time-embedding sinusoids
    (cos, sin), the 6 / 2 modulation rows, the unpatchify channels (p_t, p_h, p_w, c) and RoPE pairs alike.
    The parameter-free norms (diffusers norm1, norm3, norm_out; ComfyUI norm1, norm2, head.norm) have no keys.
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    converted = {comfy_key(k): v for k, v in state.items()}
    if len(converted) != len(state):
        raise ValueError("two diffusers keys mapped to the same ComfyUI key")
    return converted


def i2v_condition(text: torch.Tensor, clip: torch.Tensor):
    """The fym Condition of an image-to-video clip: caption (L, 4096) or (1, L, 4096), first frame given by
    concat from clip (16, T, H, W) or (1, 16, T, H, W) (only its frame 0 is read)."""
    from fym.host import GIVEN_BY_CONCAT, Condition

    from . import world

    clip = clip if clip.dim() == 5 else clip[None]
    text = text if text.dim() == 3 else text[None]
    return Condition(text, per_frame={"concat": world.first_frame_concat(clip)}, first_frame=GIVEN_BY_CONCAT)
