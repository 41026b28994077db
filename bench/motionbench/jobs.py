"""MotionBench motions as fym.library jobs: the whole method on one reference clip of the world, its LoRA saved,
loaded back and scored over several noises on the clip's new look (the target caption) and on its own look, each
against the floor (no LoRA) on the same noises."""

from __future__ import annotations

import statistics

import torch

from fym import lora
from fym.config import SPATIAL, TEMPORAL, ClassifyConfig
from fym.diffusers_host import DiffusersWan
from fym.library import Recipe, train_motion

from . import LORA, metrics, model, train_config, world
from .sample import merged, sample


def recipe(steps: int, lr: float = LORA["lr"], seed: int = 0, spatial_steps: int | None = None) -> Recipe:
    """This model's LoRA recipe (bench.motionbench.LORA) with `steps` per stage (spatial_steps for the spatial one)."""
    spatial_steps = spatial_steps or steps
    return Recipe(
        train_config(SPATIAL, spatial_steps, lr=lr, seed=seed, log_every=max(1, spatial_steps // 4)),
        train_config(TEMPORAL, steps, lr=lr, seed=seed, log_every=max(1, steps // 4)),
        ClassifyConfig(num_queries=256, seed=seed),
    )


def train_clip(
    name: str, path: str, steps: int, lr: float = LORA["lr"], seed: int = 0, noises: int = 4,
    spatial_steps: int | None = None,
) -> dict:  # fmt: skip
    """A library job: the reference clip `name` of world.reference_clips trained into the LoRA file `path`. Its
    row adds, for the new look (the target caption) and the reference's own: motion fidelity with the loaded LoRA
    at strength LORA["strength"] and without it (the floor), means over `noises` noises, and the values."""
    _, clip, targets = next(entry for entry in world.reference_clips() if entry[0] == name)
    host = DiffusersWan(model.load())
    video, caption = world.render(clip)[None], world.caption(clip)[None]
    row = train_motion(host, [(video, caption)], path, recipe(steps, lr, seed, spatial_steps))
    trained = lora.load(path)
    looks = {"": targets, "_reference": clip.appearances}  # row key suffix -> the look sampled
    per_noise = {}
    for suffix, look in looks.items():
        text = world.caption(clip.with_appearances(look))
        for key, strength in (("motion_fidelity", LORA["strength"]), ("floor", 0.0)):
            values = []
            for noise_seed in range(noises):
                noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(10_000 + noise_seed))
                with merged(host, [(trained, strength)]):
                    sampled = sample(host, text, noise_seed, LORA["sample_steps"], noise=noise)[0]
                values.append(metrics.evaluate(sampled, clip, look)["motion_fidelity"])
            per_noise[key + suffix] = values
            row[key + suffix] = statistics.mean(values)
    return {**row, "per_noise": per_noise}
