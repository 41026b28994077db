"""WanHost over ComfyUI's WanModel, driven through a ModelPatcher clone (see fym/host.py for the interface).

The one place that knows ComfyUI's Wan internals and how they changed between host versions (0.3.64 to 0.33):

- `scoring_host(model)` (Classify Heads): a no-grad host, loaded as ComfyUI loads for sampling (partially,
  if the model does not fit).
- `training_host(model, ...)`: what ComfyUI's own trainer does around its loop (comfy_extras/nodes_train.py):
  a non-dynamic clone, compute in bf16 (fp32 where bf16 is slow or missing) instead of fp16 or fp8, the
  module in train mode with `comfy.model_management.in_training` set (so inference-only fused kernels and fp8
  matmuls stay off the gradient path), and PyTorch attention (sage attention and other backends have no
  backward).
  Linears that would multiply in fp8 (weights loaded as fp8_e4m3fn_fast on an fp8 card) take their differentiable
  path.
  A DynamicVRAM MODEL trains on one non-dynamic copy shared by every MODEL made from it.
Adapters run beside the frozen linears as forward hooks (fym.host.AdapterHooks), so the update trained is in
real weight units whatever the weights are stored as. On entry, MODELs sharing the weights are unloaded (so a
LoRA merged for sampling is taken out first); on exit, whatever happened, the hooks are removed and the clone is
unloaded, so the shared model is left as it was.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import weakref
from collections.abc import Iterator

import comfy.ldm.modules.attention
import comfy.model_base
import comfy.model_management
import comfy.ops
import comfy.sampler_helpers
import comfy.samplers
import torch
from torch import nn

from ..fym.config import WAN_HEAD_DIM, expert_noise_range, video_frames
from ..fym.host import GIVEN_BY_CONCAT, GIVEN_CLEAN, AdapterHooks, Condition, QKCallback, RecentTables, WanShape
from .types import context_of

_SIZES = {1536: "1.3B", 3072: "5B", 5120: "14B"}  # Wan's width -> the size users know it by
IMAGE_KEYS = ("concat_latent_image", "concat_mask")  # what WanImageToVideo puts on the positive, per latent frame


def model_name(model) -> str:
    """What a user calls the MODEL they loaded, e.g. 'Wan 2.2 TI2V 5B', 'Wan I2V 14B', 'Flux'."""
    base = getattr(model, "model", None)
    if not isinstance(base, comfy.model_base.WAN21):
        return type(base if base is not None else model).__name__
    config = getattr(base.model_config, "unet_config", {}) or {}
    size = _SIZES.get(config.get("dim"), f"(width {config.get('dim')})")
    if config.get("out_dim") == 48:
        return f"Wan 2.2 TI2V {size}"
    kind = config.get("model_type", "t2v")
    if kind == "t2v" and config.get("in_dim", 16) != 16:
        kind = "i2v"
    return f"Wan {kind.upper()} {size}"


def wan_first_frame(model, node: str) -> str | None:
    """How the Wan MODEL is given a first frame: None (text-to-video), GIVEN_BY_CONCAT (Wan 2.1 I2V, Wan 2.2
    A14B I2V: image and mask channels beside the input) or GIVEN_CLEAN (Wan 2.2 TI2V 5B: a clean latent frame 0
    at timestep 0). A clear error naming the loaded model if the pack cannot train it."""
    base = getattr(model, "model", None)
    config = getattr(getattr(base, "model_config", None), "unet_config", {}) or {}
    kind, in_dim, out_dim = config.get("model_type", "t2v"), config.get("in_dim", 16), config.get("out_dim", 16)
    if config.get("image_model") == "wan2.1" and kind in ("t2v", "i2v"):
        # exact classes: their subclasses are VACE, camera, S2V, HuMo, Animate, causal and other variants
        if type(base) is comfy.model_base.WAN21 and out_dim == 16 and in_dim in (16, 36):
            return None if in_dim == 16 else GIVEN_BY_CONCAT
        if type(base) is comfy.model_base.WAN22 and out_dim == 48 and in_dim == 48:
            return GIVEN_CLEAN
    raise ValueError(
        f"{node}: the MODEL is {model_name(model)} ({type(base).__name__}, {kind}); Follow-Your-Motion trains Wan "
        "2.1 T2V/I2V, Wan 2.2 A14B T2V/I2V experts and Wan 2.2 TI2V 5B. Load one of those with UNETLoader"
    )


def wan_noise_range(model, expert: str, node: str) -> tuple[float, float]:
    """The noise levels `expert` (fym.config.EXPERTS) of this MODEL runs at: Wan 2.2 A14B's I2V boundary for
    image-channel models, its T2V boundary otherwise."""
    return expert_noise_range(expert, image_to_video=wan_first_frame(model, node) == GIVEN_BY_CONCAT)


def wan_shape(model, node: str) -> WanShape:
    """The WanShape of a ComfyUI MODEL; a clear error naming the loaded model if the pack cannot train it."""
    wan_first_frame(model, node)
    dm = model.model.diffusion_model
    return WanShape(len(dm.blocks), dm.num_heads, dm.dim // dm.num_heads)


def plan_setting(model, stage: str, clip_shape: tuple[int, ...], config):
    """fym.plan's Setting for training this MODEL's Wan on a clip of latent shape (B, C, T, H, W) with the stage's
    TrainConfig, as training_host loads it (weights as stored, the compute dtype it trains in)."""
    from ..fym.plan import Architecture, Setting

    dm = model.model.diffusion_model
    q = dm.blocks[0].self_attn.q
    names = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
    weights = names.get(q.weight.dtype, "fp8_scaled" if getattr(q, "scale_weight", None) is not None else "fp8")
    stride = 16 if dm.out_dim == 48 else 8  # Wan 2.2 TI2V 5B's VAE: 16x16 pixels per latent; the others' 8x8
    architecture = Architecture(dm.dim, dm.ffn_dim, dm.num_layers, dm.in_dim, dm.out_dim, (4, stride, stride))
    _, _, frames, height, width = clip_shape
    return Setting(
        architecture, width * stride, height * stride, video_frames(frames), stage, weights,
        names[training_dtype(model)], config.rank, config.frame_count, config.sparse_sampling,
        config.gradient_checkpointing,
    )  # fmt: skip


def wan_condition(model, positive, latent_shape: tuple[int, ...], node: str) -> Condition:
    """The reference clip's Condition from a CONDITIONING, checked against the model and the latent before any
    work: the video latent (1, C, T, H, W), or single-frame latents (F, C, 1, H, W) whose size alone must match.
    For Wan I2V the positive must come from WanImageToVideo (or another node that sets the first frame the same
    way) with the reference's first frame, size and length."""
    text = context_of(positive, node)
    first_frame = wan_first_frame(model, node)
    entry = dict(positive[0][1])
    per_frame = {key: entry.pop(key) for key in IMAGE_KEYS if key in entry}
    if first_frame != GIVEN_BY_CONCAT:
        per_frame = {}  # a text-to-video model takes no image channels (extra_conds would ignore them)
    elif "concat_latent_image" not in per_frame:
        raise ValueError(
            f"{node}: the MODEL is {model_name(model)}, which needs the reference's first frame: connect the positive "
            "output of WanImageToVideo (start_image = Prepare Reference's first frame, the same width, height and "
            "frames) to 'positive', or turn on Load Reference Clips' image_to_video"
        )
    compared = slice(2 if latent_shape[2] > 1 else 3, 5)
    for key, value in per_frame.items():
        if value.dim() != 5 or value.shape[compared] != tuple(latent_shape[compared]):
            raise ValueError(
                f"{node}: the positive's {key} covers {tuple(value.shape[2:])} (latent frames, height, width) but the "
                f"reference latent is {tuple(latent_shape[2:])}; give WanImageToVideo the same width, height and "
                "length as Prepare Reference"
            )
    return Condition(text, per_frame, entry, first_frame)


def differentiable_attention(func, *args, **kwargs):
    """An `optimized_attention_override`: PyTorch SDPA, which has a backward, whatever backend ComfyUI runs."""
    return comfy.ldm.modules.attention.attention_pytorch(*args, **kwargs)


def _host_takes_rope_options(diffusion_model) -> bool:
    """Newer hosts (after 0.3.64) read transformer_options['rope_options'] (shift_t, scale_t) in rope_encode."""
    return "transformer_options" in inspect.signature(type(diffusion_model).rope_encode).parameters


class ComfyWan(AdapterHooks):
    """WanHost over a loaded ModelPatcher clone of a Wan MODEL (any family wan_first_frame accepts)."""

    def __init__(self, patcher, training: bool) -> None:
        self.patcher = patcher
        self.diffusion_model = patcher.model.diffusion_model
        self.shape = wan_shape(patcher, "Follow-Your-Motion")
        self.device = patcher.load_device
        self.dtype = patcher.model.manual_cast_dtype or patcher.model.get_dtype()  # compute dtype (reported)
        self.training = training
        assert self.shape.head_dim == WAN_HEAD_DIM

    def linear(self, layer: int, projection: str) -> nn.Module:
        return getattr(self.diffusion_model.blocks[layer].self_attn, projection)

    def velocity(self, x_t, sigma, condition, frame_positions=None, transformer_options=None):
        """Through ComfyUI's own conditioning path, as its sampler runs the model: the model's extra_conds (image
        channels, CLIP vision, per-frame timesteps) and apply_model, which returns x0; v = (x_t - x0) / sigma."""
        condition = Condition.of(condition)
        options = dict(transformer_options or {})
        if self.training:
            options.setdefault("optimized_attention_override", differentiable_attention)
        x_t = x_t.to(self.device, torch.float32)
        sigma = sigma.to(self.device, torch.float32)
        conds = self._model_conds(x_t, condition)
        with self._rope_at(frame_positions, options):
            denoised = self.patcher.model.apply_model(x_t, sigma, transformer_options=options, **conds)
        return (x_t - denoised) / sigma.clamp_min(1e-6).view(-1, 1, 1, 1, 1)

    def _model_conds(self, x_t: torch.Tensor, condition: Condition) -> dict:
        """apply_model's keyword arguments for x_t (B, C, T, H, W), built as ComfyUI's sampler builds them."""
        entry = {**condition.extras, **condition.per_frame}
        extra = {}
        if condition.first_frame == GIVEN_CLEAN:  # as a LATENT noise_mask from Wan22ImageToVideoLatent: 0 = given
            mask = torch.ones(x_t.shape[0], 1, *x_t.shape[2:], device=self.device)
            mask[:, :, 0] = 0
            extra["denoise_mask"] = mask
        conds = comfy.sampler_helpers.convert_cond([[condition.text.to(self.device), entry]])
        [encoded] = comfy.samplers.encode_model_conds(
            self.patcher.model.extra_conds, conds, x_t, self.device, "positive", **extra
        )
        return {
            key: value.process_cond(batch_size=x_t.shape[0], area=None).cond
            for key, value in encoded["model_conds"].items()
        }

    @contextlib.contextmanager
    def _rope_at(self, frame_positions, options: dict) -> Iterator[None]:
        """The RoPE tables of this call: stock, or with the latent frames at `frame_positions` (adaptive RoPE).

        Evenly spaced positions (the sparse sampler's) go through the host's own rope_options where it has them
        (shift_t = first position, scale_t = spacing); otherwise one stock rope_encode per frame at its own
        position (float32 ids: fractional positions stay exact). A training host keeps the tables of the last few
        sets of positions (fym.host.RecentTables), so a repeated window builds none and the cache stays small.
        """
        positions = None if frame_positions is None else tuple(float(p) for p in frame_positions)  # host values
        dm = self.diffusion_model
        outer = dm.__dict__.get("rope_encode")  # a caller's own override, if any: used, kept, not cached
        stock = dm.rope_encode
        per_frame = positions is not None
        if per_frame and _host_takes_rope_options(dm):
            steps = {round(b - a, 6) for a, b in zip(positions[:-1], positions[1:], strict=True)}
            if len(steps) == 1:
                options["rope_options"] = {"shift_t": positions[0], "scale_t": steps.pop()}
                per_frame = False
        tables = self.__dict__.setdefault("_rope_tables", RecentTables()) if self.training and outer is None else None

        def rope_encode(t, h, w, t_start=0, steps_t=None, steps_h=None, steps_w=None, device=None, dtype=None, **kw):
            rope_options = (kw.get("transformer_options") or {}).get("rope_options") or {}
            named = tuple(sorted((k, v) for k, v in kw.items() if k != "transformer_options"))
            key = (positions, t, h, w, t_start, steps_t, steps_h, steps_w, device, dtype, named,
                   tuple(sorted(rope_options.items())))  # fmt: skip

            def make():
                if not per_frame:
                    return stock(t, h, w, t_start, steps_t, steps_h, steps_w, device, dtype, **kw)
                if t != len(positions):
                    raise ValueError(f"{len(positions)} frame positions for {t} latent frames")
                return torch.cat([
                    stock(1, h, w, t_start=p, steps_h=steps_h, steps_w=steps_w, device=device, dtype=torch.float32,
                          **kw)
                    for p in positions
                ], dim=1)  # fmt: skip

            return make() if tables is None else tables.get_or_make(key, make)

        dm.rope_encode = rope_encode  # instance attribute, shadows the method for this call only
        try:
            yield
        finally:
            if outer is None:
                del dm.rope_encode
            else:
                dm.rope_encode = outer

    def capture_qk(self, x_t, sigma, condition, on_qk: QKCallback) -> None:
        heads = self.shape.num_heads
        layer_now: list[int | None] = [None]  # the block whose self-attention is running

        def override(attention, q, k, v, *args, **kwargs):
            if layer_now[0] is not None:  # the self-attention's own call: RoPE'd q, k (B, S, heads * head_dim)
                b, s, _ = q.shape
                on_qk(layer_now[0], q.view(b, s, heads, -1).float(), k.view(b, s, heads, -1).float())
                seen.append(layer_now[0])
                layer_now[0] = None
            return attention(q, k, v, *args, **kwargs)

        seen: list[int] = []
        handles = [
            block.self_attn.register_forward_pre_hook(lambda *_, _i=index: layer_now.__setitem__(0, _i))
            for index, block in enumerate(self.diffusion_model.blocks)
        ]
        try:
            with torch.no_grad():
                self.velocity(x_t, sigma, condition, transformer_options={"optimized_attention_override": override})
        finally:
            for handle in handles:
                handle.remove()
        if seen != list(range(self.shape.num_layers)):
            raise RuntimeError(f"expected self-attention in each of {self.shape.num_layers} Wan blocks, saw {seen}")

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
        """Remove every adapter hook and unload the clone."""
        for key in self.attached_keys():
            self.detach(key)
        for index, loaded in enumerate(comfy.model_management.current_loaded_models):
            if loaded.model is self.patcher:
                comfy.model_management.current_loaded_models.pop(index).model_unload()
                break


@contextlib.contextmanager
def tensors_put_back(module: nn.Module) -> Iterator[None]:
    """Every parameter and buffer object of `module` is put back after the block, so a shared model is left
    exactly as it was. Newer hosts re-wrap quantized (fp8_scaled) weights as new tensors when they are moved
    outside inference mode (comfy/ops.py _quantized_apply), which ComfyUI's later loads in inference mode
    cannot unpatch; `make_autograd_safe` swaps tensors too. Weights moved in place keep their object."""
    saved = [(table, name, tensor) for sub in module.modules() for table in (sub._parameters, sub._buffers)
             for name, tensor in table.items()]  # fmt: skip
    try:
        yield
    finally:
        for table, name, tensor in saved:
            table[name] = tensor


def make_autograd_safe(module: nn.Module) -> None:
    """Replace `module`'s inference tensors by normal copies (same values); `tensors_put_back` undoes it.

    ComfyUI loads models under torch.inference_mode, and autograd refuses inference tensors on the gradient
    path ("Inference tensors cannot be saved for backward"). Only tensors already where they are used are
    inference tensors (a model ComfyUI moves to the GPU inside `training_host` gets normal ones), so this
    costs one copy of those, mostly on CPU runs.
    """
    for submodule in module.modules():
        for table in (submodule._parameters, submodule._buffers):
            for name, tensor in table.items():
                if tensor is not None and tensor.is_inference():
                    copy = tensor.clone()
                    table[name] = nn.Parameter(copy, requires_grad=False) if isinstance(tensor, nn.Parameter) else copy


def training_dtype(patcher) -> torch.dtype:
    """The compute dtype to train in: the model's if it is bf16 or fp32, else bf16 (fp32 where bf16 is not
    supported or slow, as on CPUs). fp16 without a loss scaler underflows; fp8 weights compute in fp16 by default."""
    current = patcher.model.manual_cast_dtype or patcher.model.get_dtype()
    if current in (torch.float32, torch.bfloat16):
        return current
    return torch.bfloat16 if comfy.model_management.should_use_bf16(patcher.load_device) else torch.float32


_DELEGATES = weakref.WeakKeyDictionary()  # a dynamic MODEL's module -> ComfyUI's override of its non-dynamic copy


def _non_dynamic_clone(model):
    """A clone that loads the usual way. Newer hosts' dynamic-VRAM patchers stream weights through shared
    buffers that autograd cannot keep; a non-dynamic clone is a second copy read from disk. It is read once per
    loaded model and shared by every MODEL made from it (a LoRA'd one too), as ComfyUI shares the weights of
    clones: 4 training nodes on 2 experts keep 2 copies, not 4."""
    if not getattr(model, "is_dynamic", lambda: False)():
        return model.clone()
    clone = model.clone(disable_dynamic=True, model_override=_DELEGATES.get(model.model))
    _DELEGATES[model.model] = clone.get_clone_model_override()
    return clone


def _unload_sharing(patcher) -> None:
    """Unload every loaded MODEL that shares `patcher`'s weights (e.g. a LoRA'd clone that was just sampled), so
    ComfyUI unpatches them and the weights saved for `tensors_put_back` are the unpatched ones."""
    loaded = comfy.model_management.current_loaded_models
    for index in reversed(range(len(loaded))):
        other = loaded[index].model
        if other is not None and other.model is patcher.model:
            loaded.pop(index).model_unload()


def _multiplies_in_fp8(module: nn.Module) -> bool:
    """Whether `module` would multiply in fp8 (torch._scaled_mm, no backward) on an fp8 card: weights loaded as
    fp8_e4m3fn_fast (core's fp8_ops, which ComfyUI 0.33+ runs in train mode too), or 0.3.64's scaled fp8 with
    fp8 matrix multiplication (fp8_scaled loaded as fp8_e4m3fn_fast)."""
    if isinstance(module, getattr(getattr(comfy.ops, "fp8_ops", None), "Linear", ())):
        return True
    method = getattr(type(module), "forward_comfy_cast_weights", None)
    return inspect.isfunction(method) and inspect.getclosurevars(method).nonlocals.get("fp8_matrix_mult") is True


def _cast_forward(self, input):
    """The same op's own path when fp8 compute is off (differentiable): the weight cast to the input's dtype,
    with its patches, times scale_weight where the weights are scaled."""
    weight, bias = comfy.ops.cast_bias_weight(self, input)
    scale = getattr(self, "scale_weight", None)
    if scale is not None:
        weight = weight * scale.to(device=weight.device, dtype=weight.dtype)
    return torch.nn.functional.linear(input, weight, bias)


@contextlib.contextmanager
def _differentiable_linears(module: nn.Module) -> Iterator[None]:
    """Linears that multiply in fp8 (no backward) run their differentiable path while the block runs."""
    switched = [sub for sub in module.modules() if _multiplies_in_fp8(sub)]
    for sub in switched:
        sub.forward_comfy_cast_weights = types.MethodType(_cast_forward, sub)
    try:
        yield
    finally:
        for sub in switched:
            del sub.forward_comfy_cast_weights


@contextlib.contextmanager
def _in_training(module: nn.Module) -> Iterator[None]:
    """The host's training flag and train mode while the block runs (as its own trainer sets them)."""
    flag = hasattr(comfy.model_management, "in_training")  # newer hosts: fused inference kernels check it
    was_training = module.training
    module.train()
    if flag:
        comfy.model_management.in_training = True
    try:
        yield
    finally:
        if flag:
            comfy.model_management.in_training = False
        module.train(was_training)


@contextlib.contextmanager
def scoring_host(model, latent_shape: tuple[int, ...]) -> Iterator[ComfyWan]:
    """A no-grad ComfyWan, loaded as for sampling (partially if it does not fit); always released."""
    patcher = model.clone()
    comfy.model_management.load_models_gpu([patcher], memory_required=patcher.memory_required(latent_shape))
    host = ComfyWan(patcher, training=False)
    try:
        yield host
    finally:
        host.release()
        comfy.model_management.soft_empty_cache()


def _load_for_training(
    patcher, latent_shape: tuple[int, ...], gradient_checkpointing: bool, reserve: int | None
) -> None:
    """Compute dtype, then a full load, or with checkpointing a partial one leaving `reserve` bytes for the step
    (fym.plan's; without a plan, 3x ComfyUI's sampling estimate for the latent)."""
    dtype = training_dtype(patcher)
    if dtype != (patcher.model.manual_cast_dtype or patcher.model.get_dtype()):
        patcher.set_model_compute_dtype(dtype)
    if gradient_checkpointing:
        reserve = reserve or 3 * patcher.memory_required(latent_shape)
        comfy.model_management.load_models_gpu([patcher], memory_required=reserve)
    else:
        comfy.model_management.load_models_gpu([patcher], memory_required=1e20, force_full_load=True)


@contextlib.contextmanager
def training_host(
    model, latent_shape: tuple[int, ...], gradient_checkpointing: bool, reserve: int | None = None
) -> Iterator[ComfyWan]:
    """A ComfyWan set up for training; always released.

    Without checkpointing the clone is loaded fully (as the stock trainer does). With it, ComfyUI may load
    it partially, as for sampling, leaving `reserve` bytes free for the step (nodes/memory.py: the planned
    activations, LoRA and optimizer state), and stream the rest per block: that is how 14B trains on a 24 GB card.
    """
    with torch.inference_mode(False):
        patcher = _non_dynamic_clone(model)
        _unload_sharing(patcher)
        try:
            with tensors_put_back(patcher.model.diffusion_model):
                _load_for_training(patcher, latent_shape, gradient_checkpointing, reserve)
                host = ComfyWan(patcher, training=True)
                try:
                    make_autograd_safe(host.diffusion_model)
                    with (
                        torch.enable_grad(),
                        _in_training(host.diffusion_model),
                        _differentiable_linears(host.diffusion_model),
                    ):
                        host.diffusion_model.requires_grad_(False)  # only the adapters train
                        yield host
                finally:
                    host.release()
        finally:
            comfy.model_management.soft_empty_cache()  # after the copies are dropped
