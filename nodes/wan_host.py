"""WanHost over ComfyUI's WanModel, driven through a ModelPatcher clone (see fym/host.py for the interface).

`training_host(model)` clones the MODEL, loads the clone fully on the torch device and yields a `ComfyWan`.
Adapters are registered on the clone as weight wrappers (ComfyUI's own LoRA-training path, applied by
comfy.ops at every forward). On exit, whatever happened, the clone is unloaded and every weight function we
added is removed, so the shared model is left as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import comfy.model_base
import comfy.model_management
import torch
from torch import nn

from ..fym.config import WAN_HEAD_DIM
from ..fym.host import QKCallback, WanShape


def wan_shape(model, node: str) -> WanShape:
    """The WanShape of a ComfyUI MODEL; a clear error if it is not a Wan 2.1 text-to-video model."""
    base = getattr(model, "model", None)
    config = getattr(getattr(base, "model_config", None), "unet_config", {}) or {}
    if not isinstance(base, comfy.model_base.WAN21) or config.get("image_model") != "wan2.1":
        name = type(base).__name__ if base is not None else type(model).__name__
        raise ValueError(f"{node}: the MODEL is {name}, not Wan 2.1; load a Wan 2.1 T2V model (e.g. with UNETLoader)")
    if config.get("model_type", "t2v") != "t2v" or config.get("in_dim", 16) != 16:
        raise ValueError(
            f"{node}: the MODEL is a Wan 2.1 '{config.get('model_type')}' model; "
            "Follow-Your-Motion needs the text-to-video model (wan2.1_t2v_1.3B or _14B)"
        )
    dm = base.diffusion_model
    return WanShape(len(dm.blocks), dm.num_heads, dm.dim // dm.num_heads)


class ComfyWan:
    """WanHost over a loaded ModelPatcher clone of a Wan 2.1 T2V MODEL."""

    def __init__(self, patcher) -> None:
        self.patcher = patcher
        self.diffusion_model = patcher.model.diffusion_model
        self.shape = wan_shape(patcher, "Follow-Your-Motion")
        self.device = comfy.model_management.get_torch_device()
        self.dtype = patcher.model.manual_cast_dtype or patcher.model.get_dtype()
        self._attached: dict[str, list[tuple[nn.Module, nn.Module]]] = {}
        assert self.shape.head_dim == WAN_HEAD_DIM

    def linear(self, layer: int, projection: str) -> nn.Module:
        return getattr(self.diffusion_model.blocks[layer].self_attn, projection)

    def velocity(self, x_t, sigma, context, frame_positions=None, transformer_options=None):
        with self._rope_at(frame_positions):
            out = self.diffusion_model(
                x_t.to(self.device, self.dtype),
                (sigma * 1000).to(self.device, torch.float32),
                context.to(self.device, self.dtype),
                transformer_options=transformer_options or {},
            )
        return out.float()

    @contextlib.contextmanager
    def _rope_at(self, frame_positions: torch.Tensor | None) -> Iterator[None]:
        """Temporal RoPE positions of the latent frames (float32 ids: fractional positions stay exact)."""
        if frame_positions is None:
            yield
            return
        dm = self.diffusion_model
        stock = type(dm).rope_encode.__get__(dm)

        def rope_encode(t, h, w, t_start=0, steps_t=None, steps_h=None, steps_w=None, device=None, dtype=None):
            if t != len(frame_positions):
                raise ValueError(f"{len(frame_positions)} frame positions for {t} latent frames")
            per_frame = [
                stock(1, h, w, t_start=float(p), steps_h=steps_h, steps_w=steps_w, device=device, dtype=torch.float32)
                for p in frame_positions.tolist()
            ]
            return torch.cat(per_frame, dim=1)

        dm.rope_encode = rope_encode  # instance attribute, shadows the method for this call only
        try:
            yield
        finally:
            del dm.rope_encode

    def capture_qk(self, x_t, sigma, context, on_qk: QKCallback) -> None:
        calls = [0]
        heads = self.shape.num_heads

        def override(attention, q, k, v, *args, **kwargs):
            # T2V blocks call attention twice: self-attention (RoPE'd q, k) first, then cross-attention.
            index, calls[0] = calls[0], calls[0] + 1
            if index % 2 == 0:
                b, s, _ = q.shape
                on_qk(index // 2, q.view(b, s, heads, -1).float(), k.view(b, s, heads, -1).float())
            return attention(q, k, v, *args, **kwargs)

        with torch.no_grad():
            self.velocity(x_t, sigma, context, transformer_options={"optimized_attention_override": override})
        if calls[0] != 2 * self.shape.num_layers:
            raise RuntimeError(
                f"expected {2 * self.shape.num_layers} attention calls in a Wan T2V forward, saw {calls[0]}"
            )

    def attach(self, key: str, adapters: dict[tuple[int, str], nn.Module]) -> None:
        live = []
        for (layer, projection), adapter in adapters.items():
            self.patcher.add_weight_wrapper(f"diffusion_model.blocks.{layer}.self_attn.{projection}.weight", adapter)
            module = self.linear(layer, projection)
            module.weight_function = module.weight_function + [adapter]  # what ModelPatcher.load does on load
            live.append((module, adapter))
        self._attached[key] = live

    def detach(self, key: str) -> None:
        for module, adapter in self._attached.pop(key, []):
            module.weight_function = [f for f in module.weight_function if f is not adapter]
            name = next(n for n, f in self.patcher.weight_wrapper_patches.items() if adapter in f)
            self.patcher.weight_wrapper_patches[name] = [
                f for f in self.patcher.weight_wrapper_patches[name] if f is not adapter
            ]

    @contextlib.contextmanager
    def checkpointing(self, enabled: bool) -> Iterator[None]:
        blocks = list(self.diffusion_model.blocks) if enabled else []
        for block in blocks:
            stock = type(block).forward.__get__(block)
            block.forward = lambda *a, _f=stock, **kw: torch.utils.checkpoint.checkpoint(
                _f, *a, use_reentrant=False, **kw
            )
        try:
            yield
        finally:
            for block in blocks:
                del block.forward

    def release(self) -> None:
        """Unload the clone and strip any weight function still attached."""
        for key in list(self._attached):
            self.detach(key)
        for index, loaded in enumerate(comfy.model_management.current_loaded_models):
            if loaded.model is self.patcher:
                comfy.model_management.current_loaded_models.pop(index).model_unload()
                break


def make_autograd_safe(module: nn.Module) -> None:
    """Freeze every weight and replace inference tensors by normal copies (same values) in `module`.

    ComfyUI loads and patches models under torch.inference_mode, and autograd refuses inference tensors on
    the gradient path ("Inference tensors cannot be saved for backward"; setting .data is not enough: "do not
    track version counter"), so each such Parameter or buffer is swapped for a clone made outside inference
    mode. The module is shared with every clone of the MODEL; the values do not change, and ModelPatcher's
    backups of patched weights still restore the originals. Costs one tensor of extra memory at a time, once.
    """
    for submodule in module.modules():
        for name, param in list(submodule._parameters.items()):
            if param is None:
                continue
            if param.is_inference():
                submodule._parameters[name] = nn.Parameter(param.clone(), requires_grad=False)
            else:
                param.requires_grad_(False)
        for name, buffer in list(submodule._buffers.items()):
            if buffer is not None and buffer.is_inference():
                submodule._buffers[name] = buffer.clone()


@contextlib.contextmanager
def training_host(model) -> Iterator[ComfyWan]:
    """A ComfyWan on a fully loaded clone of `model`, for training or scoring; always released."""
    patcher = model.clone()
    if patcher.model.get_dtype() == torch.float16 and comfy.model_management.should_use_bf16(patcher.load_device):
        patcher.set_model_compute_dtype(torch.bfloat16)  # fp16 training without loss scaling underflows
    comfy.model_management.load_models_gpu([patcher], memory_required=1e20, force_full_load=True)
    host = ComfyWan(patcher)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            make_autograd_safe(host.diffusion_model)
            yield host
    finally:
        host.release()
        comfy.model_management.soft_empty_cache()
