"""Head-restricted LoRA (paper Sec. 3.2) and its file format.

A head h owns rows h*d..(h+1)*d-1 of q, k, v and input columns h*d..(h+1)*d-1 of o (d = head_dim). A
`HeadLoRA` stores compact factors for the chosen heads only, so the delta of every other head's weights is
exactly zero by construction (their activations still change through q/k RMSNorm, which spans all heads, as in
the paper's Alg. 2). Exported files use ComfyUI's stock Wan LoRA keys (full-shape factors, zeros outside the
heads), so core LoraLoaderModelOnly loads them:

    diffusion_model.blocks.{N}.self_attn.{q,k,v,o}.lora_up.weight    (out, rank)
    diffusion_model.blocks.{N}.self_attn.{q,k,v,o}.lora_down.weight  (rank, in)
    diffusion_model.blocks.{N}.self_attn.{q,k,v,o}.alpha             ()   scale = alpha / rank
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .config import LORA_FILE_DTYPE, VERSION
from .files import write_new
from .host import PROJECTIONS, WanShape

FORMAT = "fym.motion_lora.v1"
FILE_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}  # what the LoRA factors are saved as
_KEY = "diffusion_model.blocks.{layer}.self_attn.{projection}"


class HeadLoRA(nn.Module):
    """A low-rank update of a linear's output, y -> y + (alpha / rank) * x @ (B @ A).T, on some heads only.

    It runs beside the frozen linear (bypass form), never on its weight: the full delta is never formed, and
    the update is in real weight units whatever the base weight is stored as (bf16, fp8, fp8-scaled,
    quantized), which is what the exported file adds to the weight at inference.

    Args:
        weight_shape: (out, in) of the linear.
        heads: heads whose slice may change.
        head_dim: channels per head.
        axis: 0 for q, k, v (rows = output channels), 1 for o (columns = input channels).
        rank, alpha: LoRA rank and alpha.
    """

    def __init__(
        self, weight_shape, heads: list[int], head_dim: int, axis: int, rank: int, alpha: float, generator=None
    ) -> None:
        super().__init__()
        out_features, in_features = weight_shape
        index = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
        self.register_buffer("index", index, persistent=False)
        self.axis, self.rank, self.alpha = axis, rank, alpha
        self.weight_shape = (out_features, in_features)
        down_in, up_out = (in_features, len(index)) if axis == 0 else (len(index), out_features)
        self.lora_down = nn.Parameter(torch.empty(rank, down_in))  # A
        self.lora_up = nn.Parameter(torch.zeros(up_out, rank))  # B: zero, so training starts from the base model
        nn.init.kaiming_uniform_(self.lora_down, a=math.sqrt(5), generator=generator)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y + the update, for the linear's input x (..., in) and output y (..., out), in y's dtype."""
        down, up = self.lora_down.to(x.dtype), self.lora_up.to(x.dtype) * (self.alpha / self.rank)
        if self.axis == 0:  # the chosen heads' output rows
            return y.index_add(-1, self.index, (x @ down.t() @ up.t()).to(y.dtype))
        return y + (x.index_select(-1, self.index) @ down.t() @ up.t()).to(y.dtype)  # their input columns

    def full_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(up (out, rank), down (rank, in)) of the full-shape weight delta, zeros outside the heads."""
        out_features, in_features = self.weight_shape
        up, down = self.lora_up.detach().float(), self.lora_down.detach().float()
        if self.axis == 0:
            full = torch.zeros(out_features, self.rank, device=up.device)
            return full.index_copy(0, self.index.to(up.device), up), down
        full = torch.zeros(self.rank, in_features, device=down.device)
        return up, full.index_copy(1, self.index.to(down.device), down)


def make_adapters(
    shape: WanShape, heads_per_layer: dict[int, list[int]], rank: int, alpha: float, seed: int = 0
) -> dict[tuple[int, str], HeadLoRA]:
    """One HeadLoRA per (layer, projection) of every layer that has selected heads."""
    generator = torch.Generator().manual_seed(seed)  # not the global RNG: it is the host process's
    dim = shape.dim
    return {
        (layer, projection): HeadLoRA(
            (dim, dim), heads, shape.head_dim, 1 if projection == "o" else 0, rank, alpha, generator
        )
        for layer, heads in sorted(heads_per_layer.items())
        for projection in PROJECTIONS
    }


@dataclass
class MotionLoRA:
    """A trained LoRA in ComfyUI's Wan key format plus what it was trained on.

    state_dict: ComfyUI keys -> tensors (see the module docstring). metadata: JSON-able facts, among them
    "stage", "rank", "alpha", "steps", "shape", "heads" and the head map.
    """

    state_dict: dict[str, torch.Tensor]
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> WanShape:
        return WanShape(**self.metadata["shape"])

    def check_shape(self, shape: WanShape, where: str) -> None:
        if shape != self.shape:
            raise ValueError(
                f"{where}: this motion LoRA was trained on a Wan model with {self.shape.num_layers} layers x "
                f"{self.shape.num_heads} heads, but the model has {shape.num_layers} x {shape.num_heads}; "
                "use the Wan model it was trained on"
            )


def export(adapters: dict[tuple[int, str], HeadLoRA], shape: WanShape, dtype=torch.float32, **metadata) -> MotionLoRA:
    """Adapters -> MotionLoRA with full-shape stock factors; extra keyword arguments go into the metadata."""
    state = {}
    for (layer, projection), adapter in adapters.items():
        up, down = adapter.full_factors()
        key = _KEY.format(layer=layer, projection=projection)
        state[f"{key}.lora_up.weight"] = up.to(dtype).cpu().contiguous()
        state[f"{key}.lora_down.weight"] = down.to(dtype).cpu().contiguous()
        state[f"{key}.alpha"] = torch.tensor(float(adapter.alpha))
    first = next(iter(adapters.values()), None)
    info = {
        "format": FORMAT,
        "version": VERSION,
        "shape": shape.as_dict(),
        "rank": first.rank if first else 0,
        **metadata,
    }
    return MotionLoRA(state, info)


def merged_delta(lora: MotionLoRA, layer: int, projection: str) -> torch.Tensor | None:
    """The full weight delta (out, in) that `lora` adds to a linear at strength 1, or None."""
    key = _KEY.format(layer=layer, projection=projection)
    if f"{key}.lora_up.weight" not in lora.state_dict:
        return None
    up, down = lora.state_dict[f"{key}.lora_up.weight"].float(), lora.state_dict[f"{key}.lora_down.weight"].float()
    return up @ down * (float(lora.state_dict[f"{key}.alpha"]) / up.shape[1])


def save(lora: MotionLoRA, path: str, dtype: str = LORA_FILE_DTYPE) -> None:
    """Write a .safetensors file atomically, never over an existing one; factors in `dtype` ("bf16" or "fp32")."""
    if dtype not in FILE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(FILE_DTYPES)}; got {dtype!r}")
    state = {
        key: value if key.endswith(".alpha") else value.to(FILE_DTYPES[dtype]) for key, value in lora.state_dict.items()
    }
    metadata = {"modelspec.architecture": "wan2.1", "fym": json.dumps({**lora.metadata, "file_dtype": dtype})}
    write_new(path, lambda temporary: save_file(state, temporary, metadata=metadata), "motion LoRA files")


def load(path: str) -> MotionLoRA:
    """Read a file written by `save`; a clear error if it is not a Follow-Your-Motion LoRA."""
    name = os.path.basename(path)
    try:
        handle = safe_open(path, framework="pt")
    except Exception as error:  # safetensors' own error type is not public API
        raise ValueError(
            f"{name} is not a readable .safetensors file ({error}); it may be truncated (an interrupted copy or "
            "download) or in another format. Save the LoRA again with Save Motion LoRA, or pick another file"
        ) from None
    with handle:
        metadata = handle.metadata() or {}
        if "fym" not in metadata:
            raise ValueError(f"{name} is not a Follow-Your-Motion motion LoRA (no 'fym' metadata)")
        info = json.loads(metadata["fym"])
        if info.get("format") != FORMAT:
            raise ValueError(f"{name}: unknown motion LoRA format {info.get('format')!r}")
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    return MotionLoRA(state, info)
