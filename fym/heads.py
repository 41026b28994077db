"""Stage 1: classify every self-attention head as spatial or temporal (paper Sec. 3.1, Alg. 1).

For a query token i the attention row A_i (softmax over all keys) is compared by cosine similarity with two
binary pseudo-maps: the spatial map M_s (keys in the same frame within `band` patches of i's position) and
the temporal map M_t (keys at i's position, within `band` patches, in every other frame). Sim_s and Sim_t are
the mean cosine similarities over queries; a head is temporal iff Sim_s < alpha * Sim_t.

The S x S attention is never built: queries are sampled and keys are streamed in chunks with an online
softmax, so memory is O(queries x chunk) per head and time is O(queries x S).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field

import torch

from .config import ClassifyConfig
from .host import Condition, WanHost, WanShape

SPATIAL, TEMPORAL = "spatial", "temporal"


def _token_coords(tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """(N,) token indices -> (N, 3) (frame, row, col) for a frame-major (T, Hp, Wp) grid."""
    _, hp, wp = grid
    return torch.stack([tokens // (hp * wp), (tokens // wp) % hp, tokens % wp], dim=-1)


def _masks(query_coords: torch.Tensor, key_coords: torch.Tensor, band: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-map rows (Q, K) as booleans: (spatial, temporal)."""
    same_frame = query_coords[:, None, 0] == key_coords[None, :, 0]
    near = ((query_coords[:, None, 1:] - key_coords[None, :, 1:]).abs() <= band).all(-1)
    return same_frame & near, ~same_frame & near


def head_scores(
    q: torch.Tensor,
    k: torch.Tensor,
    grid: tuple[int, int, int],
    band: int,
    queries: torch.Tensor | None = None,
    key_chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sim_s and Sim_t of every head, streamed over keys.

    Args:
        q, k: (S, heads, head_dim) after RoPE, one sample.
        grid: (T, Hp, Wp) with T * Hp * Wp = S.
        band: pseudo-map half-width in patches.
        queries: (Q,) query token indices; None = all S tokens (exact scores).
        key_chunk: keys processed at once.

    Returns:
        (sim_spatial, sim_temporal), each (heads,) float32.
    """
    seq, heads, head_dim = q.shape
    if seq != math.prod(grid):
        raise ValueError(f"sequence length {seq} does not match grid {grid}")
    queries = torch.arange(seq, device=q.device) if queries is None else queries.to(q.device)
    q_coords = _token_coords(queries, grid)
    qs = q[queries].float().transpose(0, 1) / math.sqrt(head_dim)  # (heads, Q, D)
    shape = (heads, len(queries))
    running_max = torch.full(shape, -math.inf, device=q.device)
    total = torch.zeros(shape, device=q.device)  # sum exp(l - max)
    squares = torch.zeros(shape, device=q.device)  # sum exp(2 (l - max))
    mass_s = torch.zeros(shape, device=q.device)
    mass_t = torch.zeros(shape, device=q.device)
    count_s = torch.zeros(len(queries), device=q.device)
    count_t = torch.zeros(len(queries), device=q.device)
    for start in range(0, seq, key_chunk):
        keys = torch.arange(start, min(start + key_chunk, seq), device=q.device)
        logits = qs @ k[keys].float().permute(1, 2, 0)  # (heads, Q, chunk)
        new_max = torch.maximum(running_max, logits.amax(-1))
        rescale = torch.exp(running_max - new_max)
        weights = torch.exp(logits - new_max[..., None])
        m_s, m_t = _masks(q_coords, _token_coords(keys, grid), band)
        total = total * rescale + weights.sum(-1)
        squares = squares * rescale**2 + (weights**2).sum(-1)
        mass_s = mass_s * rescale + (weights * m_s).sum(-1)
        mass_t = mass_t * rescale + (weights * m_t).sum(-1)
        count_s += m_s.sum(-1)
        count_t += m_t.sum(-1)
        running_max = new_max
    # cos(A_i, M_i) = (A_i . M_i) / (|A_i| |M_i|) with A_i = weights / total.
    attention_norm = squares.sqrt() / total
    cos_s = (mass_s / total) / (attention_norm * count_s.clamp_min(1).sqrt())
    cos_t = (mass_t / total) / (attention_norm * count_t.clamp_min(1).sqrt())
    return cos_s.mean(-1), cos_t.mean(-1)


def exact_head_scores(q: torch.Tensor, k: torch.Tensor, grid: tuple[int, int, int], band: int):
    """The same scores from the full S x S attention map (for tests on small inputs only)."""
    seq, _, head_dim = q.shape
    attention = torch.softmax(q.float().transpose(0, 1) @ k.float().permute(1, 2, 0) / math.sqrt(head_dim), -1)
    coords = _token_coords(torch.arange(seq), grid)
    sims = []
    for mask in _masks(coords, coords, band):
        mask = mask.float()
        cos = (attention * mask).sum(-1) / (attention.norm(dim=-1) * mask.norm(dim=-1).clamp_min(1))
        sims.append(cos.mean(-1))
    return sims[0], sims[1]


@dataclass
class HeadMap:
    """Per layer and head: the type and both scores. Saves to and loads from JSON.

    sim_spatial, sim_temporal: [layer][head] floats. overrides: "layer.head" -> "spatial" | "temporal".
    """

    shape: WanShape
    sim_spatial: list[list[float]]
    sim_temporal: list[list[float]]
    alpha: float
    sigmas: list[float]
    band: int
    num_queries: int
    overrides: dict[str, str] = field(default_factory=dict)

    def kind(self, layer: int, head: int) -> str:
        forced = self.overrides.get(f"{layer}.{head}")
        if forced:
            return forced
        return TEMPORAL if self.sim_spatial[layer][head] < self.alpha * self.sim_temporal[layer][head] else SPATIAL

    def heads(self, kind: str) -> dict[int, list[int]]:
        """layer -> sorted heads of that kind (layers with none are left out)."""
        found = {
            layer: [h for h in range(self.shape.num_heads) if self.kind(layer, h) == kind]
            for layer in range(self.shape.num_layers)
        }
        return {layer: heads for layer, heads in found.items() if heads}

    def count(self, kind: str) -> int:
        return sum(len(h) for h in self.heads(kind).values())

    def as_overrides(self) -> str:
        """Every head's current type as override text ("0.0=s, 0.1=t, ..."), which pins this split."""
        shape = self.shape
        return format_overrides(
            {(i, h): self.kind(i, h) for i in range(shape.num_layers) for h in range(shape.num_heads)}
        )

    def with_changes(self, alpha: float | None = None, overrides: str = "") -> HeadMap:
        """A copy with another alpha and/or extra overrides parsed from text like "0.3=t, 5.11=spatial"."""
        extra = parse_overrides(overrides, self.shape)
        return HeadMap(
            self.shape, self.sim_spatial, self.sim_temporal, self.alpha if alpha is None else alpha,
            self.sigmas, self.band, self.num_queries, {**self.overrides, **extra},
        )  # fmt: skip

    def to_json(self) -> str:
        data = asdict(self)
        data["shape"] = self.shape.as_dict()
        data["types"] = [[self.kind(i, h) for h in range(self.shape.num_heads)] for i in range(self.shape.num_layers)]
        data["format"] = "fym.head_map.v1"
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> HeadMap:
        data = json.loads(text)
        if data.pop("format", None) != "fym.head_map.v1":
            raise ValueError("not a Follow-Your-Motion head map (missing format 'fym.head_map.v1')")
        data.pop("types", None)
        data["shape"] = WanShape(**data["shape"])
        return cls(**data)

    def check_shape(self, shape: WanShape, where: str) -> None:
        if shape != self.shape:
            raise ValueError(
                f"{where}: the head map was made for a model with {self.shape.num_layers} layers x "
                f"{self.shape.num_heads} heads, but this model has {shape.num_layers} x {shape.num_heads}; "
                "run Classify Heads on this model"
            )


_OVERRIDE = re.compile(r"^(\d+)\.(\d+)\s*=\s*(s|t|spatial|temporal)$")


def split_if_one_sided(head_map: HeadMap) -> tuple[HeadMap, bool]:
    """The head map, or, if alpha put every head on one side, its heads split in half by Sim_s / Sim_t (the
    lower half temporal), so both LoRA stages have heads; the flag says whether it split."""
    if head_map.heads("spatial") and head_map.heads("temporal"):
        return head_map, False
    shape = head_map.shape
    ranked = sorted(
        (head_map.sim_spatial[i][h] / max(head_map.sim_temporal[i][h], 1e-8), i, h)
        for i in range(shape.num_layers) for h in range(shape.num_heads)
    )  # fmt: skip
    half = len(ranked) // 2
    kinds = {(i, h): TEMPORAL if n < half else SPATIAL for n, (_, i, h) in enumerate(ranked)}
    return head_map.with_changes(overrides=format_overrides(kinds)), True


def format_overrides(kinds: dict[tuple[int, int], str]) -> str:
    """{(layer, head): "spatial" | "temporal"} -> override text "0.3=t, 5.11=s" (parse_overrides reads it)."""
    return ", ".join(f"{layer}.{head}={kind[0]}" for (layer, head), kind in sorted(kinds.items()))


def parse_overrides(text: str, shape: WanShape) -> dict[str, str]:
    """ "0.3=t, 5.11=spatial" (commas or new lines) -> {"0.3": "temporal", "5.11": "spatial"}."""
    result = {}
    for item in filter(None, (part.strip() for part in re.split(r"[,\n]", text))):
        match = _OVERRIDE.match(item.lower())
        if not match:
            raise ValueError(f"override {item!r} is not of the form layer.head=spatial|temporal (e.g. 0.3=t)")
        layer, head, kind = int(match[1]), int(match[2]), match[3]
        if layer >= shape.num_layers or head >= shape.num_heads:
            raise ValueError(f"override {item!r}: the model has {shape.num_layers} layers x {shape.num_heads} heads")
        result[f"{layer}.{head}"] = SPATIAL if kind.startswith("s") else TEMPORAL
    return result


def classify_heads(
    host: WanHost, latent: torch.Tensor, condition: Condition | torch.Tensor, config: ClassifyConfig | None = None
) -> HeadMap:
    """Score every head of `host` on the reference latent (1, C, T, H, W) with its Condition (or caption
    embedding (1, L, D)), as it would be sampled: a GIVEN_CLEAN first frame stays clean."""
    config = config or ClassifyConfig()
    sims = head_similarities(host, latent, condition, config)
    _, _, frames, height, width = latent.shape
    return HeadMap(
        host.shape, sims[0].tolist(), sims[1].tolist(), config.alpha, list(config.sigmas), config.band,
        min(config.num_queries, frames * (height // 2) * (width // 2)),
    )  # fmt: skip


def head_similarities(
    host: WanHost, latent: torch.Tensor, condition: Condition | torch.Tensor, config: ClassifyConfig
) -> torch.Tensor:
    """(2, layers, heads) Sim_s and Sim_t of every head on the reference latent (1, C, T, H, W), averaged over
    config.sigmas (nothing is read back: fym.plan runs it on fake tensors)."""
    condition = Condition.of(condition)
    _, _, frames, height, width = latent.shape
    if frames < 2:
        raise ValueError("classify_heads needs a video latent with at least 2 frames")
    grid = (frames, height // 2, width // 2)
    seq = math.prod(grid)
    shape = host.shape
    generator = torch.Generator().manual_seed(config.seed)
    queries = torch.randperm(seq, generator=generator)[: config.num_queries].sort().values
    sums = torch.zeros(2, shape.num_layers, shape.num_heads)

    def on_qk(layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        s, t = head_scores(q[0], k[0], grid, config.band, queries)
        sums[0, layer] += s.cpu()
        sums[1, layer] += t.cpu()

    for sigma in config.sigmas:
        noise = torch.randn(latent.shape, generator=generator).to(latent)
        x_t = condition.noised(latent, noise, sigma)
        host.capture_qk(x_t, torch.tensor([sigma], device=latent.device), condition, on_qk)
    return sums / len(config.sigmas)


def heat_map(head_map: HeadMap, cell: int = 16) -> torch.Tensor:
    """An RGB picture of the map, (layers * cell, heads * cell, 3) in 0..1: rows are layers, columns heads.

    Red = temporal, blue = spatial; brightness grows with how clear the call is (|log(Sim_s / (alpha Sim_t))|).
    Overridden heads get a white dot.
    """
    s = torch.tensor(head_map.sim_spatial).clamp_min(1e-8)
    t = torch.tensor(head_map.sim_temporal).clamp_min(1e-8)
    margin = torch.log(s / (head_map.alpha * t))  # < 0: temporal
    strength = (margin.abs() / margin.abs().max().clamp_min(1e-8)) * 0.7 + 0.3
    temporal = torch.tensor(
        [[head_map.kind(i, h) == TEMPORAL for h in range(head_map.shape.num_heads)]
         for i in range(head_map.shape.num_layers)]
    )  # fmt: skip
    image = torch.zeros(*s.shape, 3)
    image[..., 0] = torch.where(temporal, strength, 0.1)
    image[..., 2] = torch.where(temporal, 0.1, strength)
    image = image.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    for key in head_map.overrides:
        layer, head = map(int, key.split("."))
        centre = slice(cell // 2 - 1, cell // 2 + 1)
        image[layer * cell :][centre, head * cell :][:, centre] = 1.0
    return image
