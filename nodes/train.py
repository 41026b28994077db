"""Spatial and temporal LoRA training nodes (paper stages 2 and 3)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import comfy.utils
import torch
from comfy_api.latest import io

from ..fym.checkpoint import Checkpoints
from ..fym.config import CHECKPOINT_EVERY, EXPERTS, PREVIEW_EVERY, PREVIEW_STEPS, SPATIAL, TEMPORAL, TrainConfig
from ..fym.heads import SPATIAL as SPATIAL_STAGE
from ..fym.heads import TEMPORAL as TEMPORAL_STAGE
from ..fym.preview import Preview
from ..fym.train import NonFiniteLoss, check_resume, check_stage_inputs, train_stage
from .feedback import (
    NO_CHECKPOINT,
    LossFeed,
    checkpoint_names,
    checkpoint_writer,
    model_summary,
    preview_shower,
    read_checkpoint,
)
from .heads import EXPERT_INPUT
from .lora import applied_loras, apply_motion_lora
from .memory import check_memory
from .queue_checks import take_problem
from .types import CATEGORY, HeadMapType, MotionLoRAType, ReferenceClipsType, node_error
from .wan_host import training_host, wan_condition, wan_noise_range, wan_shape

log = logging.getLogger(__name__)


def common_inputs(defaults: TrainConfig, latent_name: str, latent_tooltip: str) -> list:
    """Inputs both training nodes share, with defaults read from the stage's TrainConfig."""
    return [
        io.Model.Input("model", tooltip="A Wan model: 2.1 T2V/I2V, a Wan 2.2 A14B T2V/I2V expert, or Wan 2.2 TI2V 5B."),
        io.Latent.Input(latent_name, tooltip=latent_tooltip),
        io.Conditioning.Input(
            "positive",
            tooltip="Caption of the reference clip (CLIPTextEncode, Wan text encoder). For an I2V model: WanImageToVideo's positive with the reference's first frame as start_image.",
        ),
        HeadMapType.Input("head_map", tooltip="From Classify Heads: decides which heads get this LoRA."),
        io.Int.Input(
            "steps",
            default=defaults.steps,
            min=1,
            max=100000,
            tooltip=f"Optimizer steps (paper: {defaults.steps}). On MotionBench's small Wan, 1500 per stage at lr 1e-3 "
            "imprinted the motion and 500 did not (README: MotionBench).",
        ),
        io.Int.Input(
            "rank",
            default=defaults.rank,
            min=1,
            max=512,
            tooltip="LoRA rank (paper: 128, for Wan's 1536-5120 wide layers). MotionBench's 512-wide Wan used 32.",
        ),
        io.Float.Input(
            "lora_alpha",
            default=defaults.alpha,
            min=0.01,
            max=1024.0,
            step=0.5,
            tooltip="LoRA alpha; the update is scaled by alpha / rank. The paper does not say; alpha = rank (scale 1) keeps the paper's learning rate meaningful. Stock ComfyUI training uses alpha 1.",
        ),
        io.Float.Input(
            "learning_rate",
            default=defaults.learning_rate,
            min=1e-8,
            max=1.0,
            step=1e-6,
            tooltip="AdamW learning rate. Default: the paper's 1e-5, from its experiments on real Wan (not measured by "
            "this pack at that size). On MotionBench's small Wan (14 M parameters) 1e-5 moved nothing and 1e-3 was "
            "needed: Adam moves every weight by about lr per step whatever the model, and a narrow model sums fewer "
            "of those moves per output, so small models need larger rates. If the previews do not change after a "
            "few hundred steps, try 1e-4 (common LoRA practice).",
        ),
        io.Float.Input(
            "weight_decay",
            default=defaults.weight_decay,
            min=0.0,
            max=10.0,
            step=0.01,
            tooltip=WEIGHT_DECAY_TIPS[defaults.weight_decay],
        ),
        io.Float.Input(
            "timestep_shift",
            default=defaults.timestep_shift,
            min=0.1,
            max=20.0,
            step=0.1,
            tooltip="Shift of the training noise levels, as Wan samples them (Wan 2.1: 8.0, which favours high noise where motion forms). The paper does not say.",
        ),
        io.Boolean.Input(
            "gradient_checkpointing",
            default=defaults.gradient_checkpointing,
            tooltip="Recompute activations in the backward pass: much less memory, about a third slower. Turn on for "
            "81 frames or 14B. fp8 weights save memory only with it on (off, each step keeps a bf16 copy of every "
            "fp8 weight: README, On a GPU).",
        ),
        io.Int.Input(
            "log_every",
            default=defaults.log_every,
            min=1,
            max=10000,
            tooltip="Log the loss to the console, and check it is finite, every N steps.",
        ),
        io.Int.Input(
            "seed",
            default=defaults.seed,
            min=0,
            max=2**31 - 1,
            control_after_generate=False,  # re-queueing must reuse the cached result, not retrain
            tooltip="Seed of frame choice, noise and noise levels. Same inputs and seed = same LoRA, so re-queueing reuses the cached result.",
        ),
    ]


def extra_inputs() -> list:
    """Inputs both training nodes end with (optional, so workflows and API prompts saved before them still run)."""
    return [
        io.Int.Input(
            "preview_every", default=PREVIEW_EVERY, min=0, max=100000, optional=True,
            tooltip=f"Every N steps, show on this node what the LoRA does now: the first frames sampled from a fixed "
            f"noise in {PREVIEW_STEPS} steps without guidance, colours from the latent (no VAE), so about "
            f"{PREVIEW_STEPS // 3} training steps' time. 0 = off. Not from the paper.",
        ),
        io.Int.Input(
            "checkpoint_every", default=CHECKPOINT_EVERY, min=0, max=100000, optional=True,
            tooltip="Every N steps and at the end, save what is needed to resume (the LoRA, optimizer and random "
            "state) under output/fym_checkpoints; each run writes its own files and keeps its newest two, and only "
            "the stage's newest three runs (and the one resumed from) are kept; none is overwritten. 0 = off. Not "
            "from the paper.",
        ),
        io.Combo.Input(
            "resume_from", options=checkpoint_names(), default=NO_CHECKPOINT, optional=True,
            tooltip="Continue a run from one of its checkpoints (after Cancel, a crash or a restart; press R to see "
            "new ones): same inputs and settings, any 'steps' at least the checkpoint's, and the result is the LoRA "
            "of a run that never stopped. A checkpoint of another model, head map, stage or setting is refused.",
        ),
        io.Conditioning.Input(
            "preview_positive", optional=True,
            tooltip="Prompt of the previews (same size and length for an I2V model). Unconnected: the reference's "
            "own caption, so the preview shows how well the LoRA reconstructs the reference.",
        ),
        ReferenceClipsType.Input(
            "more_clips", optional=True,
            tooltip="Other clips of the same motion (Add Reference Clip), trained with this one: each step draws one "
            "clip at random. Clips that look different make the LoRA learn the motion, not one clip's look. Connect "
            "the same clips to both training nodes. Not from the paper (MotionDirector trains on several clips).",
        ),
    ]  # fmt: skip


REQUEUE_NOTE = (
    " Re-queueing with unchanged inputs reuses the result, except on newer ComfyUI when it has freed cached results "
    "because RAM ran low: then it trains again. Save the LoRA with Save Motion LoRA to keep it."
)

WEIGHT_DECAY_TIPS = {
    SPATIAL.weight_decay: "AdamW weight decay (paper: 0.1 for the spatial stage).",
    TEMPORAL.weight_decay: "AdamW weight decay. The paper uses 0.99 for the temporal stage, far above the usual 0.01-0.1; with lr 1e-5 it shrinks the LoRA by about 1% per 1000 steps.",
}

OUTPUTS = [
    io.Model.Output(
        "trained_model",
        display_name="model",
        tooltip="The input model with this LoRA applied at strength 1 (for checking the reconstruction).",
    ),
    MotionLoRAType.Output(
        "motion_lora",
        display_name="motion_lora",
        tooltip="The trained LoRA with its metadata; connect to Save Motion LoRA or Apply Motion LoRA.",
    ),
    io.LossMap.Output(
        "loss", display_name="loss", tooltip="Loss per step, in core's format (connect to Plot Loss Graph)."
    ),
    io.LoraModel.Output(
        "lora",
        display_name="lora",
        tooltip="The LoRA weights in core's LORA_MODEL format (core Save LoRA Weights / Load LoRA Model).",
    ),
]


EXTRA = ("preview_every", "preview_positive", "checkpoint_every", "resume_from", "more_clips")


def extra_settings(node_class, settings: dict) -> dict:
    """Takes the extra inputs (feedback, more clips) out of `settings` (the rest are TrainConfig fields), with the
    node's id."""
    extra = {name: settings.pop(name) for name in EXTRA if name in settings}
    return {**extra, "unique_id": node_class.hidden.unique_id}


def config_from(node: str, defaults: TrainConfig, model, settings: dict) -> TrainConfig:
    """The stage's TrainConfig with the node's widget values (widget ids are the field names; lora_alpha = alpha,
    expert = noise_range)."""
    settings = {"expert": EXPERTS[0], **settings}
    settings["alpha"] = settings.pop("lora_alpha")
    try:
        settings["noise_range"] = wan_noise_range(model, settings.pop("expert"), node)
        return replace(defaults, **settings)
    except ValueError as error:
        raise node_error(node, error) from None


def check_spatial_lora_under(model, head_map, node: str) -> None:
    """The temporal stage trains on top of the spatial LoRA of the same head map (paper Sec. 3.2): refuse a
    MODEL that does not carry it, before any work."""
    spatial = [lora for lora in applied_loras(model) if lora["stage"] == SPATIAL_STAGE]
    if not spatial:
        raise ValueError(
            f"{node}: the MODEL carries no spatial LoRA. Connect Spatial LoRA Train's 'model' output here (or "
            "Load Motion LoRA + Apply Motion LoRA at strength 1 with the saved spatial LoRA), so the temporal LoRA "
            "learns motion and not the reference's look"
        )
    wanted = {str(layer): heads for layer, heads in head_map.heads(SPATIAL_STAGE).items()}
    if spatial[-1]["heads"] != wanted:
        raise ValueError(
            f"{node}: the spatial LoRA on the MODEL was trained on another head map than the one connected here; "
            "connect the same Classify Heads (or Load Head Map) output to both training nodes"
        )


def training_clips(node: str, stage: str, model, latent, positive, head_map, config: TrainConfig, more_clips):
    """[(latents in the model's space, Condition)] of the node's clip and its more_clips, each checked against
    the model and the stage before any work; errors name the clip."""
    more = [
        (clip.frame_latents if stage == SPATIAL_STAGE else clip.video_latent, clip.positive)
        for clip in more_clips or []
    ]
    shape = wan_shape(model, node)
    clips = []
    for number, (clip_latent, clip_positive) in enumerate([(latent, positive), *more]):
        samples = clip_latent["samples"]
        try:
            check_stage_inputs(stage, tuple(samples.shape), head_map, shape, config)
            condition = wan_condition(model, clip_positive, tuple(samples.shape), node)
        except ValueError as error:
            if number:
                error = ValueError(f"more_clips' clip {number}: {str(error).removeprefix(node + ': ')}")
            raise error from None
        clips.append((model.model.process_latent_in(samples.clone()), condition))
    return clips


def run_training(node: str, stage: str, model, latent, positive, head_map, config: TrainConfig, extra: dict):
    """Checks everything, trains on a loaded clone, and returns the node's outputs; the input model is untouched.

    extra: the node's preview_every, preview_positive, checkpoint_every, resume_from, more_clips and unique_id."""
    samples = latent["samples"]
    try:
        clips = training_clips(node, stage, model, latent, positive, head_map, config, extra.get("more_clips"))
        preview_condition = None
        if extra.get("preview_positive") is not None:
            preview_condition = wan_condition(model, extra["preview_positive"], tuple(samples.shape), node)
        if stage == TEMPORAL_STAGE:
            check_spatial_lora_under(model, head_map, node)
        checkpoints = Checkpoints(
            every=extra.get("checkpoint_every", CHECKPOINT_EVERY),
            write=checkpoint_writer(stage, extra.get("resume_from")),
            resume=read_checkpoint(extra.get("resume_from")), model=model_summary(model),
        )  # fmt: skip
        check_resume(stage, clips, head_map, config, checkpoints)  # before the model is loaded
        largest = max((tuple(clip.shape) for clip, _ in clips), key=math.prod)
        reserve = check_memory(node, model, stage, largest, config, extra.get("unique_id"))
    except ValueError as error:
        raise node_error(node, error) from None
    progress = comfy.utils.ProgressBar(config.steps)  # its hook raises when the user presses Cancel
    preview = Preview(
        every=extra.get("preview_every", PREVIEW_EVERY), show=preview_shower(model, progress),
        condition=preview_condition, frames=1 if stage == SPATIAL_STAGE else config.frame_count, seed=config.seed,
    )  # fmt: skip
    with_first = stage == TEMPORAL_STAGE and clips[0][1].first_frame is not None  # sparse samples add frame 0
    frames = 1 if stage == SPATIAL_STAGE else config.frame_count + with_first if config.sparse_sampling else None
    step_shape = max(
        ((1, clip.shape[1], frames or clip.shape[2], *clip.shape[3:]) for clip, _ in clips), key=math.prod
    )  # the largest training sample's latent
    try:
        with training_host(model, step_shape, config.gradient_checkpointing, reserve) as host:
            clips = [(clip.to(host.device), condition.to(host.device)) for clip, condition in clips]
            if preview.condition is not None:
                preview.condition = preview.condition.to(host.device)
            try:
                result = train_stage(
                    host, stage, [clip for clip, _ in clips], [condition for _, condition in clips], head_map, config,
                    on_step=progress.update_absolute, on_log=LossFeed(extra.get("unique_id"), stage, config.steps),
                    preview=preview, checkpoints=checkpoints,
                )  # fmt: skip
            except (ValueError, NonFiniteLoss) as error:
                raise node_error(node, error) from None
            lora, losses = result.lora, result.losses
            del result, clips  # the adapters and their gradients go before the host empties the cache
    except torch.OutOfMemoryError:
        raise torch.OutOfMemoryError(
            f"{node}: out of GPU memory while training. Turn on gradient_checkpointing; with it on, loading the "
            "model with weight_dtype fp8_e4m3fn halves the weights (without it fp8 needs more memory than bf16: each "
            "step keeps a bf16 copy of every fp8 weight). Or use fewer frames or a smaller size in Prepare Reference"
        ) from None
    log.info("%s: %d steps, final loss %.5f", node, config.steps, losses[-1])
    trained = apply_motion_lora(model, lora, 1.0, node)
    return io.NodeOutput(trained, lora, {"loss": losses}, dict(lora.state_dict))


class SpatialLoRATrain(io.ComfyNode):
    NAME = "FYM Spatial LoRA Train"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_SpatialLoRATrain",
            display_name="Spatial LoRA Train (Follow-Your-Motion)",
            category=f"{CATEGORY}/train",
            description="Stage 2: a LoRA on the spatial heads' q, k, v, o only, trained on single random frames, so it "
            "learns the reference's appearance without touching motion. Connect its model to Temporal LoRA Train."
            + REQUEUE_NOTE,
            inputs=common_inputs(
                SPATIAL,
                "frame_latents",
                "Single-frame latents (frames, 16, 1, H, W) from Prepare Reference's frame_latents.",
            )
            + [EXPERT_INPUT, *extra_inputs()],
            outputs=OUTPUTS,
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, frame_latents, positive, head_map, **settings):
        extra = extra_settings(cls, settings)
        config = config_from(cls.NAME, SPATIAL, model, settings)
        return run_training(cls.NAME, SPATIAL_STAGE, model, frame_latents, positive, head_map, config, extra)


class TemporalLoRATrain(io.ComfyNode):
    NAME = "FYM Temporal LoRA Train"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_TemporalLoRATrain",
            display_name="Temporal LoRA Train (Follow-Your-Motion)",
            category=f"{CATEGORY}/train",
            description="Stage 3: a LoRA on the temporal heads only, on top of the frozen spatial LoRA, trained on sparse "
            "frames with adaptive RoPE and the motion loss. Its motion_lora is what you apply to new prompts."
            + REQUEUE_NOTE,
            inputs=common_inputs(
                TEMPORAL, "video_latent", "The reference's video latent (1, 16, T, H, W) from Prepare Reference."
            )
            + [
                io.Boolean.Input(
                    "sparse_sampling",
                    default=TEMPORAL.sparse_sampling,
                    tooltip="Train each step on frame_count latent frames instead of all frames (paper: on; about 4x faster at 81 frames). Off = the paper's 'w/o sparse sampling' ablation.",
                ),
                io.Int.Input(
                    "frame_stride",
                    default=TEMPORAL.frame_stride,
                    min=0,
                    max=64,
                    tooltip="Latent frames between the sampled frames (1 = 4 video frames). 0 = spread over the whole "
                    "clip, one random frame per equal part, as the paper's 16 of 81 frames. N = N apart at a random "
                    "start, lowered where needed so that every frame is trained; smaller = shorter-range motion.",
                ),
                io.Int.Input(
                    "frame_count",
                    default=TEMPORAL.frame_count,
                    min=2,
                    max=256,
                    tooltip="Latent frames per step (paper: 16 of 81 video frames, which its VAE makes about 5 latent frames). At most the clip's latent frames. Image-to-video models also see latent frame 0, the given first frame, every step.",
                ),
                io.Boolean.Input(
                    "adaptive_rope",
                    default=TEMPORAL.adaptive_rope,
                    tooltip="Sampled frames keep their full-clip temporal RoPE positions (paper eq. 2), so the LoRA learns motion at the full frame rate. Off = the 'w/o adaptive RoPE' ablation (positions 0, 1, 2, ...).",
                ),
                io.Float.Input(
                    "motion_loss_weight",
                    default=TEMPORAL.motion_loss_weight,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    tooltip="Weight of the motion loss (1 - cosine of frame-to-frame differences, paper eq. 3; paper: 1). 0 = off.",
                ),
                EXPERT_INPUT,
                *extra_inputs(),
            ],
            outputs=OUTPUTS,
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, frame_count):  # naming only frame_count keeps core's range checks on the others
        if frame_count is not None and frame_count < 2:
            return f"{cls.NAME}: frame_count must be at least 2 (motion needs two frames); got {frame_count}"
        return take_problem() or True  # the whole-graph check made when the prompt was queued

    @classmethod
    def execute(cls, model, video_latent, positive, head_map, **settings):
        extra = extra_settings(cls, settings)
        config = config_from(cls.NAME, TEMPORAL, model, settings)
        return run_training(cls.NAME, TEMPORAL_STAGE, model, video_latent, positive, head_map, config, extra)


NODES = [SpatialLoRATrain, TemporalLoRATrain]
