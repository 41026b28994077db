"""Stages 2 and 3: head-restricted LoRA training (paper Sec. 3.2).

Spatial stage: LoRA on the spatial heads, one random single-frame latent per step, flow-matching loss.
Temporal stage: LoRA on the temporal heads (the spatial LoRA frozen on the model), a sparse strided sample of
the video's latent frames per step whose RoPE positions are their full-clip indices (adaptive RoPE, eq. 2),
and loss = flow matching + weight * motion loss (eq. 3).

Image-to-video models (a Condition with a given first frame) always see latent frame 0 with the sampled frames,
as at inference, where the user's image is frame 0; spatial-stage frames are drawn as frames to generate.
A Wan 2.2 A14B expert trains only in its own noise range (TrainConfig.noise_range).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import Checkpoints, check_resumable, identity
from .config import TrainConfig
from .heads import SPATIAL, TEMPORAL, HeadMap
from .host import GIVEN_CLEAN, Condition, WanHost, WanShape, select_frames, shifted_noise_level, unshifted_noise_level
from .lora import MotionLoRA, export, make_adapters
from .preview import Preview, preview_latent

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    pass


def sparse_frame_indices(num_frames: int, stride: int, count: int, rng: random.Random) -> list[int]:
    """`count` latent-frame indices of a `num_frames` clip for one training step, increasing, drawn so that every
    frame is drawn over the steps.

    - stride 0 (spread): one random frame from each of `count` equal parts of the clip (segment sampling, as
      Temporal Segment Networks, Wang et al. 2016), on average num_frames / count apart: the whole clip, as the
      paper's 16 of 81 video frames at stride 5.
    - stride N: `count` frames `window_stride(...)` apart (N, or less where N's window could not reach every frame)
      at a random start.
    """
    if count > num_frames:
        raise ValueError(
            f"frame_count {count} is more than the clip's {num_frames} latent frames; lower frame_count to "
            f"{num_frames} or use a longer clip ({4 * (count - 1) + 1} video frames)"
        )
    if stride == 0:
        bounds = [num_frames * i // count for i in range(count + 1)]
        return [rng.randrange(low, high) for low, high in zip(bounds[:-1], bounds[1:], strict=True)]
    spacing = window_stride(num_frames, stride, count)
    start = rng.randrange(num_frames - (count - 1) * spacing)
    return [start + spacing * i for i in range(count)]


def window_stride(num_frames: int, stride: int, count: int) -> int:
    """The spacing a window of `count` frames at most `stride` apart gets in a `num_frames` clip: the widest whose
    random starts still reach every frame (spacing * count <= num_frames; e.g. at most 4 for 5 of Wan's 21)."""
    return max(1, min(stride, num_frames // count))


def adaptive_rope_positions(indices: list[int]) -> tuple[float, ...]:
    """Temporal RoPE positions of sampled frames: their indices in the full clip (adaptive RoPE, paper eq. 2).

    Eq. 2 spreads the F_samp sampled video frames evenly over the clip's F positions (i * F / F_samp). The pack
    samples latent frames (see README, "Sparse frames"), whose exact positions are their indices: the positions
    the full clip has at inference, so the LoRA learns the full frame rate and inference needs no change.
    """
    return tuple(float(index) for index in indices)


def shifted_sigmas(
    count: int, shift: float, generator: torch.Generator, noise_range: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Flow-matching noise levels (count,) on the generator's device: u uniform shifted as Wan samples them,
    shift * u / (1 + (shift - 1) u), with u drawn only where the result falls in noise_range (an A14B expert's)."""
    low, high = (unshifted_noise_level(sigma, shift) for sigma in noise_range)
    u = low + (high - low) * torch.rand(count, generator=generator, device=generator.device)
    return shifted_noise_level(u, shift)


def motion_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of frame-to-frame differences (eq. 3), averaged over frame pairs.

    predicted, target: (B, C, T, H, W) velocities with T >= 2.
    """
    diff_p = (predicted[:, :, 1:] - predicted[:, :, :-1]).transpose(1, 2).flatten(2)  # (B, T-1, C*H*W)
    diff_t = (target[:, :, 1:] - target[:, :, :-1]).transpose(1, 2).flatten(2)
    return (1 - F.cosine_similarity(diff_p, diff_t, dim=-1, eps=1e-8)).mean()


@dataclass
class StageResult:
    lora: MotionLoRA
    losses: list[float]
    adapters: dict


def check_stage_inputs(
    stage: str, latent_shape: tuple[int, ...], head_map: HeadMap, shape: WanShape, config: TrainConfig
) -> dict[int, list[int]]:
    """Every check that can fail before training starts; returns layer -> heads to train."""
    head_map.check_shape(shape, f"{stage} LoRA training")
    heads = head_map.heads(SPATIAL if stage == SPATIAL else TEMPORAL)
    if not heads:
        raise ValueError(f"the head map has no {stage} heads; change alpha or the overrides in Classify Heads")
    if len(latent_shape) != 5:
        raise ValueError(f"latents must be 5-D (B, C, T, H, W); got {latent_shape}")
    if stage == SPATIAL and latent_shape[2] != 1:
        raise ValueError(
            f"expected single-frame latents (frames, C, 1, H, W); got {latent_shape}. "
            "Use Prepare Reference's frame_latents"
        )
    if stage == TEMPORAL and (latent_shape[0] != 1 or latent_shape[2] < 2):
        raise ValueError(
            f"expected a video latent (1, C, T >= 2, H, W); got {latent_shape}. Use Prepare Reference's video_latent"
        )
    if stage == TEMPORAL and config.sparse_sampling:
        sparse_frame_indices(latent_shape[2], config.frame_stride, config.frame_count, random.Random())
    return heads


Clip = tuple[torch.Tensor, Condition]  # a reference clip's latents and its Condition


def as_clips(latents, condition) -> list[Clip]:
    """[(latents, Condition)] from one clip's latents and condition (a Condition or a caption embedding), or
    from lists of several clips' (the same motion in several clips)."""
    if isinstance(latents, torch.Tensor):
        latents, condition = [latents], [condition]
    if len(latents) != len(condition) or not latents:
        raise ValueError(f"{len(latents)} clips' latents but {len(condition)} conditions")
    return [(clip, Condition.of(clip_condition)) for clip, clip_condition in zip(latents, condition, strict=True)]


def check_resume(stage: str, clips: list[Clip], head_map: HeadMap, config: TrainConfig, checkpoints) -> dict:
    """This run's identity (fym.checkpoint.identity); a ValueError saying what differs if checkpoints.resume is
    another run's. Cheap: callers may check before loading the model."""
    run_identity = identity(stage, config, head_map.to_json(), clips, checkpoints.model)
    if checkpoints.resume is not None:
        check_resumable(checkpoints.resume, run_identity)
    return run_identity


def train_stage(
    host: WanHost,
    stage: str,
    latents: torch.Tensor | list[torch.Tensor],
    condition: Condition | torch.Tensor | list,
    head_map: HeadMap,
    config: TrainConfig,
    on_step: Callable[[int], None] | None = None,
    keep_attached: bool = False,
    on_log: Callable[[int, list[float]], None] | None = None,
    preview: Preview | None = None,
    checkpoints: Checkpoints | None = None,
) -> StageResult:
    """Train one stage's LoRA on `host` and return it exported in ComfyUI's key format.

    Args:
        stage: "spatial" (latents: (F, 16, 1, H, W), single-frame latents, one drawn per step) or
            "temporal" (latents: (1, C, T, H, W), the video latent).
        latents: one reference clip's latents, or a list of several clips' of the same motion (e.g. with other
            looks): each step draws a clip at random, so the LoRA learns what they share.
        condition: the reference clip's Condition (its caption, and its first frame for image-to-video), or
            its caption embedding (1, L, text_dim); a list of them for a list of clips.
        head_map: decides which heads get the LoRA.
        on_step: called after every optimizer step with the step number (progress bar; may raise to cancel).
        keep_attached: leave the trained adapters on the host (frozen, under key "fym_<stage>"), e.g. for the
            temporal stage to train on top of the spatial LoRA; otherwise they are removed.
        on_log: called every config.log_every steps with the step and the losses since the last call (the only
            point where losses are read back from the device).
        preview: previews of the LoRA while it trains (fym.preview).
        checkpoints: write resumable states every N steps, and/or resume from one (fym.checkpoint).
    """
    clips = as_clips(latents, condition)
    for clip, clip_condition in clips:
        heads = check_stage_inputs(stage, tuple(clip.shape), head_map, host.shape, config)
        for name, value in clip_condition.per_frame.items() if stage == TEMPORAL else ():
            if value.shape[2] != clip.shape[2]:
                raise ValueError(f"the condition's {name} has {value.shape[2]} latent frames, the clip {clip.shape[2]}")
    device = clips[0][0].device
    adapters = make_adapters(host.shape, heads, config.rank, config.alpha, seed=config.seed)
    for adapter in adapters.values():
        adapter.to(device)
    checkpoints = checkpoints or Checkpoints()
    run_identity = check_resume(stage, clips, head_map, config, checkpoints)
    run = Run(host, stage, clips, adapters, config, on_step, on_log, preview, checkpoints, run_identity)
    key = f"fym_{stage}"
    host.attach(key, adapters)
    try:
        losses = run.optimize()
    except BaseException:
        host.detach(key)
        raise
    if not keep_attached:
        host.detach(key)
    lora = export(
        adapters, host.shape, stage=stage, steps=config.steps, alpha=config.alpha,
        heads={str(layer): h for layer, h in heads.items()}, head_map=head_map.to_json(),
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, noise_range=list(config.noise_range),
        frame_sampling=_frame_sampling(stage, config, clips[0][1]), clips=len(clips), final_loss=losses[-1],
    )  # fmt: skip
    return StageResult(lora, losses, adapters)


def _frame_sampling(stage: str, config: TrainConfig, condition: Condition) -> dict:
    if stage == SPATIAL:
        return {"mode": "single_frame"}
    return {
        "first_frame_given": condition.first_frame,
        "mode": "sparse" if config.sparse_sampling else "all",
        "stride": config.frame_stride,
        "count": config.frame_count,
        "adaptive_rope": config.adaptive_rope,
        "motion_loss_weight": config.motion_loss_weight,
    }


@dataclass
class Run:
    """One stage's optimisation loop, with its logging, previews and checkpoints."""

    host: WanHost
    stage: str
    clips: list[Clip]
    adapters: dict
    config: TrainConfig
    on_step: Callable[[int], None] | None
    on_log: Callable[[int, list[float]], None] | None
    preview: Preview | None
    checkpoints: Checkpoints
    identity: dict
    logged: int = 0  # steps whose losses were read back

    def optimize(self) -> list[float]:
        config, device = self.config, self.clips[0][0].device
        params = [p for adapter in self.adapters.values() for p in adapter.parameters()]
        for p in params:
            p.requires_grad_(True)
        # Which frames: host decisions from Python's generator, so no device value is read to make them. Noise and
        # noise levels: drawn where they are used, on the device. Nothing is copied to or read from the device
        # inside a step (bench/step_ops.py counts it); losses are read at log points only.
        frames = random.Random(config.seed)
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=device.type == "cuda"
        )
        step_losses = torch.zeros(config.steps, device=device)  # read back every log_every steps only
        start = self._restore(optimizer, generator, frames, step_losses) if self.checkpoints.resume is not None else 0
        self.logged = start  # steps whose losses were read back
        if start and self.on_log is not None:
            self.on_log(start, step_losses[:start].tolist())  # the history so far, for a chart
        try:
            with self.host.checkpointing(config.gradient_checkpointing):
                for step in range(start, config.steps):
                    loss = self._loss(frames, generator)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step_losses[step] = loss.detach()
                    self._after_step(step + 1, step_losses, optimizer, generator, frames)
        finally:
            for p in params:
                p.requires_grad_(False)
        return step_losses.tolist()

    def _loss(self, frames: random.Random, generator: torch.Generator) -> torch.Tensor:
        config = self.config
        clip = frames.randrange(len(self.clips)) if len(self.clips) > 1 else 0  # one clip: the same draws as before
        latents, condition = self.clips[clip]
        x0, sample_condition, positions = _batch(self.stage, latents, condition, config, frames)
        sigma = shifted_sigmas(1, config.timestep_shift, generator, config.noise_range)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = sample_condition.noised(x0, noise, sigma)
        target = noise - x0
        predicted = self.host.velocity(x_t, sigma, sample_condition, positions)
        if sample_condition.first_frame == GIVEN_CLEAN:  # frame 0 given clean, not generated: no loss on it
            predicted, target = predicted[:, :, 1:], target[:, :, 1:]
        loss = F.mse_loss(predicted, target)
        if config.motion_loss_weight > 0 and predicted.shape[2] > 1:
            loss = loss + config.motion_loss_weight * motion_loss(predicted, target)
        return loss

    def _after_step(self, done: int, step_losses, optimizer, generator, frames) -> None:
        """Log, preview and checkpoint after step `done` (1-based) as due; then the progress callback. A preview,
        a checkpoint and the last step first check that the losses and the LoRA weights are finite, so nothing is
        shown or written from NaN weights."""
        config, every = self.config, self.checkpoints.every
        last = done == config.steps
        preview = self.preview is not None and self.preview.every and (done % self.preview.every == 0 or last)
        checkpoint = every and self.checkpoints.write is not None and (done % every == 0 or last)
        if done % config.log_every == 0 or last or preview or checkpoint:
            recent = _check_and_log(self.stage, step_losses[self.logged : done], done)
            self.logged = done
            if self.on_log is not None:
                self.on_log(done, recent)
        if last or preview or checkpoint:
            self._check_weights(done)
        if preview:
            latents, condition = self.clips[0]
            latent = preview_latent(
                self.host, latents, condition, self.preview, config.timestep_shift, config.noise_range
            )
            self.preview.show(done, latent)
        if checkpoint:
            self.checkpoints.write(self._state(done, step_losses, optimizer, generator, frames))
        if self.on_step is not None:
            self.on_step(done)

    def _check_weights(self, done: int) -> None:
        """NonFiniteLoss if a LoRA weight is NaN or infinite after step `done` (one read back from the device)."""
        finite = torch.stack([p.detach().isfinite().all() for a in self.adapters.values() for p in a.parameters()])
        if not finite.all():
            raise NonFiniteLoss(
                f"{self.stage} LoRA training: the LoRA weights became NaN or infinite by step {done}; nothing was "
                "saved. Lower the learning rate or train in float32/bfloat16 instead of float16"
            )

    def _state(self, done: int, step_losses, optimizer, generator, frames) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "identity": self.identity,
            "step": done,
            "losses": step_losses[:done].cpu(),
            "adapters": {
                f"{layer}.{projection}": {name: p.detach().cpu() for name, p in adapter.named_parameters()}
                for (layer, projection), adapter in self.adapters.items()
            },  # fmt: skip
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "frames": frames.getstate(),
        }

    def _restore(self, optimizer, generator, frames, step_losses) -> int:
        """Load the resumed state into the adapters, optimizer, generator and losses; returns its step."""
        state = self.checkpoints.resume
        done = int(state["step"])
        if done > self.config.steps:
            raise ValueError(
                f"the checkpoint is at step {done} but steps is {self.config.steps}; set steps to at least {done}"
            )
        with torch.no_grad():
            for (layer, projection), adapter in self.adapters.items():
                for name, p in adapter.named_parameters():
                    p.copy_(state["adapters"][f"{layer}.{projection}"][name])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        frames.setstate(state["frames"])
        step_losses[:done] = state["losses"].to(step_losses.device)
        log.info("%s LoRA: resumed at step %d of %d", self.stage, done, self.config.steps)
        return done


def _batch(stage, latents, condition, config, frames: random.Random):
    """One training sample: x0 (1, C, K, H, W), its Condition, and its temporal RoPE positions (K floats) or None
    (stock 0..K-1). With a given first frame, latent frame 0 leads every sparse sample. Frames are cut by Python
    indices, so nothing is copied to the device."""
    if stage == SPATIAL:
        chosen = frames.randrange(latents.shape[0])
        return latents[chosen : chosen + 1], condition.ungiven(), None
    if not config.sparse_sampling:
        return latents, condition, None
    chosen = sparse_frame_indices(latents.shape[2], config.frame_stride, config.frame_count, frames)
    if condition.first_frame is not None and chosen[0] != 0:
        chosen = [0, *chosen]
    positions = adaptive_rope_positions(chosen) if config.adaptive_rope else None
    return select_frames(latents, chosen), condition.select(chosen), positions


def _check_and_log(stage: str, recent: torch.Tensor, done: int) -> list[float]:
    """The losses `recent` (of the steps up to `done`) read back, logged and checked finite."""
    recent = recent.cpu()
    if not torch.isfinite(recent).all():
        raise NonFiniteLoss(
            f"{stage} LoRA training: the loss became {recent[~torch.isfinite(recent)][0].item()} by step {done}; "
            "nothing was saved. Lower the learning rate or train in float32/bfloat16 instead of float16"
        )
    log.info("%s LoRA step %d: loss %.5f (mean of last %d)", stage, done, recent.mean().item(), len(recent))
    return recent.tolist()
