"""MotionBench motions as fym.library jobs: the whole method on one reference clip of the world, its LoRA saved,
loaded back and scored on the clip's new look (the target caption) over several noises, with the floor (no LoRA)
on the same noises."""

from __future__ import annotations

import statistics

import torch

from fym import lora
from fym.config import SPATIAL, TEMPORAL, ClassifyConfig
from fym.diffusers_host import DiffusersWan
from fym.library import Recipe, train_motion

from . import LORA, metrics, model, train_config, world
from .sample import merged, sample


def recipe(steps: int, lr: float = LORA["lr"], seed: int = 0) -> Recipe:
    """This model's LoRA recipe (bench.motionbench.LORA) with `steps` per stage."""
    log_every = max(1, steps // 4)
    return Recipe(
        train_config(SPATIAL, steps, lr=lr, seed=seed, log_every=log_every),
        train_config(TEMPORAL, steps, lr=lr, seed=seed, log_every=log_every),
        ClassifyConfig(num_queries=256, seed=seed),
    )


def train_clip(name: str, path: str, steps: int, lr: float = LORA["lr"], seed: int = 0, noises: int = 4) -> dict:
    """A library job: the reference clip `name` of world.reference_clips trained into the LoRA file `path`; its
    row adds motion_fidelity (mean over `noises` samples of the target caption with the LoRA at strength
    LORA["strength"]) and floor (the same noises without it), and the per-noise values."""
    _, clip, targets = next(entry for entry in world.reference_clips() if entry[0] == name)
    host = DiffusersWan(model.load())
    video, caption = world.render(clip)[None], world.caption(clip)[None]
    row = train_motion(host, [(video, caption)], path, recipe(steps, lr, seed))
    trained = lora.load(path)
    target = world.caption(clip.with_appearances(targets))
    scores = {"with": [], "without": []}
    for noise_seed in range(noises):
        noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(10_000 + noise_seed))
        for key, strength in (("with", LORA["strength"]), ("without", 0.0)):
            with merged(host, [(trained, strength)]):
                sampled = sample(host, target, noise_seed, LORA["sample_steps"], noise=noise)[0]
            scores[key].append(metrics.evaluate(sampled, clip, targets)["motion_fidelity"])
    return {
        **row, "motion_fidelity": statistics.mean(scores["with"]), "floor": statistics.mean(scores["without"]),
        "per_noise": scores,
    }  # fmt: skip
