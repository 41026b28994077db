"""Peak memory and FLOPs of one step of a stage, planned without a GPU (and the CLI `python -m fym.plan`).

The plan runs the stage's real code (fym.train's loss and backward, fym.heads' scoring) on diffusers' Wan built
of fake tensors (torch._subclasses.fake_tensor): no weight is allocated and nothing is computed, but every
operator runs with its real shapes and dtypes. A dispatch mode counts the bytes of the tensors alive at each
operator (activations saved for backward, the attention's outputs and statistics, temporaries), and
torch.utils.flop_counter counts the FLOPs. Weights, LoRA, optimizer state and gradients are the tensors' own
sizes. So the plan follows the code: change the loss, the sampling or the checkpointing and the plan changes.

What it models of ComfyUI's loading: fp8 / fp8_scaled weights are stored in 1 byte and cast to the compute
dtype per call (the copy is kept for backward without checkpointing, as ComfyUI's manual cast does); blocks not
kept on the card (lowvram partial load) cost no resident memory but a per-call copy of their weights.
Checked against H100 measurements in bench/results/memory_plan_check.json (bench/memory_plan_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import types
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .config import SPATIAL, TEMPORAL, WAN_HEAD_DIM, ClassifyConfig, TrainConfig, latent_frames

STAGES = ("classify", "spatial", "temporal")
WEIGHT_DTYPES = {  # ComfyUI's weight_dtype choices -> the dtype weights are stored in
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp8": torch.float8_e4m3fn,
    "fp8_scaled": torch.float8_e4m3fn,
}
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TEXT_TOKENS, TEXT_DIM = 512, 4096  # Wan's umT5 caption: 512 tokens of 4096
GIB = 2**30
# An H100's rate on Wan training steps of >= 20k tokens (bench/results/memory_plan_check.json, 1.3B 81 frames:
# 422 and 428 TFLOP/s of the planned FLOPs); shorter steps run slower (5120 tokens: 213), so times are a floor.
H100_TFLOP_PER_S = 420.0
TRACED_BLOCKS = 2  # `plan` traces this many blocks and one more, and extrapolates to the model's


@dataclass(frozen=True)
class Architecture:
    """A Wan transformer's shape (the official configs). in_channels > out_channels: image-to-video by
    concatenated channels (mask + first-frame latent)."""

    dim: int
    ffn_dim: int
    num_layers: int
    in_channels: int = 16
    out_channels: int = 16
    vae_stride: tuple[int, int, int] = (4, 8, 8)  # (frames, height, width) pixels per latent

    @property
    def num_heads(self) -> int:
        return self.dim // WAN_HEAD_DIM


ARCHITECTURES = {
    "wan2.1-1.3b": Architecture(1536, 8960, 30),
    "wan2.1-14b": Architecture(5120, 13824, 40),
    "wan2.2-a14b": Architecture(5120, 13824, 40),  # one expert: ComfyUI loads one at a time
    "wan2.2-a14b-i2v": Architecture(5120, 13824, 40, in_channels=36),
    "wan2.2-ti2v-5b": Architecture(3072, 14336, 30, in_channels=48, out_channels=48, vae_stride=(4, 16, 16)),
}


@dataclass(frozen=True)
class Setting:
    """What is planned: a model, a clip size, a stage and how it trains.

    frames: video frames of the reference clip (Wan's 4k + 1). frame_count, sparse_sampling: the temporal
    stage's latent frames per step (fym.config.TEMPORAL's). blocks_on_card: transformer blocks ComfyUI keeps on
    the card (None = all; fewer = lowvram partial load). temporal_share: share of heads in the trained stage's
    head map (the LoRA's size; 0.5 as in bench/sparse_vs_full's map).
    """

    model: str | Architecture = "wan2.1-1.3b"
    width: int = 832
    height: int = 480
    frames: int = 81
    stage: str = "temporal"
    weight_dtype: str = "bf16"
    compute_dtype: str = "bf16"
    rank: int = TEMPORAL.rank
    frame_count: int = TEMPORAL.frame_count
    sparse_sampling: bool = TEMPORAL.sparse_sampling
    gradient_checkpointing: bool = False
    blocks_on_card: int | None = None
    temporal_share: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (
                isinstance(self.model, Architecture) or self.model in ARCHITECTURES,
                f"model must be one of {', '.join(ARCHITECTURES)}; got {self.model!r}",
            ),
            (self.stage in STAGES, f"stage must be one of {', '.join(STAGES)}; got {self.stage!r}"),
            (self.weight_dtype in WEIGHT_DTYPES, f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}"),
            (self.compute_dtype in COMPUTE_DTYPES, f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}"),
            (self.frames >= 1 and self.width >= 16 and self.height >= 16, "frames >= 1, width, height >= 16"),
            (0 < self.temporal_share < 1, "temporal_share must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def architecture(self) -> Architecture:
        return self.model if isinstance(self.model, Architecture) else ARCHITECTURES[self.model]

    def latent_shape(self) -> tuple[int, int, int, int]:
        """(C, T, H, W) of the clip's latent: T latent frames of H x W."""
        stride_t, stride_h, stride_w = self.architecture.vae_stride
        frames = latent_frames(self.frames) if stride_t == 4 else self.frames
        return (self.architecture.out_channels, frames, self.height // stride_h, self.width // stride_w)


@dataclass(frozen=True)
class Plan:
    """Planned memory of one step in bytes (peak = every part at the step's peak) and its FLOPs.

    weights: the model's resident weights. lora, optimizer, gradients: the trained LoRA's factors, AdamW's two
    moments, their gradients. activations: the peak of everything the step itself allocates (saved activations,
    attention outputs and statistics, per-call weight copies, temporaries); it includes the gradients.
    """

    setting: Setting
    weights: int
    lora: int
    optimizer: int
    activations: int
    flops: int
    tokens: int

    @property
    def peak(self) -> int:
        return self.weights + self.lora + self.optimizer + self.activations

    def row(self) -> dict:
        """The plan as GiB figures and TFLOPs, for tables and JSON."""
        parts = {name: getattr(self, name) / GIB for name in ("weights", "lora", "optimizer", "activations")}
        return {"stage": self.setting.stage, "tokens": self.tokens, **parts, "peak": self.peak / GIB,
                "tflops": self.flops / 1e12}  # fmt: skip


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages allocated under it that are still alive, and their peak (a view or an in-place
    result shares its input's storage and is not counted again)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._storages: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage._cdata
                if key not in self._storages and key not in inputs:  # not a view or in-place result
                    size = storage.nbytes()
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    self._storages[key] = weakref.ref(storage, self._on_free(key, size))
        return out

    def _on_free(self, key: int, size: int):
        def free(_) -> None:
            self.live -= size
            self._storages.pop(key, None)

        return free


def flop_counter():
    """torch's FlopCounterMode, taught the CPU flash-attention ops (what fake CPU tensors run)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop

    aten = torch.ops.aten
    return FlopCounterMode(
        display=False,
        custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flop.__wrapped__,  # the GPU ops' formulas
            aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward_flop.__wrapped__,
        },
    )


def _cast_forward(self, x: torch.Tensor) -> torch.Tensor:
    """A Linear whose weight is cast (fp8) or copied (offloaded) to the input's dtype per call, as ComfyUI's
    manual cast does; autograd keeps the copy for backward."""
    weight = self.weight.to(x.dtype, copy=True)
    if getattr(self, "scale_weight", None) is not None:
        weight = weight * self.scale_weight
    bias = None if self.bias is None else self.bias.to(x.dtype, copy=True)
    return F.linear(x, weight, bias)


class _FusedRMSNorm(torch.autograd.Function):
    """RMSNorm as a GPU runs it (torch's fused CUDA kernel keeps only its input and 1 / rms for backward); a CPU
    runs a composite whose fp32 temporaries autograd keeps, which a GPU never holds. Frozen weight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        rstd = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)  # (..., 1)
        ctx.save_for_backward(x, weight, rstd)
        return (x.float() * rstd * weight.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        normed = x.float() * rstd
        scaled = grad.float() * weight.float()
        grad_x = rstd * (scaled - normed * (scaled * normed).mean(-1, keepdim=True))
        return grad_x.to(x.dtype), None, None


def _fused_rms_norm_forward(self, x: torch.Tensor) -> torch.Tensor:
    return _FusedRMSNorm.apply(x, self.weight, self.eps or torch.finfo(x.dtype).eps)


def build_wan(setting: Setting) -> nn.Module:
    """diffusers' Wan of `setting`'s architecture in the compute dtype, weights as ComfyUI holds them, norms as a
    GPU runs them (of fake tensors under a FakeTensorMode)."""
    from diffusers import WanTransformer3DModel

    arch = setting.architecture
    default = torch.get_default_dtype()
    torch.set_default_dtype(COMPUTE_DTYPES[setting.compute_dtype])  # built in it: fake tensors cannot be .to()'d
    try:
        model = WanTransformer3DModel(
            num_attention_heads=arch.num_heads, attention_head_dim=WAN_HEAD_DIM, in_channels=arch.in_channels,
            out_channels=arch.out_channels, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=arch.ffn_dim,
            num_layers=arch.num_layers,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(default)
    for norm in model.modules():
        if isinstance(norm, nn.RMSNorm):
            norm.forward = types.MethodType(_fused_rms_norm_forward, norm)
    weight_dtype = WEIGHT_DTYPES[setting.weight_dtype]
    on_card = arch.num_layers if setting.blocks_on_card is None else setting.blocks_on_card
    for index, block in enumerate(model.blocks):
        for linear in block.modules():
            if not isinstance(linear, nn.Linear):
                continue
            offloaded = index >= on_card
            if weight_dtype.itemsize == 1:
                linear.weight = nn.Parameter(torch.zeros(linear.weight.shape, dtype=weight_dtype), False)
                if setting.weight_dtype == "fp8_scaled":
                    linear.scale_weight = torch.ones((), dtype=torch.float32)
            if offloaded or weight_dtype.itemsize == 1:
                linear.forward = types.MethodType(_cast_forward, linear)
            linear.offloaded = offloaded
    return model


def _resident_bytes(model: nn.Module) -> int:
    """Bytes of the weights that stay on the card (not those of offloaded Linears)."""
    total = 0
    for module in model.modules():
        if getattr(module, "offloaded", False):
            continue
        total += sum(t.nbytes for t in module.parameters(recurse=False))
        total += sum(t.nbytes for t in module.buffers(recurse=False))
    return total


def _clip(setting: Setting):
    """The reference clip's latents and Condition as the nodes give them (fp32): (1, C, T, H, W) video or
    (1, C, 1, H, W) frame latents for the spatial stage; image-to-video gets a concatenated first frame."""
    from .host import GIVEN_BY_CONCAT, Condition

    channels, frames, height, width = setting.latent_shape()
    if setting.stage == "spatial":
        frames = 1
    arch = setting.architecture
    text = torch.zeros(1, TEXT_TOKENS, TEXT_DIM)
    latents = torch.zeros(1, channels, frames, height, width)
    if arch.in_channels == arch.out_channels:
        return latents, Condition(text)
    concat = torch.zeros(1, arch.in_channels - arch.out_channels, frames, height, width)
    return latents, Condition(text, per_frame={"concat": concat}, first_frame=GIVEN_BY_CONCAT)


def _half_map(shape, temporal_share: float):
    from .heads import HeadMap

    temporal = max(1, round(shape.num_heads * temporal_share))
    spatial_scores = [[1.0] * (shape.num_heads - temporal) + [0.0] * temporal for _ in range(shape.num_layers)]
    temporal_scores = [[0.0] * (shape.num_heads - temporal) + [1.0] * temporal for _ in range(shape.num_layers)]
    return HeadMap(shape, spatial_scores, temporal_scores, 1.0, [0.5], 1, 1)


def stage_config(setting: Setting) -> TrainConfig:
    defaults = SPATIAL if setting.stage == "spatial" else TEMPORAL
    return replace(
        defaults, steps=1, rank=setting.rank, alpha=float(setting.rank), frame_count=setting.frame_count,
        sparse_sampling=setting.sparse_sampling, gradient_checkpointing=setting.gradient_checkpointing,
    )  # fmt: skip


@functools.lru_cache(maxsize=256)
def plan(setting: Setting, classify: ClassifyConfig | None = None) -> Plan:
    """Plan one step of `setting`'s stage (one training step; for "classify", one scoring pass). Plans are kept
    (settings and plans are frozen), so the searches below and a re-queued node trace each setting once.

    Wan's blocks are alike, so every figure is linear in the blocks kept on the card and the blocks off it: the
    stage is traced with TRACED_BLOCKS blocks and one more of each kind, and the rest follows (`trace` runs the
    whole model; tests check that both agree).
    """
    arch = setting.architecture
    layers = arch.num_layers
    on_card = layers if setting.blocks_on_card is None else min(setting.blocks_on_card, layers)
    if layers <= TRACED_BLOCKS + 1:
        return trace(setting, classify)

    def small(blocks: int, resident: int) -> Plan:
        return trace(replace(setting, model=replace(arch, num_layers=blocks), blocks_on_card=resident), classify)

    resident = min(on_card, TRACED_BLOCKS)
    first = small(TRACED_BLOCKS, resident)
    more_resident = small(TRACED_BLOCKS + 1, resident + 1) if on_card > resident else first
    more_offloaded = small(TRACED_BLOCKS + 1, resident) if layers - on_card > TRACED_BLOCKS - resident else first
    figures = {}
    for name in ("weights", "lora", "optimizer", "activations", "flops"):
        base = getattr(first, name)
        figures[name] = (
            base
            + (on_card - resident) * (getattr(more_resident, name) - base)
            + (layers - on_card - (TRACED_BLOCKS - resident)) * (getattr(more_offloaded, name) - base)
        )
    return Plan(setting, tokens=first.tokens, **figures)


def trace(setting: Setting, classify: ClassifyConfig | None = None) -> Plan:
    """The plan of one step traced through the whole model (`plan` traces a few blocks and extrapolates).

    Two traces: FlopCounterMode keeps tensors alive that checkpointing would free, so memory is counted alone.
    """
    live, flops = LiveBytes(), flop_counter()
    with prepared_step(setting, classify) as (step, weights, lora):
        with live:
            step()
    with prepared_step(setting, classify) as (step, _, _):
        with flops:
            step()
    optimizer = 2 * lora  # AdamW's exp_avg and exp_avg_sq, as the LoRA's fp32 factors
    return Plan(setting, weights, lora, optimizer, live.peak, flops.get_total_flops(), _tokens(setting))


@contextlib.contextmanager
def prepared_step(setting: Setting, classify: ClassifyConfig | None = None, fake: bool = True):
    """Yields (step, resident weight bytes, LoRA bytes): the model, clip and LoRA of `setting` built on the CPU
    (of fake tensors unless fake is False), and step() running one step of its stage as fym.train runs it (the
    loss and its backward) or one scoring pass of fym.heads."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .checkpoint import Checkpoints
    from .diffusers_host import DiffusersWan
    from .heads import head_similarities
    from .lora import make_adapters
    from .train import Run, check_stage_inputs

    fakes = FakeTensorMode() if fake else contextlib.nullcontext()
    with torch.inference_mode(False), torch.enable_grad(), fakes, torch.device("cpu"):  # ComfyUI runs nodes in
        model = build_wan(setting)  # inference mode
        host = DiffusersWan(model)
        latents, condition = _clip(setting)
        if setting.stage == "classify":
            config = classify or ClassifyConfig()
            yield (lambda: head_similarities(host, latents, condition, config)), _resident_bytes(model), 0
            return
        config = stage_config(setting)
        head_map = _half_map(host.shape, setting.temporal_share)
        heads = check_stage_inputs(setting.stage, tuple(latents.shape), head_map, host.shape, config)
        adapters = make_adapters(host.shape, heads, config.rank, config.alpha)
        params = [p.requires_grad_(True) for adapter in adapters.values() for p in adapter.parameters()]
        host.attach("plan", adapters)
        run = Run(host, setting.stage, [(latents, condition)], adapters, config, None, None, None, Checkpoints(), {})

        def step() -> None:
            with host.checkpointing(config.gradient_checkpointing):
                run._loss(random.Random(config.seed), torch.Generator().manual_seed(config.seed)).backward()

        yield step, _resident_bytes(model), sum(p.nbytes for p in params)


def _tokens(setting: Setting) -> int:
    """Transformer tokens of one step (patches of 2 x 2 latent pixels)."""
    _, frames, height, width = setting.latent_shape()
    if setting.stage == "spatial":
        frames = 1
    elif setting.stage == "temporal" and setting.sparse_sampling:
        frames = min(
            frames, setting.frame_count + (setting.architecture.in_channels != setting.architecture.out_channels)
        )
    return frames * (height // 2) * (width // 2)


def plans(setting: Setting) -> Iterator[Plan]:
    """The plan of each stage for `setting`'s model, size and training settings."""
    for stage in STAGES:
        yield plan(replace(setting, stage=stage))


def blocks_that_fit(setting: Setting, card_bytes: int) -> int | None:
    """The most transformer blocks `setting` can keep on a card of card_bytes (the rest streamed per call, as
    ComfyUI's partial load does), or None if it does not fit even with every block off the card. Memory is
    linear in the blocks on the card, so two plans decide it."""
    layers = setting.architecture.num_layers
    none_on_card = plan(replace(setting, blocks_on_card=0)).peak
    if none_on_card > card_bytes:
        return None
    per_block = (plan(replace(setting, blocks_on_card=None)).peak - none_on_card) / layers  # None: all on the card
    return layers if per_block <= 0 else min(layers, int((card_bytes - none_on_card) // per_block))


def describe(setting: Setting, change: Setting) -> str:
    """What a user changes to go from `setting` to `change`, in the nodes' words."""
    layers = setting.architecture.num_layers
    words = []
    if change.gradient_checkpointing and not setting.gradient_checkpointing:
        words.append("turn on gradient_checkpointing")
    if change.weight_dtype != setting.weight_dtype:
        words.append("load the model with weight_dtype fp8_e4m3fn")
    if change.frame_count != setting.frame_count:
        words.append(f"frame_count {change.frame_count}")
    if (change.width, change.height) != (setting.width, setting.height):
        words.append(f"a {change.width}x{change.height} reference (Prepare Reference's width and height)")
    if change.blocks_on_card is not None and change.blocks_on_card < layers:
        words.append(f"keep {change.blocks_on_card} of {layers} blocks on the card (slower steps)")
    return ", ".join(words)


def least_memory(setting: Setting) -> Setting:
    """`setting` with every change that keeps its clip: checkpointing (training stages: scoring has no backward),
    fp8 weights, every block off the card."""
    training = setting.stage != "classify"
    weights = setting.weight_dtype if WEIGHT_DTYPES[setting.weight_dtype].itemsize == 1 else "fp8"
    return replace(setting, gradient_checkpointing=training or setting.gradient_checkpointing, weight_dtype=weights,
                   blocks_on_card=0)  # fmt: skip


def cheapest_fit(setting: Setting, card_bytes: int) -> Setting | None:
    """`setting` if it fits card_bytes, else the first change of it that fits, in order of what it costs the user, or None: gradient
    checkpointing (slower steps, same result), fp8 weights with it (a small quality cost), then either with
    blocks kept off the card (slower still), fewer temporal frames per step, a 3/4 then 1/2 size reference."""
    if plan(setting).peak <= card_bytes:
        return setting
    least = least_memory(setting)
    ckpt = replace(setting, gradient_checkpointing=least.gradient_checkpointing)
    fp8 = replace(ckpt, weight_dtype=least.weight_dtype)
    whole = list(dict.fromkeys([ckpt, fp8] if setting.stage != "classify" else [fp8]))
    for candidate in whole:
        if plan(candidate).peak <= card_bytes:
            return candidate
    smaller = []
    if setting.stage == "temporal" and setting.sparse_sampling and setting.frame_count > 3:
        smaller.append(replace(fp8, frame_count=3))
    for scale in (0.75, 0.5):
        width, height = (max(16, int(side * scale) // 16 * 16) for side in (setting.width, setting.height))
        smaller.append(replace((smaller or whole)[-1], width=width, height=height))
    for candidate in whole + smaller:
        blocks = blocks_that_fit(candidate, card_bytes)
        if blocks is not None:
            return replace(candidate, blocks_on_card=blocks)
    return None


def _parse_size(text: str) -> tuple[int, int, int]:
    try:
        width, height, frames = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHTxFRAMES (e.g. 832x480x81); got {text!r}") from None
    return width, height, frames


def table(setting: Setting, card_gib: float | None = None) -> str:
    """A markdown table of the three stages' plans (GiB, TFLOPs per step), and what fits the card."""
    lines = [
        f"{setting.model}, {setting.width}x{setting.height}x{setting.frames}, weights {setting.weight_dtype}, "
        f"compute {setting.compute_dtype}, rank {setting.rank}, checkpointing "
        f"{'on' if setting.gradient_checkpointing else 'off'}"
        + ("" if setting.blocks_on_card is None else f", {setting.blocks_on_card} blocks on the card"),
        "",
        "| stage | tokens | weights | LoRA + optimizer | activations | peak GiB | TFLOPs/step | H100 s/step >= |"
        + (f" on a {card_gib:g} GiB card |" if card_gib else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if card_gib else ""),
    ]
    for stage_plan in plans(setting):
        row = stage_plan.row()
        line = (
            f"| {row['stage']} | {row['tokens']} | {row['weights']:.1f} | {row['lora'] + row['optimizer']:.2f} | "
            f"{row['activations']:.1f} | {row['peak']:.1f} | {row['tflops']:.1f} | {row['tflops'] / H100_TFLOP_PER_S:.2f} |"
        )
        if card_gib:
            change = cheapest_fit(stage_plan.setting, int(card_gib * GIB))
            if change is None:
                line += " no: nothing tried fits |"
            else:
                line += f" {'fits' if change == stage_plan.setting else 'fits with: ' + describe(stage_plan.setting, change)} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fym.plan", description="Plan peak GPU memory and FLOPs of each stage before training."
    )
    parser.add_argument("--model", choices=ARCHITECTURES, default="wan2.2-a14b-i2v")
    parser.add_argument("--size", type=_parse_size, default=(832, 480, 81), help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--card", type=float, help="the card's memory in GiB: say what fits")
    parser.add_argument("--weights", choices=WEIGHT_DTYPES, default="bf16")
    parser.add_argument("--compute", choices=COMPUTE_DTYPES, default="bf16")
    parser.add_argument("--rank", type=int, default=TEMPORAL.rank)
    parser.add_argument("--frame-count", type=int, default=TEMPORAL.frame_count)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--blocks-on-card", type=int)
    args = parser.parse_args(argv)
    width, height, frames = args.size
    setting = Setting(
        args.model, width, height, frames, weight_dtype=args.weights, compute_dtype=args.compute, rank=args.rank,
        frame_count=args.frame_count, gradient_checkpointing=args.checkpointing, blocks_on_card=args.blocks_on_card,
    )  # fmt: skip
    print(table(setting, args.card))  # noqa: T201 (the CLI's output)


if __name__ == "__main__":
    main()
