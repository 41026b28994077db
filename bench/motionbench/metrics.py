"""Weights-free metrics on latent videos of the MotionBench world (no CLIP, no CoTracker, no VAE).

Tracking. Every object colour lies in the colour subspace E[0:8] and every background in E[8:16] (world.py),
so the objectness of a latent pixel is the norm of its projection on the colour subspace, whatever the colour.
Per frame: pixels with objectness > half an object's signature norm, 4-connected components, the `count`
heaviest kept, objectness-weighted centroids, linked over frames by least total displacement. For the worm
the two body ends are added: centroid +- sqrt(3 (lambda_1 - lambda_2)) e_1 (principal axis; a uniform segment
of length L has variance L^2 / 12, and the body's thickness adds about lambda_2 to it), oriented consistently
over frames. The same tracker runs on reference and generated videos, so neither side gets ground truth the other
lacks (tests check it against the true tracks).

Metrics of one generated video against its reference clip:
- motion_fidelity (up, -1..1): the tracklet similarity of Yatim et al. (Space-Time Diffusion Features, 2024),
  used by the paper's Table 1: corr(a, b) = mean over frame steps of the cosine between the two tracklets'
  displacement vectors; MF = 1/2 (mean over generated tracklets of the max corr with a reference tracklet +
  mean over reference tracklets of the max corr with a generated tracklet).
- track_error (down, latent pixels): mean distance between reference and generated tracks, best one-to-one
  matching; unlike MF it also sees where things are and how far they go.
- appearance (up, -1..1): cosine between each tracked object's mean latent colour (projected on the colour
  subspace) and the prompt's colour signature, best assignment of objects to prompt colours; 0 if not found.
- leakage (down): the same cosine with the reference's colours that the prompt does not use, named or unnamed
  patterns (max per object; a half-patterned object scores about 0.7 with its pattern's colour).
- temporal_consistency (up): cosine between object-centred 16 x 7 x 7 crops in consecutive frames.
- found (up): fraction of (object, frame) pairs in which an object was detected.
"""

from __future__ import annotations

import itertools
import math
import statistics

import torch

from . import world

THRESHOLD = 0.5 * world.OBJECT_NORM
CROP = 3  # half-width of the consistency crop


def objectness(video: torch.Tensor) -> torch.Tensor:
    """(16, T, H, W) latent video -> (T, H, W) norm of its projection on the colour subspace."""
    return torch.einsum("kc,cthw->kthw", world.color_subspace(), video.float()).norm(dim=0)


def _components(mask: torch.Tensor) -> list[list[tuple[int, int]]]:
    """4-connected components of a (H, W) boolean mask, as lists of (row, col)."""
    height, width = mask.shape
    seen = torch.zeros_like(mask)
    found = []
    for r0, c0 in mask.nonzero().tolist():
        if seen[r0, c0]:
            continue
        stack, pixels = [(r0, c0)], []
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < height and 0 <= cc < width and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        found.append(pixels)
    return found


def _detections(weights: torch.Tensor, count: int) -> list[dict]:
    """Per frame: up to `count` detections {centroid (2,), pixels (P, 2) as (x, y), weights (P,)}."""
    detections = []
    for pixels in _components(weights > THRESHOLD):
        index = torch.tensor(pixels)
        w = weights[index[:, 0], index[:, 1]]
        xy = index.flip(-1).float() + 0.5  # (row, col) -> (x, y) pixel centres
        detections.append({"centroid": (w[:, None] * xy).sum(0) / w.sum(), "xy": xy, "w": w, "rc": index})
    detections.sort(key=lambda d: -float(d["w"].sum()))
    return detections[:count]


def track(video: torch.Tensor, count: int, worm: bool = False) -> dict:
    """Track `count` objects in a latent video (16, T, H, W).

    Returns {"tracks": (K, T, 2) screen (x, y) tracks (centroids, then worm back/front if worm),
    "found": (count, T) bool, "colors": (count, T, 16) objectness-weighted mean latent per object and frame,
    "centroids": (count, T, 2)}.
    """
    video = video.float()
    weights = objectness(video)
    frames = weights.shape[0]
    centroids = torch.zeros(count, frames, 2)
    found = torch.zeros(count, frames, dtype=torch.bool)
    colors = torch.zeros(count, frames, world.CHANNELS)
    axes = torch.zeros(count, frames, 2)
    half = torch.zeros(count, frames)
    previous = None
    for t in range(frames):
        dets = _detections(weights[t], count)
        if previous is None:
            slots = list(range(len(dets)))
        else:  # assign detections to tracks with the least total displacement
            best = min(
                itertools.permutations(range(count), len(dets)),
                key=lambda perm: sum(float((dets[i]["centroid"] - previous[k]).norm()) for i, k in enumerate(perm)),
            )
            slots = list(best)
        for det, k in zip(dets, slots, strict=False):
            centroids[k, t] = det["centroid"]
            found[k, t] = True
            w = det["w"] / det["w"].sum()
            colors[k, t] = (video[:, t, det["rc"][:, 0], det["rc"][:, 1]] * w).sum(-1)
            centred = det["xy"] - det["centroid"]
            cov = (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)
            values, vectors = torch.linalg.eigh(cov)
            axes[k, t] = vectors[:, -1]
            half[k, t] = math.sqrt(max(3 * float(values[-1] - values[0]), 0.0))  # thickness taken out
        for k in range(count):  # lost objects stay where they were last seen (or at the first detection)
            if not found[k, t]:
                centroids[k, t] = previous[k] if previous is not None else (
                    dets[0]["centroid"] if dets else torch.full((2,), world.SIZE / 2)
                )  # fmt: skip
        previous = centroids[:, t].clone()
    tracks = [centroids]
    if worm:
        axis = axes[0].clone()
        for t in range(frames):  # orient the body axis consistently (first frame: pointing right)
            reference = axis[t - 1] if t else torch.tensor([1.0, 0.0])
            if float(axis[t] @ reference) < 0:
                axis[t] = -axis[t]
        tracks += [(centroids[0] - half[0, :, None] * axis)[None], (centroids[0] + half[0, :, None] * axis)[None]]
    return {"tracks": torch.cat(tracks), "found": found, "colors": colors, "centroids": centroids}


def tracklet_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, T, 2), (M, T, 2) -> (N, M): mean over frame steps of the cosine between displacement vectors."""
    da, db = a[:, 1:] - a[:, :-1], b[:, 1:] - b[:, :-1]
    da = da / da.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    db = db / db.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return torch.einsum("ntc,mtc->nmt", da, db).mean(-1)


def motion_fidelity(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """Yatim et al.'s motion fidelity of generated tracklets (M, T, 2) against reference tracklets (N, T, 2)."""
    corr = tracklet_correlation(reference, generated)
    return 0.5 * (float(corr.max(dim=0).values.mean()) + float(corr.max(dim=1).values.mean()))


def track_error(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """Mean distance (latent pixels) between tracks (K, T, 2) under the best one-to-one matching."""
    distance = (reference[:, None] - generated[None]).norm(dim=-1).mean(-1)  # (N, M)
    n, m = distance.shape
    if n <= m:
        return min(sum(float(distance[i, j]) for i, j in enumerate(p)) for p in itertools.permutations(range(m), n)) / n
    return track_error(generated, reference)


def _color_cosines(colors: torch.Tensor, names: list[str]) -> torch.Tensor:
    """(K, 16) mean object latents -> (K, len(names)) cosines with the colours' signatures (colour subspace)."""
    basis = world.color_subspace()
    projected = colors @ basis.T @ basis
    signatures = torch.stack([world.color_signature(n) for n in names])
    return torch.nn.functional.cosine_similarity(projected[:, None], signatures[None], dim=-1, eps=1e-6)


def appearance_scores(tracked: dict, target: list[str], reference: list[str]) -> tuple[float, float]:
    """(appearance adherence, leakage) of tracked objects for target colours and the reference's colours."""
    found = tracked["found"]
    weights = found.float()[..., None]
    mean = (tracked["colors"] * weights).sum(1) / weights.sum(1).clamp_min(1)  # (K, 16)
    cos = _color_cosines(mean, target)
    cos[~found.any(1)] = 0.0
    count = len(target)
    adherence = max(
        sum(float(cos[k, j]) for k, j in enumerate(perm)) / count for perm in itertools.permutations(range(count))
    )
    foreign = [c for c in reference if c not in target]
    if not foreign:
        return adherence, 0.0
    leak = _color_cosines(mean, foreign).clamp_min(0).max(dim=1).values
    leak[~found.any(1)] = 0.0
    return adherence, float(leak.mean())


def temporal_consistency(video: torch.Tensor, centroids: torch.Tensor) -> float:
    """Mean cosine of object-centred (16, 7, 7) crops in consecutive frames; centroids (K, T, 2)."""
    padded = torch.nn.functional.pad(video.float(), (CROP, CROP, CROP, CROP))
    scores = []
    for k in range(centroids.shape[0]):
        crops = []
        for t in range(video.shape[1]):
            col, row = (int(v) for v in centroids[k, t].floor().clamp(0, world.SIZE - 1))
            crops.append(padded[:, t, row : row + 2 * CROP + 1, col : col + 2 * CROP + 1].flatten())
        crops = torch.stack(crops)
        scores.append(torch.nn.functional.cosine_similarity(crops[1:], crops[:-1], dim=-1).mean())
    return float(torch.stack(scores).mean())


def smoothness(tracks: torch.Tensor) -> float:
    """Mean norm of the second difference of tracks (K, T, 2): latent pixels per frame^2 (0 = uniform motion)."""
    return float((tracks[:, 2:] - 2 * tracks[:, 1:-1] + tracks[:, :-2]).norm(dim=-1).mean())


def evaluate(generated: torch.Tensor, reference: world.Clip, target: tuple[tuple[str, str], ...]) -> dict:
    """All metrics of a generated latent video (16, T, H, W) that should move like `reference` and look like
    `target` (per-object (colour, shape))."""
    worm = reference.worm is not None
    count = len(reference.appearances)
    ref = track(world.render(reference), count, worm)
    gen = track(generated, count, worm)
    adherence, leakage = appearance_scores(gen, [c for c, _ in target], reference.colors)
    return {
        "motion_fidelity": motion_fidelity(ref["tracks"], gen["tracks"]),
        "track_error": track_error(ref["tracks"], gen["tracks"]),
        "appearance": adherence,
        "leakage": leakage,
        "temporal_consistency": temporal_consistency(generated, gen["centroids"]),
        "found": float(gen["found"].float().mean()),
    }


def describe(video: torch.Tensor, count: int = 1) -> dict:
    """A quick read-out of a generated video (16, T, H, W): colours, track, smoothness."""
    tracked = track(video, count)
    weights = tracked["found"].float()[..., None]
    mean = (tracked["colors"] * weights).sum(1) / weights.sum(1).clamp_min(1)
    cos = _color_cosines(mean, list(world.COLORS))
    return {
        "found": float(tracked["found"].float().mean()),
        "colors": [world.COLORS[int(i)] for i in cos.argmax(-1)],
        "color_cos": [round(float(v), 3) for v in cos.max(-1).values],
        "track": [[round(float(v), 1) for v in p] for p in tracked["tracks"][0]],
        "smoothness": round(smoothness(tracked["tracks"]), 3),
    }


_RGB = {
    "red": (230, 40, 40), "blue": (40, 80, 230), "green": (40, 180, 60), "yellow": (240, 220, 40),
    "purple": (150, 50, 200), "orange": (250, 140, 30), "white": (250, 250, 250), "black": (10, 10, 10),
}  # fmt: skip


def to_rgb(video: torch.Tensor) -> torch.Tensor:
    """(16, T, H, W) latent -> (T, H, W, 3) uint8 picture: objects in their colours over a grey background
    whose brightness follows the scene pattern."""
    basis = world.basis()
    coefficients = torch.einsum("kc,cthw->kthw", basis, video.float())  # (16, T, H, W)
    palette = torch.tensor([_RGB[c] for c in world.COLORS], dtype=torch.float32) / 255  # (8, 3)
    colors = coefficients[:8].clamp_min(0) / world.OBJECT_NORM  # (8, T, H, W)
    object_rgb = torch.einsum("kthw,kc->thwc", colors, palette)
    amount = colors.sum(0).clamp(0, 1)[..., None]
    scene = coefficients[8:].norm(dim=0)[..., None] / (2 * world.SCENE_LEVEL)
    background = (0.25 + 0.4 * scene).clamp(0, 1).expand(*scene.shape[:-1], 3)
    return ((object_rgb + (1 - amount) * background).clamp(0, 1) * 255).byte()


def save_strip(videos: torch.Tensor | list[torch.Tensor], path: str, scale: int = 8) -> None:
    """Write latent videos (16, T, H, W) as a PNG: one row per video, its frames side by side."""
    from PIL import Image

    rows = [torch.cat(list(to_rgb(video)), dim=1) for video in (videos if isinstance(videos, list) else [videos])]
    picture = torch.cat(rows, dim=0).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    Image.fromarray(picture.numpy()).save(path)


# two-sided 95% Student t quantiles by degrees of freedom (n - 1); beyond 30, the normal's 1.96
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042}  # fmt: skip


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its 95% Student t interval (nan bounds for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = _T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half
