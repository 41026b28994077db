"""How new is each benchmark motion to the pre-trained model? The nearest clip it saw in pre-training.

    python -m bench.motionbench.novelty      # about 5 minutes on one CPU thread

For every reference clip, replays the 9-frame clips of the shipped pre-training recipe (pretrain.STEPS, BATCH,
SHORT_STEPS, SEED; the same generators, without rendering) and reports, among those of the reference's category,
the nearest by screen-track distance (latent pixels, best matching of objects) and the best motion fidelity of
any of them against the reference (the benchmark's metric: 1 = the same frame-to-frame displacements).
"""

from __future__ import annotations

import argparse

import torch

from . import metrics, pretrain, world


def seen_tracks(category: str) -> list[torch.Tensor]:
    """Screen tracks (K, T, 2) of every 9-frame pre-training clip of `category`, in training order."""
    tracks = []
    for step in range(pretrain.SHORT_STEPS, pretrain.STEPS):
        generator = torch.Generator().manual_seed(pretrain.batch_seed(pretrain.SEED, step))
        tracks += [
            world.screen_tracks(clip)
            for clip in world.random_clips(generator, pretrain.BATCH, world.FRAMES)
            if clip.category == category
        ]
    return tracks


def nearest_seen(clip: world.Clip, seen: list[torch.Tensor]) -> dict:
    """{"track_error": smallest, "motion_fidelity": largest} of the reference against the seen tracks."""
    reference = world.screen_tracks(clip)
    best_error, best_fidelity = float("inf"), -1.0
    for tracks in seen:
        best_error = min(best_error, metrics.track_error(reference, tracks))
        best_fidelity = max(best_fidelity, metrics.motion_fidelity(reference, tracks))
    return {"track_error": best_error, "motion_fidelity": best_fidelity}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    seen = {category: seen_tracks(category) for category in world.CATEGORIES}
    print("| reference clip | pre-training clips of its category | nearest: track distance (px) | best MF |")
    print("|---|---|---|---|")
    for name, clip, _ in world.reference_clips():
        near = nearest_seen(clip, seen[clip.category])
        print(f"| {name} | {len(seen[clip.category])} | {near['track_error']:.2f} | {near['motion_fidelity']:.3f} |",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
