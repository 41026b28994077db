"""Euler flow-matching sampler for a WanHost, with motion LoRA files merged in at a strength.

    python -m bench.motionbench.sample --words red ball moves on meadow [--lora motion.safetensors]

Sampling runs sigma from 1 to 0 on the shifted grid sigma(s) = shift * s / (1 + (shift - 1) * s), s uniform
(Wan's own scheduler shape, the same shift as pre-training), x <- x + (sigma_next - sigma) * v. With cfg > 1 the
velocity is v_uncond + cfg * (v_cond - v_uncond), v_uncond from the empty caption (an image-to-video Condition
keeps its first-frame concat in both branches, as ComfyUI's negative does).

    python -m bench.motionbench.sample --check 16 --i2v   # the I2V model, each clip's own frame 0 given
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import replace

import torch

from fym.host import PROJECTIONS, Condition, WanHost, shifted_noise_level
from fym.lora import MotionLoRA, merged_delta

from . import SHIFT, world


def sigma_grid(steps: int, shift: float = SHIFT) -> torch.Tensor:
    """(steps + 1,) noise levels from 1 down to 0."""
    return shifted_noise_level(torch.linspace(1, 0, steps + 1), shift)


@torch.no_grad()
def sample(
    host: WanHost,
    context: torch.Tensor | Condition,
    seed: int,
    steps: int = 24,
    cfg: float = 1.0,
    frames: int = world.FRAMES,
    size: int = world.SIZE,
    noise: torch.Tensor | None = None,
    shift: float = SHIFT,
    eta: float = 0.0,
) -> torch.Tensor:
    """A latent video (1, 16, frames, size, size) for caption context (L, 4096) or (1, L, 4096), or a Condition
    (e.g. model.i2v_condition: caption and given first frame), on the caption's device (noise drawn on the CPU,
    so a seed gives the same start on every device)."""
    condition = Condition.of(context)
    text = condition.text if condition.text.dim() == 3 else condition.text[None]
    condition = replace(condition, text=text)
    both_condition = replace(condition, text=torch.cat([text, torch.zeros_like(text)]))  # CFG: cond, then empty
    generator = torch.Generator().manual_seed(seed)
    if noise is None:
        noise = torch.randn(1, world.CHANNELS, frames, size, size, generator=generator)
    x = noise.to(text.device, copy=True)
    sigmas = sigma_grid(steps, shift).to(x.device)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        level = sigma.view(1)
        if cfg == 1.0:
            v = host.velocity(x, level, condition, None)
        else:
            both = host.velocity(torch.cat([x, x]), level.repeat(2), both_condition, None)
            v = both[1:] + cfg * (both[:1] - both[1:])
        if eta == 0:
            x = x + (sigma_next - sigma) * v
        else:  # re-noise: keep a fraction eta of fresh noise in x_next (eta = 1: ancestral sampling)
            x0 = x - sigma * v
            eps = (x - (1 - sigma) * x0) / sigma
            fresh = torch.randn(x.shape, generator=generator).to(x.device)
            x = (1 - sigma_next) * x0 + sigma_next * ((1 - eta**2) ** 0.5 * eps + eta * fresh)
    return x


@contextlib.contextmanager
def merged(host: WanHost, loras: list[tuple[MotionLoRA, float]]) -> Iterator[None]:
    """Add strength * delta of each motion LoRA to the host's self-attention weights; restored on exit."""
    saved = {}
    try:
        with torch.no_grad():
            for lora, strength in loras:
                lora.check_shape(host.shape, "merged")
                for layer in range(host.shape.num_layers):
                    for projection in PROJECTIONS:
                        delta = merged_delta(lora, layer, projection)
                        if delta is None or strength == 0:
                            continue
                        weight = host.linear(layer, projection).weight
                        saved.setdefault((layer, projection), weight.detach().clone())
                        weight.add_(strength * delta.to(weight))
        yield
    finally:
        with torch.no_grad():
            for (layer, projection), weight in saved.items():
                host.linear(layer, projection).weight.copy_(weight)


def check_base(
    host: WanHost,
    count: int = 16,
    steps: int = 24,
    cfg: float = 1.0,
    png: str = "",
    device: str = "cpu",
    i2v: bool = False,
) -> dict:
    """Sample `count` random pre-training captions (seeded) and measure whether the model draws the captioned
    objects (found, colour cosine) with smooth motion (second differences of tracks, vs the data's own).

    i2v: an image-to-video model, given each clip's own latent frame 0; then also how far the sample's frame 0
    is from the given one (squared error / the frame's variance) and its motion fidelity to the clip."""
    from . import metrics
    from .model import i2v_condition

    generator = torch.Generator().manual_seed(777)
    rows, strips = [], []
    for i in range(count):
        clip = world.random_clip(generator, world.CATEGORIES[i % len(world.CATEGORIES)])
        truth_video = world.render(clip)
        condition = i2v_condition(world.caption(clip), truth_video) if i2v else world.caption(clip)
        video = sample(host, condition.to(device), seed=i, steps=steps, cfg=cfg)[0].cpu()
        count_objects, worm = len(clip.appearances), clip.worm is not None
        tracked = metrics.track(video, count_objects, worm)
        truth = metrics.track(truth_video, count_objects, worm)
        appearance, _ = metrics.appearance_scores(tracked, [c for c, _ in clip.appearances], [])
        rows.append({
            "category": clip.category, "found": float(tracked["found"].float().mean()), "appearance": appearance,
            "smoothness": metrics.smoothness(tracked["centroids"]),
            "data_smoothness": metrics.smoothness(truth["centroids"]),
            "temporal_consistency": metrics.temporal_consistency(video, tracked["centroids"]),
        })  # fmt: skip
        if i2v:
            given = truth_video[:, 0]
            rows[-1]["first_frame_error"] = float(((video[:, 0] - given) ** 2).mean() / given.var())
            rows[-1]["found_frame0"] = float(tracked["found"][..., 0].float().mean())
            rows[-1]["motion_fidelity"] = metrics.motion_fidelity(truth["tracks"], tracked["tracks"])
        if png and i < 8:
            strips.append(metrics.to_rgb(video))
    if png:
        from PIL import Image

        picture = torch.cat([torch.cat(list(frames), dim=1) for frames in strips], dim=0)
        Image.fromarray(picture.repeat_interleave(6, 0).repeat_interleave(6, 1).numpy()).save(png)
    keys = ["found", "appearance", "smoothness", "data_smoothness", "temporal_consistency"]
    keys += ["first_frame_error", "found_frame0", "motion_fidelity"] if i2v else []
    return {"samples": rows, "mean": {k: sum(r[k] for r in rows) / len(rows) for k in keys}}


def main(argv: list[str] | None = None) -> int:
    import json

    from fym import lora as fym_lora
    from fym.diffusers_host import DiffusersWan

    from . import metrics, model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", nargs="+", help="caption words, e.g. red ball moves on meadow")
    parser.add_argument("--check", type=int, default=0, help="instead: check the base model on N random captions")
    parser.add_argument("--i2v", action="store_true", help="--check the image-to-video model (default weights)")
    parser.add_argument("--weights", default="", help=f"default {model.WEIGHTS} ({model.I2V_WEIGHTS} with --i2v)")
    parser.add_argument("--lora", action="append", default=[], help="motion LoRA file (repeatable)")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--cfg", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="", help="write an RGB strip of the frames here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weights = args.weights or (model.I2V_WEIGHTS if args.i2v else model.WEIGHTS)
    host = DiffusersWan(model.load(weights).to(args.device))
    if args.check:
        result = check_base(host, args.check, args.steps, args.cfg, args.png, args.device, args.i2v)
        print(json.dumps(result["mean"], indent=1))
        return 0
    loras = [(fym_lora.load(path), args.strength) for path in args.lora]
    with merged(host, loras):
        video = sample(host, world.embed(args.words).to(args.device), args.seed, args.steps, args.cfg)[0].cpu()
    report = metrics.describe(video)
    print(report)
    if args.png:
        metrics.save_strip(video, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
