"""Pre-train the MotionBench Wan on the MotionBench world (flow matching), deterministic, one command.

    python -m bench.motionbench.pretrain --device cuda --workers 12   # 170 s on one H100 (the shipped weights)

Recipe (see PRETRAIN.md): random clips from world.random_clip (all four categories, motions through 2-5 random
waypoints), batch 32 (the first 750 of 3000 steps on 5-frame clips, the rest on 9-frame clips), flow matching
x_t = sigma * noise + (1 - sigma) * x0 with target v = noise - x0, sigmas drawn as in
fym.train.shifted_sigmas (shift PRETRAIN_SHIFT), 10% empty captions (for CFG), AdamW lr 3e-4 (betas 0.9/0.99, wd 0.01),
100 warm-up steps then cosine decay to 5%, gradient clipping at 1, EMA of the weights (decay 0.995) saved as
fp16 safetensors with diffusers key names at bench/motionbench/motionbench_wan.safetensors. The loss curve goes
to bench/motionbench/pretrain_log.json. Every batch is drawn from its own seeded generator (batch_seed), so the data
do not depend on the loader's worker count; on a CPU the recipe takes hours (16 x the clips of the CPU-sized v5).
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

from bench.demo import plot_losses
from fym.train import shifted_sigmas

from . import model as mb_model
from . import world

HERE = os.path.dirname(os.path.abspath(__file__))
# More high-noise samples than SHIFT (2, used for LoRA training and sampling): high noise is where this model is weak.
PRETRAIN_SHIFT = 3.0
STEPS, BATCH, SHORT_STEPS, SEED = 3000, 32, 750, 0  # the recipe of the shipped weights (v6)


def batch_seed(seed: int, step: int) -> int:
    """The seed of training batch `step`'s generator (its clips, caption drops, noise levels and noise)."""
    return seed * 1_000_003 + step + 1


def learning_rate(step: int, steps: int, peak: float, warmup: int = 100, floor: float = 0.05) -> float:
    """Linear warm-up to `peak`, then cosine decay to floor * peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


class Batches(torch.utils.data.Dataset):
    """Training batch `step` (a fresh generator seeded by (seed, step), so the data do not depend on the number of
    loader workers): x0 (B, 16, T, 16, 16), context (B, L, 4096), sigma (B,), noise like x0."""

    def __init__(self, steps: int, batch: int, seed: int, short_steps: int, short_frames: int, shift: float) -> None:
        self.steps, self.batch, self.seed = steps, batch, seed
        self.short_steps, self.short_frames, self.shift = short_steps, short_frames, shift

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(batch_seed(self.seed, step))
        frames = self.short_frames if step < self.short_steps else world.FRAMES
        x0, context = world.training_batch(generator, self.batch, frames)
        drop = torch.rand(self.batch, generator=generator) < 0.1  # empty captions, for CFG
        context = torch.where(drop[:, None, None], torch.zeros_like(context), context)
        sigma = shifted_sigmas(self.batch, self.shift, generator)
        noise = torch.randn(x0.shape, generator=generator)
        return x0, context, sigma, noise


def flow_matching_loss(model, x0, context, sigma, noise, first_frame: bool = False) -> torch.Tensor:
    """MSE between the model's velocity and noise - x0 at x_t = sigma * noise + (1 - sigma) * x0;
    x0, noise (B, 16, T, H, W), context (B, L, 4096), sigma (B,). first_frame: image-to-video, x0's frame 0 given
    through the concat channels (world.first_frame_concat), the loss still on every frame (as Wan I2V)."""
    s = sigma.view(-1, 1, 1, 1, 1)
    x_t = s * noise + (1 - s) * x0
    if first_frame:
        x_t = torch.cat([x_t, world.first_frame_concat(x0)], 1)
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
    device: str = "cpu",
    workers: int = 0,
    init: torch.nn.Module | None = None,
    first_frame: bool = False,
) -> dict:
    """Train from scratch (or fine-tune `init`) and save EMA weights to `out`; returns the log (losses per step,
    timings).

    The first `short_steps` steps use clips of `short_frames` latent frames (cheaper), the rest full 9-frame clips.
    `workers` processes render the batches (a GPU outruns one CPU core drawing clips). first_frame: image-to-video
    training (`init` has 36 input channels; see flow_matching_loss).
    """
    torch.manual_seed(seed)
    model = (mb_model.build(seed) if init is None else init).to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    optimizer = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.99), weight_decay=0.01)
    data = torch.utils.data.DataLoader(
        Batches(steps, batch, seed, short_steps, short_frames, shift), batch_size=None, num_workers=workers,
        prefetch_factor=8 if workers else None, persistent_workers=False,
    )  # fmt: skip
    losses = torch.zeros(steps, device=device)
    started = time.perf_counter()
    for step, tensors in enumerate(data):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak_lr)
        loss = flow_matching_loss(model, *(t.to(device, non_blocking=True) for t in tensors), first_frame)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - min(0.995, (1 + step) / (10 + step)))
        losses[step] = loss.detach()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            recent = losses[max(0, step + 1 - log_every) : step + 1].mean().item()
            elapsed = time.perf_counter() - started
            print(f"step {step + 1}/{steps}  loss {recent:.4f}  lr {optimizer.param_groups[0]['lr']:.2e}  "
                  f"{elapsed:.0f}s", flush=True)  # fmt: skip
    seconds = time.perf_counter() - started
    mb_model.save(ema, out)
    return {
        "steps": steps, "batch": batch, "peak_lr": peak_lr, "seed": seed, "shift": shift, "seconds": round(seconds, 1),
        "short_steps": short_steps, "short_frames": short_frames, "ema_decay": 0.995, "device": device,
        "threads": torch.get_num_threads(), "workers": workers, "first_frame": first_frame, "losses": losses.tolist(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--short-steps", type=int, default=SHORT_STEPS, help="first steps on short clips")
    parser.add_argument("--short-frames", type=int, default=5)
    parser.add_argument("--shift", type=float, default=PRETRAIN_SHIFT)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (results repeat for a fixed count)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=0, help="processes that render batches (0: in the main one)")
    parser.add_argument("--out", default=mb_model.WEIGHTS)
    parser.add_argument("--log", default=os.path.join(HERE, "pretrain_log.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = dict(short_steps=args.short_steps, short_frames=args.short_frames, shift=args.shift)
    log = pretrain(
        args.steps, args.batch, args.lr, args.seed, args.out, **recipe, device=args.device, workers=args.workers
    )
    write_log(log, args.log, args.out, "MotionBench Wan pre-training")
    return 0


def write_log(log: dict, path: str, weights: str, title: str) -> None:
    """The training log as JSON at `path`, its loss curve as PNG beside it, and a line saying what was saved."""
    with open(path, "w") as handle:
        json.dump(log, handle)
    plot_losses(log["losses"], title, os.path.splitext(path)[0] + "_loss.png")
    print(f"saved {weights} ({os.path.getsize(weights) / 2**20:.1f} MiB) in {log['seconds']:.0f}s; log {path}")


if __name__ == "__main__":
    raise SystemExit(main())
