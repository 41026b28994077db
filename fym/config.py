"""Every default of the method, in one place (the paper's values unless a field says otherwise).

Nodes read their widget defaults from these dataclasses, and a test checks that they match.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "0.1.0"  # the pack's version; pyproject.toml repeats it (a test checks)
WAN_HEAD_DIM = 128  # Wan 2.1 and 2.2: heads = dim / 128 in every size
WAN_FRAME_STRIDE = 4  # Wan's VAE: one latent frame per 4 video frames, after the first


def latent_frames(video_frames: int) -> int:
    """Latent frames Wan's VAE makes of `video_frames` (4k + 1) video frames: k + 1."""
    return (video_frames - 1) // WAN_FRAME_STRIDE + 1


def video_frames(latent_frames: int) -> int:
    """Video frames (4k + 1) that make `latent_frames` latent frames."""
    return WAN_FRAME_STRIDE * (latent_frames - 1) + 1


@dataclass(frozen=True)
class ClassifyConfig:
    """Head classification (paper Sec. 3.1, Alg. 1).

    Args:
        alpha: a head is temporal iff Sim_s < alpha * Sim_t (paper: 1.3).
        sigmas: noise levels (0..1) at which the reference is scored; scores are averaged over them.
        num_queries: query tokens sampled per head; memory is O(num_queries x sequence).
        band: half-width, in latent patches, of the pseudo-maps' neighbourhood (0 = the same patch only).
        seed: seed of the query sampling and of the noise added to the reference.
    """

    alpha: float = 1.3
    sigmas: tuple[float, ...] = (0.5,)
    num_queries: int = 1024
    band: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0; got {self.alpha}")
        if not self.sigmas or any(not 0.0 <= s <= 1.0 for s in self.sigmas):
            raise ValueError(f"sigmas must be a non-empty list of values in [0, 1]; got {self.sigmas}")
        if self.num_queries < 1:
            raise ValueError(f"num_queries must be >= 1; got {self.num_queries}")
        if self.band < 0:
            raise ValueError(f"band must be >= 0; got {self.band}")


@dataclass(frozen=True)
class TrainConfig:
    """One LoRA stage (paper Sec. 4.1). `SPATIAL` and `TEMPORAL` below hold each stage's defaults.

    Args:
        steps: optimizer steps (paper: 3000 spatial, 2000 temporal).
        rank: LoRA rank (paper: 128 in both stages).
        alpha: LoRA alpha; the delta is scaled by alpha / rank. The paper does not say; alpha = rank (scale 1).
        learning_rate: AdamW learning rate (paper: 1e-5, on real Wan; unmeasured here at that size. MotionBench's
            14 M-parameter Wan needs 1e-3 with rank 32: bench/motionbench.LORA).
        weight_decay: AdamW weight decay (paper: 0.1 spatial, 0.99 temporal).
        timestep_shift: flow-matching shift of the training noise levels (Wan 2.1 samples with 8.0).
        motion_loss_weight: weight of the motion loss (paper eq. 3; 1.0 in the temporal stage, 0 = off).
        sparse_sampling: temporal stage: train on a sparse subset of latent frames (off = all frames).
        frame_stride: temporal stage: latent frames between sampled frames (fym.train.sparse_frame_indices).
            0 = spread: one random frame from each of frame_count equal parts of the clip, as the paper's 16 of
            81 video frames at stride 5 span its whole clip. N = N apart at a random start (less where N's window
            could not reach every frame).
        frame_count: temporal stage: latent frames per step (the paper's 16 video frames make about 5 latents).
        adaptive_rope: temporal stage: sampled frames keep their full-clip RoPE positions (paper eq. 2).
        noise_range: (low, high) noise levels trained; a Wan 2.2 A14B expert trains only in its own range
            (`expert_noise_range`), other models in the whole (0, 1).
        gradient_checkpointing: recompute activations in backward to save memory (slower).
        log_every: log the loss and check it is finite every N steps.
        seed: seed of frame choice, noise and noise levels.
    """

    steps: int
    weight_decay: float
    rank: int = 128
    alpha: float = 128.0
    learning_rate: float = 1e-5
    timestep_shift: float = 8.0
    motion_loss_weight: float = 0.0
    sparse_sampling: bool = True
    frame_stride: int = 0
    frame_count: int = 5
    adaptive_rope: bool = True
    noise_range: tuple[float, float] = (0.0, 1.0)
    gradient_checkpointing: bool = False
    log_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"steps must be >= 1; got {self.steps}"),
            (self.rank >= 1, f"rank must be >= 1; got {self.rank}"),
            (self.alpha > 0, f"alpha must be > 0; got {self.alpha}"),
            (self.learning_rate > 0, f"learning_rate must be > 0; got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0; got {self.weight_decay}"),
            (self.timestep_shift > 0, f"timestep_shift must be > 0; got {self.timestep_shift}"),
            (self.motion_loss_weight >= 0, f"motion_loss_weight must be >= 0; got {self.motion_loss_weight}"),
            (self.frame_stride >= 0, f"frame_stride must be >= 0 (0 = spread over the clip); got {self.frame_stride}"),
            (self.frame_count >= 2, f"frame_count must be >= 2 (motion needs two frames); got {self.frame_count}"),
            (self.log_every >= 1, f"log_every must be >= 1; got {self.log_every}"),
            (
                0.0 <= self.noise_range[0] < self.noise_range[1] <= 1.0,
                f"noise_range must be (low, high) with 0 <= low < high <= 1; got {self.noise_range}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


SPATIAL = TrainConfig(steps=3000, weight_decay=0.1)
TEMPORAL = TrainConfig(steps=2000, weight_decay=0.99, motion_loss_weight=1.0)
APPLY_STRENGTH = 0.5  # paper Sec. 4.1: "The LoRA weights are set as 0.5" (real Wan; MotionBench's small Wan needs 1.0)
# Motion LoRA files: bf16 factors, half the size of fp32; the weights they patch compute in bf16 or lower anyway.
LORA_FILE_DTYPE = "bf16"
# Previews while training (fym.preview): Euler steps per preview. 8 steps of Wan's shifted schedule show the
# motion's layout; a preview then costs 8 forward passes, about 3 training steps.
PREVIEW_STEPS = 8
PREVIEW_EVERY = 200  # training nodes' default: a preview costs about 3 steps, so 1.5% of the training time
CHECKPOINT_EVERY = 500  # training nodes' default: at most 500 steps lost to a crash or a Cancel

# Wan 2.2 A14B: the high-noise expert runs at sigma >= the boundary, the low-noise one below (Wan 2.2's
# generate.py: boundary 0.875 for T2V, 0.9 for I2V; ComfyUI users switch experts with KSamplerAdvanced).
EXPERT_BOUNDARY = {"t2v": 0.875, "i2v": 0.9}
EXPERTS = ("whole range", "high-noise expert", "low-noise expert")


def expert_noise_range(expert: str, image_to_video: bool) -> tuple[float, float]:
    """The (low, high) noise levels an expert runs at; 'whole range' for every model but Wan 2.2 A14B."""
    boundary = EXPERT_BOUNDARY["i2v" if image_to_video else "t2v"]
    ranges = {EXPERTS[0]: (0.0, 1.0), EXPERTS[1]: (boundary, 1.0), EXPERTS[2]: (0.0, boundary)}
    if expert not in ranges:
        raise ValueError(f"expert must be one of {', '.join(EXPERTS)}; got {expert!r}")
    return ranges[expert]
