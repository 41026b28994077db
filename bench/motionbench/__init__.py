"""MotionBench-mini: a small world drawn in Wan 2.1's latent space and a small Wan 2.1 pre-trained on it.

Where a motion transfer can be measured on a CPU without real Wan weights: `world` (clips, captions, reference
motions the model never saw), `model` (the architecture, weights file, ComfyUI keys), `pretrain` (one command
builds the weights), `sample` (Euler sampler with LoRAs merged), `metrics` (tracks, motion fidelity, appearance).
Used by bench/motionbench_mini.py and the ComfyUI motion-transfer test (tests/integration).
"""

from dataclasses import replace

SHIFT = 2.0  # flow-matching noise-level shift of LoRA training and sampling (pre-training: pretrain.PRETRAIN_SHIFT)

# LoRA settings for this model (the benchmark's and the ComfyUI motion-transfer test's): the paper's recipe with
# lr and rank scaled to a 14 M-parameter model, steps where the LoRAs start to imprint a motion (500 steps do not,
# 1500 do: bench/results), and 5 sparse frames spread over the 9-latent-frame clip (stride 0: one per equal part,
# as the paper's 16 of 81 video frames span its clip). Transfer shows at strength 1 only (the paper's 0.5 stays at the floor here).
LORA = dict(spatial_steps=1500, temporal_steps=1500, lr=1e-3, rank=32, stride=0, count=5, sample_steps=20, strength=1.0)


def train_config(defaults, steps: int, rank: int = LORA["rank"], lr: float = LORA["lr"], stride: int = LORA["stride"],
                 count: int = LORA["count"], **changes):  # fmt: skip
    """A fym stage's defaults (fym.config.SPATIAL or TEMPORAL) with this model's LoRA recipe (LORA, SHIFT) and
    `steps`; `changes` go to dataclasses.replace as well (seed, log_every, ...)."""
    return replace(defaults, steps=steps, rank=rank, alpha=float(rank), learning_rate=lr, frame_stride=stride,
                   frame_count=count, timestep_shift=SHIFT, **changes)  # fmt: skip
