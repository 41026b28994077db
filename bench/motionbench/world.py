"""MotionBench-mini's world: videos drawn directly in Wan 2.1's 16-channel latent space (no VAE).

A clip is a scene background plus coloured objects that move, seen through a camera that may pan and zoom.
Every clip is fully described by a `Clip` (appearances + trajectories) and rendered analytically, so a motion
can be re-rendered with another appearance (the ideal transfer) and tracked exactly.

Latent layout: (16, T, H, W) with T = 9 latent frames (= 33 video frames) and H = W = 16 (8 x 8 Wan patches).
Screen coordinates are (x, y) in latent pixels, pixel centres at 0.5, 1.5, ...; x is the column, y the row.

The 16 channels are split by an orthonormal basis E (16 x 16, fixed seed):
- E[0:8]   colour directions: an object of colour c is painted with the signature `OBJECT_NORM * E[c]`;
- E[8:16]  scene directions: scene s paints a smooth pattern on the pair E[8 + 2s], E[9 + 2s].
So "is there an object here" (the colour-subspace energy) and "which colour" (the projection on E[c]) are
exact, appearance-agnostic and appearance-specific read-outs of a latent (see metrics.py).

Appearance the caption does not name (the leak world, `reference_clips(patterns=True)`): an object may carry a
pattern, its front half (along x; a worm's front end) painted in a second colour that no caption names. A LoRA that
takes the reference's look along shows that colour on the new object (metrics.py: leakage).

Four categories, as in the paper's MotionBench:
- single:   one object moving;
- multi:    two objects moving as a group at a fixed distance, the pair turning (up to half a turn);
- camera:   static objects, the camera pans and zooms (background and objects move together on screen);
- nonrigid: a worm (capsule) that stretches and contracts (inchworm gait) while it crawls.

Captions are fixed sequences of word embeddings (no text encoder): each word maps to a seeded random
4096-vector (std 1), plus a seeded position code (std 0.5) so "red ball and blue box" binds colour to shape;
padded with zeros to CAPTION_LEN tokens. The empty caption (all zeros) is the unconditional one for CFG.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import torch

CHANNELS, FRAMES, SIZE = 16, 9, 16
TEXT_DIM, CAPTION_LEN = 4096, 16
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
SHAPES = ("ball", "box", "diamond")
SCENES = ("meadow", "desert", "ocean", "city")
CATEGORIES = ("single", "multi", "camera", "nonrigid")
# Magnitudes put a clip at about unit variance per element, as Wan's VAE latents are normalised. At the first
# design's scale (objects about 1 per channel, variance 0.18) the model's error in passing the noise through
# (v = noise - x0) swamped the data: x0 predictions at sigma >= 0.6 were speckle (PRETRAIN.md).
OBJECT_NORM = 9.6  # norm of an object's 16-channel signature (about 2.4 per channel)
SCENE_LEVEL, SCENE_WAVE = 2.9, 1.2  # a scene's constant level and its waves' amplitude
OBJECT_RADIUS = 2.7  # latent pixels at zoom 1
WORM_RADIUS = 1.9
EDGE = 0.6  # softness of object edges, latent pixels
_BASIS_SEED = 1234


def basis() -> torch.Tensor:
    """The fixed orthonormal channel basis E: (16, 16), rows are directions."""
    generator = torch.Generator().manual_seed(_BASIS_SEED)
    q, _ = torch.linalg.qr(torch.randn(CHANNELS, CHANNELS, generator=generator, dtype=torch.float64))
    return q.T.float().contiguous()


_E = basis()


def color_signature(color: str) -> torch.Tensor:
    """(16,) latent vector painted on an object of this colour."""
    return OBJECT_NORM * _E[COLORS.index(color)]


def color_subspace() -> torch.Tensor:
    """(8, 16): orthonormal rows spanning every object colour."""
    return _E[: len(COLORS)]


@dataclass(frozen=True)
class Clip:
    """A clip's full description; `render` turns it into a latent video.

    category: one of CATEGORIES. scene: one of SCENES.
    appearances: per object (colour, shape); shape "worm" for the nonrigid category.
    positions: (N, T, 2) world (x, y) of each object's centre (for the worm: the middle of its body).
    camera: (T, 3) camera centre x, y in world coordinates and zoom; (8, 8, 1) is the still camera.
    worm: (T, 2, 2) world positions of the worm's back and front ends (nonrigid only), else None.
    patterns: per object, the unnamed colour of its front half, or None (plain); () = every object plain.
    """

    category: str
    scene: str
    appearances: tuple[tuple[str, str], ...]
    positions: torch.Tensor
    camera: torch.Tensor
    worm: torch.Tensor | None = None
    patterns: tuple[str | None, ...] = ()

    @property
    def frames(self) -> int:
        return self.camera.shape[0]

    def with_appearances(self, appearances: tuple[tuple[str, str], ...], patterns: tuple = ()) -> Clip:
        """The same motion with other objects (plain unless `patterns`: the ideal motion transfer of this clip)."""
        if len(appearances) != len(self.appearances):
            raise ValueError(f"{len(self.appearances)} objects, got {len(appearances)} appearances")
        return replace(self, appearances=tuple(appearances), patterns=tuple(patterns))

    @property
    def colors(self) -> list[str]:
        """Every colour the clip shows: the named ones, then the unnamed patterns'."""
        return [color for color, _ in self.appearances] + [p for p in self.patterns if p]


# ----------------------------------------------------------------------------------------------- rendering


def _grid(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre screen coordinates (x, y), each (size, size)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def _scene_pattern(scene: str, wx: torch.Tensor, wy: torch.Tensor) -> torch.Tensor:
    """Background latent at world points (wx, wy) of shape S: (16, *S). Two smooth waves per scene."""
    index = SCENES.index(scene)
    generator = torch.Generator().manual_seed(100 + index)
    angles = torch.rand(2, generator=generator) * math.pi
    phases = torch.rand(2, generator=generator) * 2 * math.pi
    k = 2 * math.pi / torch.tensor([9.0, 6.5])
    waves = [torch.sin(k[i] * (torch.cos(angles[i]) * wx + torch.sin(angles[i]) * wy) + phases[i]) for i in range(2)]
    first, second = _E[8 + 2 * index], _E[9 + 2 * index]
    along_first = first[:, None, None] * (SCENE_LEVEL + SCENE_WAVE * waves[0])
    return along_first + second[:, None, None] * (SCENE_WAVE * waves[1])


def _shape_distance(shape: str, dx: torch.Tensor, dy: torch.Tensor, radius: float) -> torch.Tensor:
    """Signed distance-like field of a shape centred at 0 (negative inside)."""
    if shape == "ball":
        return torch.sqrt(dx**2 + dy**2) - radius
    if shape == "box":
        return torch.maximum(dx.abs(), dy.abs()) - 0.85 * radius
    if shape == "diamond":
        return (dx.abs() + dy.abs()) / math.sqrt(2) - 0.9 * radius
    raise ValueError(f"unknown shape {shape!r}")


def _segment_distance(px, py, ax, ay, bx, by) -> torch.Tensor:
    """Distance from points (px, py) to the segment a-b."""
    vx, vy = bx - ax, by - ay
    t = (((px - ax) * vx + (py - ay) * vy) / max(float(vx * vx + vy * vy), 1e-6)).clamp(0, 1)
    return torch.sqrt((px - ax - t * vx) ** 2 + (py - ay - t * vy) ** 2)


def to_screen(clip: Clip, world: torch.Tensor) -> torch.Tensor:
    """World points (..., T, 2) -> screen points (..., T, 2) through the clip's camera."""
    centre, zoom = clip.camera[:, :2], clip.camera[:, 2:3]
    return (world - centre) * zoom + SIZE / 2


def render(clip: Clip) -> torch.Tensor:
    """The clip as a latent video: (16, T, SIZE, SIZE) float32."""
    x, y = _grid()
    frames = []
    for t in range(clip.frames):
        cx, cy, zoom = (float(v) for v in clip.camera[t])
        wx, wy = (x - SIZE / 2) / zoom + cx, (y - SIZE / 2) / zoom + cy
        frame = _scene_pattern(clip.scene, wx, wy)
        for n, (color, shape) in enumerate(clip.appearances):
            if shape == "worm":
                ends = (clip.worm[t] - clip.camera[t, :2]) * zoom + SIZE / 2  # (2, 2): back, front
                distance = _segment_distance(x, y, ends[0, 0], ends[0, 1], ends[1, 0], ends[1, 1]) - WORM_RADIUS * zoom
                axis, middle = ends[1] - ends[0], ends.mean(0)
            else:
                sx, sy = to_screen(clip, clip.positions[n])[t]
                distance = _shape_distance(shape, x - sx, y - sy, OBJECT_RADIUS * zoom)
                axis, middle = torch.tensor([1.0, 0.0]), torch.stack([sx, sy])
            mask = torch.sigmoid(-distance / EDGE)
            paint = color_signature(color)[:, None, None]
            pattern = clip.patterns[n] if n < len(clip.patterns) else None
            if pattern is not None:  # the front half in the unnamed colour
                along = (x - middle[0]) * axis[0] + (y - middle[1]) * axis[1]
                front = torch.sigmoid(along / (EDGE * float(axis.norm().clamp_min(1e-6))))
                paint = paint * (1 - front) + color_signature(pattern)[:, None, None] * front
            frame = frame * (1 - mask) + paint * mask
        frames.append(frame)
    return torch.stack(frames, dim=1)


def screen_tracks(clip: Clip) -> torch.Tensor:
    """Ground-truth screen tracks (K, T, 2): object centres, then for the worm its back and front ends."""
    tracks = [to_screen(clip, clip.positions[n]) for n in range(len(clip.appearances))]
    if clip.worm is not None:
        tracks += [to_screen(clip, clip.worm[:, 0]), to_screen(clip, clip.worm[:, 1])]
    return torch.stack(tracks)


# ------------------------------------------------------------------------------------------------ captions


def caption_words(clip: Clip) -> list[str]:
    """The caption as words, e.g. ['red', 'ball', 'moves', 'on', 'meadow']."""
    (color, shape), *rest = clip.appearances
    if clip.category == "single":
        return [color, shape, "moves", "on", clip.scene]
    if clip.category == "multi":
        color2, shape2 = rest[0]
        return [color, shape, "and", color2, shape2, "move", "on", clip.scene]
    if clip.category == "camera":
        return [color, shape, "on", clip.scene, "camera", "moves"]
    if clip.category == "nonrigid":
        return [color, "worm", "crawls", "on", clip.scene]
    raise ValueError(f"unknown category {clip.category!r}")


def word_vector(word: str) -> torch.Tensor:
    """A word's fixed embedding: (TEXT_DIM,), std 1, seeded by the word's CRC32."""
    generator = torch.Generator().manual_seed(zlib.crc32(word.encode()))
    return torch.randn(TEXT_DIM, generator=generator)


def _position_codes() -> torch.Tensor:
    generator = torch.Generator().manual_seed(4321)
    return 0.5 * torch.randn(CAPTION_LEN, TEXT_DIM, generator=generator)


_POSITIONS = _position_codes()


def embed(words: list[str]) -> torch.Tensor:
    """Words -> caption context (CAPTION_LEN, TEXT_DIM): word vector + position code, zero padding."""
    if len(words) > CAPTION_LEN:
        raise ValueError(f"at most {CAPTION_LEN} words; got {len(words)}")
    context = torch.zeros(CAPTION_LEN, TEXT_DIM)
    for i, word in enumerate(words):
        context[i] = word_vector(word) + _POSITIONS[i]
    return context


def caption(clip: Clip) -> torch.Tensor:
    """(CAPTION_LEN, TEXT_DIM) caption context of a clip."""
    return embed(caption_words(clip))


def first_frame_concat(x0: torch.Tensor) -> torch.Tensor:
    """The image-to-video input channels of clips x0 (B, 16, T, H, W) whose latent frame 0 is given, as Wan 2.1 /
    2.2 A14B I2V take them (ComfyUI's WAN21.concat_cond): (B, 4 + 16, T, H, W) = 4 mask channels (1 at the given
    frame 0, 0 at every other frame) then 16 image channels (x0's frame 0 at frame 0, zeros elsewhere)."""
    batch, channels, frames, height, width = x0.shape
    concat = x0.new_zeros(batch, 4 + channels, frames, height, width)
    concat[:, :4, 0] = 1.0
    concat[:, 4:, 0] = x0[:, :, 0]
    return concat


def empty_caption() -> torch.Tensor:
    """(CAPTION_LEN, TEXT_DIM) zeros: the unconditional caption."""
    return torch.zeros(CAPTION_LEN, TEXT_DIM)


# ------------------------------------------------------------------------------- random clips (pre-training)


def _waypoint_path(points: torch.Tensor, s: torch.Tensor, sharp: bool) -> torch.Tensor:
    """A path through waypoints (K, 2) at segment parameters s (T,) in [0, K - 1]: (T, 2).

    sharp: straight segments with corners (a polyline); else a Catmull-Rom spline (smooth, through every point).
    """
    last = points.shape[0] - 2
    index = s.floor().long().clamp(0, last)
    u = (s - index)[:, None]
    a, b = points[index], points[index + 1]
    if sharp:
        return a + u * (b - a)
    padded = torch.cat([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    tangent_a = 0.5 * (padded[index + 2] - padded[index])
    tangent_b = 0.5 * (padded[index + 3] - padded[index + 1])
    u2, u3 = u**2, u**3
    return (2 * u3 - 3 * u2 + 1) * a + (u3 - 2 * u2 + u) * tangent_a + (-2 * u3 + 3 * u2) * b + (u3 - u2) * tangent_b


def _random_path(generator: torch.Generator, frames: int, low: float, high: float) -> torch.Tensor:
    """A random path (T, 2) through 2-5 random waypoints in [low, high]^2, smooth or with sharp corners (even odds),
    at a random ease-in / ease-out speed: straight lines, arcs, S-curves, loops, zigzags, bounces.

    The benchmark's reference motions are fixed shapes (zigzags, circles, bounces) that no draw of this family
    repeats: PRETRAIN.md measures how far the nearest of many draws stays from each.
    """
    count = int(torch.randint(2, 6, (1,), generator=generator))
    points = low + (high - low) * torch.rand(count, 2, generator=generator)
    sharp = bool(torch.rand(1, generator=generator) < 0.5)
    speed_bias = 0.6 + 0.8 * float(torch.rand(1, generator=generator))
    s = (count - 1) * torch.linspace(0, 1, frames) ** speed_bias
    return _waypoint_path(points, s, sharp)


def random_clip(generator: torch.Generator, category: str | None = None, frames: int = FRAMES) -> Clip:
    """A random pre-training clip (appearances, scene and trajectories drawn from `generator`)."""

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    def uniform(a, b):
        return a + (b - a) * float(torch.rand(1, generator=generator))

    category = category or pick(CATEGORIES)
    scene = pick(SCENES)
    still = torch.tensor([[SIZE / 2, SIZE / 2, 1.0]]).repeat(frames, 1)
    if category == "single":
        path = _random_path(generator, frames, 3.0, 13.0)
        return Clip(category, scene, ((pick(COLORS), pick(SHAPES)),), path[None], still)
    if category == "multi":
        colors = torch.randperm(len(COLORS), generator=generator)[:2].tolist()
        appearances = tuple((COLORS[c], pick(SHAPES)) for c in colors)
        centre = _random_path(generator, frames, 5.0, 11.0)
        angle0, turn, gap = uniform(0, 2 * math.pi), uniform(-math.pi, math.pi), uniform(5.0, 7.0)
        angles = angle0 + turn * torch.linspace(0, 1, frames)
        offset = 0.5 * gap * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
        return Clip(category, scene, appearances, torch.stack([centre - offset, centre + offset]), still)
    if category == "camera":
        centre = _random_path(generator, frames, 5.0, 11.0)
        t = torch.linspace(0, 1, frames)
        zoom = uniform(0.8, 1.25) + uniform(-0.3, 0.3) * t + uniform(-0.3, 0.3) * torch.sin(math.pi * t)
        zoom = zoom.clamp(0.7, 1.4)
        camera = torch.cat([centre, zoom[:, None]], -1)
        position = torch.tensor([uniform(5.5, 10.5), uniform(5.5, 10.5)]).repeat(frames, 1)
        return Clip(category, scene, ((pick(COLORS), pick(SHAPES)),), position[None], camera)
    if category == "nonrigid":
        path = _random_path(generator, frames, 4.0, 12.0)
        cycles, phase = uniform(0.7, 2.0), uniform(0, 2 * math.pi)
        length = 4.5 + 1.5 * torch.sin(2 * math.pi * cycles * torch.linspace(0, 1, frames) + phase)
        return Clip(category, scene, ((pick(COLORS), "worm"),), path[None], still, worm_ends(path, length))
    raise ValueError(f"unknown category {category!r}")


def worm_ends(path: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Back and front ends (T, 2, 2) of a worm whose middle follows path (T, 2), body along the tangent."""
    tangent = torch.zeros_like(path)
    tangent[1:-1] = path[2:] - path[:-2]
    tangent[0], tangent[-1] = path[1] - path[0], path[-1] - path[-2]
    direction = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    half = (length / 2)[:, None] * direction
    return torch.stack([path - half, path + half], dim=1)


def random_clips(generator: torch.Generator, batch: int, frames: int = FRAMES) -> list[Clip]:
    """`batch` random clips of any category, drawn in order from `generator`."""
    return [random_clip(generator, frames=frames) for _ in range(batch)]


def training_batch(generator: torch.Generator, batch: int, frames: int = FRAMES) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random clips: latents (B, 16, T, 16, 16) and captions (B, CAPTION_LEN, TEXT_DIM)."""
    clips = random_clips(generator, batch, frames)
    return torch.stack([render(c) for c in clips]), torch.stack([caption(c) for c in clips])


# --------------------------------------------------------------------------- benchmark reference motions


def _times(frames: int) -> torch.Tensor:
    return torch.linspace(0, 1, frames)


def _zigzag(frames: int, start, end, amplitude: float, turns: int) -> torch.Tensor:
    """A path from start to end with `turns` sharp sideways zigzags: (T, 2)."""
    t = _times(frames)
    start, end = torch.tensor(start), torch.tensor(end)
    along = end - start
    side = torch.tensor([-along[1], along[0]]) / along.norm()
    tri = 1 - 2 * torch.abs((t * turns) % 2 - 1)  # triangle wave in [-1, 1]
    return start + t[:, None] * along + amplitude * tri[:, None] * side


def _circle(frames: int, centre, radius: float, start_angle: float, sweep: float) -> torch.Tensor:
    angles = start_angle + sweep * _times(frames)
    return torch.tensor(centre) + radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)


def _bounce(frames: int, x0: float, x1: float, floor: float, height: float, bounces: float) -> torch.Tensor:
    t = _times(frames)
    x = x0 + (x1 - x0) * t
    y = floor - height * torch.abs(torch.sin(math.pi * bounces * t))
    return torch.stack([x, y], -1)


def _still(frames: int) -> torch.Tensor:
    return torch.tensor([[SIZE / 2, SIZE / 2, 1.0]]).repeat(frames, 1)


def _unused_colors(*used: str) -> list[str]:
    return [color for color in COLORS if color not in used]


def with_patterns(clip: Clip, targets: tuple[tuple[str, str], ...]) -> Clip:
    """`clip` with an unnamed pattern on every object: the first colours that neither the clip nor the targets
    use (so a pattern that shows on the target is the reference's look, never the prompt's)."""
    free = _unused_colors(*clip.colors, *(color for color, _ in targets))
    return replace(clip, patterns=tuple(free[: len(clip.appearances)]))


def other_looks(clip: Clip, targets: tuple[tuple[str, str], ...], count: int) -> list[Clip]:
    """`count` clips of `clip`'s motion with other looks, as a user's several clips of one motion: per clip,
    each object a colour that neither the reference, its patterns nor the targets use, and the next shape;
    patterned like the reference (other unnamed colours: not the targets', nor the reference's where enough are left)."""
    targets_colors = [color for color, _ in targets]
    free = _unused_colors(*clip.colors, *targets_colors)
    looks = []
    for i in range(count):
        appearances = []
        for n, (_, shape) in enumerate(clip.appearances):
            color = free[(i * len(clip.appearances) + n) % len(free)]
            other = shape if shape == "worm" else SHAPES[(SHAPES.index(shape) + i + 1) % len(SHAPES)]
            appearances.append((color, other))
        named = [color for color, _ in appearances]
        patterns = ()
        if clip.patterns:
            spare = _unused_colors(*clip.colors, *named, *targets_colors) or _unused_colors(*named, *targets_colors)
            patterns = tuple(spare[(i + n) % len(spare)] for n in range(len(appearances)))
        looks.append(clip.with_appearances(tuple(appearances), patterns))
    return looks


def reference_clips(
    frames: int = FRAMES, patterns: bool = False
) -> list[tuple[str, Clip, tuple[tuple[str, str], ...]]]:
    """The benchmark: (name, reference clip, target appearances) per entry, two per category.

    Every reference motion is outside the pre-training family (zigzags, circles, bounces, shakes); every
    target keeps the scene and changes each object's colour and shape. patterns: every reference object carries
    an unnamed pattern (`with_patterns`), the leak world.
    """
    t = _times(frames)
    entries = []

    def add(name, clip, targets):
        entries.append((name, with_patterns(clip, targets) if patterns else clip, tuple(targets)))

    add("single-zigzag", Clip("single", "meadow", (("red", "ball"),),
                              _zigzag(frames, (3.0, 4.0), (13.0, 12.0), 2.5, 3)[None], _still(frames)),
        [("blue", "box")])  # fmt: skip
    add("single-bounce", Clip("single", "desert", (("green", "diamond"),),
                              _bounce(frames, 3.0, 13.0, 12.5, 7.0, 2.0)[None], _still(frames)),
        [("purple", "ball")])  # fmt: skip

    circle = _circle(frames, (8.0, 8.0), 2.5, 0.0, 1.6 * math.pi)
    side = torch.tensor([3.5, 0.0])
    add("multi-circle-pair", Clip("multi", "ocean", (("yellow", "ball"), ("red", "box")),
                                  torch.stack([circle - side, circle + side]), _still(frames)),
        [("white", "diamond"), ("green", "ball")])  # fmt: skip
    angles = math.pi * t  # the pair swaps places (half a turn) while drifting right
    drift = torch.stack([5.0 + 6.0 * t, 8.0 + 0 * t], -1)
    offset = 3.0 * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    add("multi-swap", Clip("multi", "city", (("blue", "ball"), ("orange", "ball")),
                           torch.stack([drift - offset, drift + offset]), _still(frames)),
        [("black", "box"), ("yellow", "diamond")])  # fmt: skip

    shake = torch.cat([_zigzag(frames, (5.0, 8.0), (11.0, 8.0), 2.0, 4), torch.ones(frames, 1)], -1)
    add("camera-shake-pan", Clip("camera", "meadow", (("orange", "box"),),
                                 torch.tensor([[8.0, 7.0]]).repeat(frames, 1)[None], shake),
        [("blue", "diamond")])  # fmt: skip
    orbit = _circle(frames, (8.0, 8.0), 2.5, math.pi / 2, 2 * math.pi)
    zoom = 1.0 + 0.3 * torch.sin(math.pi * t)  # zoom in, then back out, while orbiting
    add("camera-orbit-zoom", Clip("camera", "desert", (("white", "ball"),),
                                  torch.tensor([[9.0, 8.0]]).repeat(frames, 1)[None],
                                  torch.cat([orbit, zoom[:, None]], -1)),
        [("red", "box")])  # fmt: skip

    path = _zigzag(frames, (4.5, 11.5), (11.5, 4.5), 1.5, 2)
    length = 4.5 + 1.8 * torch.sin(2 * math.pi * 2.0 * t)  # two fast stretch cycles
    add("nonrigid-zigzag-crawl", Clip("nonrigid", "ocean", (("purple", "worm"),), path[None], _still(frames),
                                      worm_ends(path, length)),
        [("yellow", "worm")])  # fmt: skip
    path = _circle(frames, (8.0, 8.0), 4.0, math.pi, -1.5 * math.pi)
    length = 4.5 - 1.8 * torch.cos(2 * math.pi * 1.5 * t)
    add("nonrigid-circle-crawl", Clip("nonrigid", "city", (("green", "worm"),), path[None], _still(frames),
                                      worm_ends(path, length)),
        [("red", "worm")])  # fmt: skip
    return entries
