"""Pre-train the MotionBench Wan on the MotionBench world (flow matching), deterministic, CPU, one command.

    python -m bench.motionbench.pretrain            # about 28 minutes on two CPU threads

Recipe (see PRETRAIN.md): random clips from world.random_clip (all four categories, quadratic-curve motions),
batch 2 (the first 1500 of 3000 steps on 5-frame clips, the rest on 9-frame clips), flow matching
x_t = sigma * noise + (1 - sigma) * x0 with target v = noise - x0, sigmas drawn as in
fym.train.shifted_sigmas (shift PRETRAIN_SHIFT), 10% empty captions (for CFG), AdamW lr 3e-4 (betas 0.9/0.99, wd 0.01),
100 warm-up steps then cosine decay to 5%, gradient clipping at 1, EMA of the weights (decay 0.995) saved as
fp16 safetensors with diffusers key names at bench/motionbench/motionbench_wan.safetensors. The loss curve goes
to bench/motionbench/pretrain_log.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time

import torch
import torch.nn.functional as F

from fym.demo import plot_losses
from fym.train import shifted_sigmas

from . import model as mb_model
from . import world

HERE = os.path.dirname(os.path.abspath(__file__))
# More high-noise samples than SHIFT (2, used for LoRA training and sampling): high noise is where this model is weak.
PRETRAIN_SHIFT = 3.0


def learning_rate(step: int, steps: int, peak: float, warmup: int = 100, floor: float = 0.05) -> float:
    """Linear warm-up to `peak`, then cosine decay to floor * peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def flow_matching_loss(
    model, x0: torch.Tensor, context: torch.Tensor, generator: torch.Generator, shift: float = PRETRAIN_SHIFT
) -> torch.Tensor:
    """MSE between the model's velocity and noise - x0; x0 (B, 16, T, H, W), context (B, L, 4096)."""
    sigma = shifted_sigmas(x0.shape[0], shift, generator)
    noise = torch.randn(x0.shape, generator=generator)
    s = sigma.view(-1, 1, 1, 1, 1)
    x_t = s * noise + (1 - s) * x0
    predicted = model(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=context, return_dict=False)[0]
    return F.mse_loss(predicted, noise - x0)


def pretrain(
    steps: int,
    batch: int,
    peak_lr: float,
    seed: int,
    out: str,
    short_steps: int = 0,
    short_frames: int = 5,
    shift: float = PRETRAIN_SHIFT,
    log_every: int = 25,
) -> dict:
    """Train from scratch and save EMA weights to `out`; returns the log (losses per step, timings).

    The first `short_steps` steps use clips of `short_frames` latent frames (cheaper), the rest full 9-frame clips.
    """
    torch.manual_seed(seed)
    model = mb_model.build(seed).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.99), weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed + 1)
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak_lr)
        frames = short_frames if step < short_steps else world.FRAMES
        x0, context = world.training_batch(generator, batch, frames)
        drop = torch.rand(batch, generator=generator) < 0.1
        context = torch.where(drop[:, None, None], torch.zeros_like(context), context)
        loss = flow_matching_loss(model, x0, context, generator, shift)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            elapsed = time.perf_counter() - started
            print(f"step {step + 1}/{steps}  loss {recent:.4f}  lr {optimizer.param_groups[0]['lr']:.2e}  "
                  f"{elapsed:.0f}s", flush=True)  # fmt: skip
    seconds = time.perf_counter() - started
    mb_model.save(ema, out)
    return {
        "steps": steps, "batch": batch, "peak_lr": peak_lr, "seed": seed, "shift": shift, "seconds": round(seconds, 1),
        "short_steps": short_steps, "short_frames": short_frames, "ema_decay": 0.995,
        "threads": torch.get_num_threads(), "losses": losses,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--short-steps", type=int, default=1500, help="first steps on short clips")
    parser.add_argument("--short-frames", type=int, default=5)
    parser.add_argument("--shift", type=float, default=PRETRAIN_SHIFT)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (results repeat for a fixed count)")
    parser.add_argument("--out", default=mb_model.WEIGHTS)
    parser.add_argument("--log", default=os.path.join(HERE, "pretrain_log.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = pretrain(
        args.steps, args.batch, args.lr, args.seed, args.out, args.short_steps, args.short_frames, args.shift
    )
    with open(args.log, "w") as handle:
        json.dump(log, handle)
    plot_losses(log["losses"], "MotionBench Wan pre-training", os.path.splitext(args.log)[0] + "_loss.png")
    print(f"saved {args.out} ({os.path.getsize(args.out) / 2**20:.1f} MiB) in {log['seconds']:.0f}s; log {args.log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
