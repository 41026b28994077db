import math

import pytest
import torch

from fym.config import ClassifyConfig
from fym.heads import (
    SPATIAL,
    TEMPORAL,
    HeadMap,
    classify_heads,
    exact_head_scores,
    head_scores,
    heat_map,
    parse_overrides,
    split_if_one_sided,
)
from fym.host import WanShape

GRID = (4, 3, 3)  # frames, rows, cols
SEQ = math.prod(GRID)


def crafted_qk():
    """Head 0 attends only to itself (spatial); head 1 attends to its position in every frame (temporal)."""
    frame, pos = torch.arange(SEQ) // 9, torch.arange(SEQ) % 9
    big = 30.0
    head0 = torch.nn.functional.one_hot(torch.arange(SEQ), SEQ).float() * big  # unique per token
    head1 = torch.nn.functional.one_hot(pos, SEQ).float() * big  # same key for the same position
    q = torch.stack([head0, head1], dim=1)  # (S, heads, D=SEQ)
    assert frame.max() == GRID[0] - 1
    return q, q.clone()


def test_crafted_heads_get_the_known_types():
    q, k = crafted_qk()
    sim_s, sim_t = head_scores(q, k, GRID, band=0)
    assert sim_s[0] > 0.99 and sim_t[0] < 0.01  # pure self-attention = spatial pseudo-map
    f = GRID[0]
    assert sim_s[1] == pytest.approx(1 / math.sqrt(f), abs=1e-4)  # uniform over f frames, 1 of them own frame
    assert sim_t[1] == pytest.approx(math.sqrt((f - 1) / f), abs=1e-4)
    shape = WanShape(1, 2, SEQ)
    head_map = HeadMap(shape, [sim_s.tolist()], [sim_t.tolist()], 1.3, [0.5], 0, SEQ)
    assert [head_map.kind(0, h) for h in range(2)] == [SPATIAL, TEMPORAL]


def test_streamed_scores_equal_exact_scores_with_all_queries():
    torch.manual_seed(0)
    q, k = torch.randn(SEQ, 3, 16) * 2, torch.randn(SEQ, 3, 16) * 2
    for band in (0, 1):
        streamed = head_scores(q, k, GRID, band, key_chunk=7)  # chunks that do not divide S
        exact = exact_head_scores(q, k, GRID, band)
        for a, b in zip(streamed, exact, strict=False):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_sampled_queries_approximate_exact_scores():
    torch.manual_seed(0)
    grid = (6, 8, 8)
    q, k = torch.randn(384, 4, 16), torch.randn(384, 4, 16)
    exact = exact_head_scores(q, k, grid, 1)
    sampled = head_scores(q, k, grid, 1, queries=torch.randperm(384)[:192])
    for a, b in zip(sampled, exact, strict=False):
        assert ((a - b).abs() / b).max() < 0.1


def designed_qk(grid, weights):
    """q, k (S, heads, D) whose logits are, per head, fw [same frame] + pw [same position] - dw |p_i - p_j|^2.

    weights: one (fw, pw, dw) per head. The per-query constant dw |p_i|^2 left in the logits cancels in softmax.
    """
    frames, rows, cols = grid
    token = torch.arange(math.prod(grid))
    frame = torch.nn.functional.one_hot(token // (rows * cols), frames).float()
    pos = torch.nn.functional.one_hot(token % (rows * cols), rows * cols).float()
    r, c = (token % (rows * cols) // cols).float(), (token % cols).float()
    k = torch.cat([frame, pos, torch.stack([r, c, r**2 + c**2], -1)], -1)
    dim = k.shape[-1]
    qs = [
        torch.cat([fw * frame, pw * pos, torch.stack([2 * dw * r, 2 * dw * c, torch.full_like(r, -dw)], -1)], -1)
        * math.sqrt(dim)  # head_scores divides the logits by sqrt(head_dim)
        for fw, pw, dw in weights
    ]
    return torch.stack(qs, 1), k[:, None].expand(-1, len(weights), -1).contiguous()


LOCAL_SPATIAL = (20.0, 0.0, 0.3)  # keys of the query's own frame, near its position
OTHER_FRAMES = (-20.0, 0.0, 0.3)  # keys near the query's position in every other frame


def test_local_heads_get_the_known_types_with_a_band():
    grid = (4, 5, 5)
    q, k = designed_qk(grid, [LOCAL_SPATIAL, OTHER_FRAMES])
    sim_s, sim_t = head_scores(q, k, grid, band=1)
    assert sim_s[0] > 0.85 and sim_t[0] < 1e-6  # all mass in the own frame, mostly inside the band
    assert sim_s[1] < 1e-6 and sim_t[1] > 0.85  # all mass in the other frames, mostly inside their band
    head_map = HeadMap(WanShape(1, 2, 8), [sim_s.tolist()], [sim_t.tolist()], 1.3, [0.5], 1, 100)
    assert [head_map.kind(0, h) for h in range(2)] == [SPATIAL, TEMPORAL]


def test_scores_follow_the_share_of_attention_on_other_frames():
    """Sliding the same-frame logit bonus from +6 to -6 moves attention from the own frame to the others: Sim_s
    must fall, Sim_t rise and the call flip from spatial to temporal exactly once."""
    grid = (4, 5, 5)
    bonuses = [6.0, 3.0, 1.0, 0.0, -1.0, -3.0, -6.0]
    q, k = designed_qk(grid, [(b, 0.0, 1.0) for b in bonuses])
    sim_s, sim_t = head_scores(q, k, grid, band=1, key_chunk=33)
    assert (sim_s.diff() < 0).all() and (sim_t.diff() > 0).all()
    head_map = HeadMap(WanShape(1, len(bonuses), 8), [sim_s.tolist()], [sim_t.tolist()], 1.3, [0.5], 1, 100)
    kinds = [head_map.kind(0, h) for h in range(len(bonuses))]
    assert kinds[0] == SPATIAL and kinds[-1] == TEMPORAL
    flip = kinds.index(TEMPORAL)
    assert kinds == [SPATIAL] * flip + [TEMPORAL] * (len(bonuses) - flip)


class DesignedHost:
    """A host whose every forward hands classify_heads designed q/k: layer 0 (local spatial, other frames),
    layer 1 the reverse; the logits are scaled by (1 - sigma / 2) so that each noise level scores differently."""

    def __init__(self, grid):
        self.grid = grid
        self.shape = WanShape(num_layers=2, num_heads=2, head_dim=8)
        self.seen = []

    def qk(self, layer, sigma):
        weights = [LOCAL_SPATIAL, OTHER_FRAMES][:: 1 if layer == 0 else -1]
        q, k = designed_qk(self.grid, [tuple(w * (1 - sigma / 2) for w in ws) for ws in weights])
        return q[None], k[None]

    def capture_qk(self, x_t, sigma, context, on_qk):
        self.seen.append((tuple(x_t.shape), float(sigma)))
        for layer in range(2):
            on_qk(layer, *self.qk(layer, float(sigma)))


def test_classify_heads_averages_exact_scores_over_sigmas_per_layer_and_head():
    grid = (4, 4, 5)
    host = DesignedHost(grid)
    latent = torch.zeros(1, 16, 4, 8, 10)  # 2 x 2 patches: a (4, 4, 5) token grid (rows != cols)
    sigmas = (0.2, 0.8)
    head_map = classify_heads(host, latent, None, ClassifyConfig(sigmas=sigmas, num_queries=1000, band=1))
    assert [s for _, s in host.seen] == pytest.approx(list(sigmas)) and host.seen[0][0] == latent.shape
    assert head_map.num_queries == 80  # every token
    for layer in range(2):
        per_sigma = [exact_head_scores(*(t[0] for t in host.qk(layer, s)), grid, 1) for s in sigmas]
        for got, which in ((head_map.sim_spatial, 0), (head_map.sim_temporal, 1)):
            expected = (per_sigma[0][which] + per_sigma[1][which]) / 2
            torch.testing.assert_close(torch.tensor(got[layer]), expected, rtol=1e-5, atol=1e-6)
    assert head_map.heads(SPATIAL) == {0: [0], 1: [1]} and head_map.heads(TEMPORAL) == {0: [1], 1: [0]}


def test_classify_heads_on_a_real_model_is_seeded_and_in_range(host, clip, context):
    head_map = classify_heads(host, clip, context, ClassifyConfig(num_queries=32))
    assert len(head_map.sim_spatial) == 2 and all(len(row) == 4 for row in head_map.sim_spatial)
    assert all(0 < v <= 1 for row in head_map.sim_spatial + head_map.sim_temporal for v in row)
    again = classify_heads(host, clip, context, ClassifyConfig(num_queries=32))
    assert again.sim_spatial == head_map.sim_spatial and again.sim_temporal == head_map.sim_temporal  # seeded
    other = classify_heads(host, clip, context, ClassifyConfig(num_queries=32, seed=1))
    assert other.sim_spatial != head_map.sim_spatial  # the seed picks the queries and the noise


def test_a_head_is_temporal_exactly_when_sim_s_is_below_alpha_times_sim_t():
    alpha = 1.25  # exact in binary, as are the scores below, so the boundary case is exactly on it
    sim_t = [0.5, 0.5, 0.5, 0.4, 0.2]
    sim_s = [0.625 - 2**-20, 0.625, 0.625 + 2**-20, 0.45, 0.3]
    # Sim_s / Sim_t:  just below alpha, equal, just above, 1.125 (< alpha), 1.5 (> alpha, while Sim_t / Sim_s < alpha)
    head_map = HeadMap(WanShape(1, 5, 8), [sim_s], [sim_t], alpha, [0.5], 1, 16)
    assert [head_map.kind(0, h) for h in range(5)] == [TEMPORAL, SPATIAL, SPATIAL, TEMPORAL, SPATIAL]
    assert head_map.heads(TEMPORAL) == {0: [0, 3]} and head_map.heads(SPATIAL) == {0: [1, 2, 4]}


def test_alpha_moves_exactly_the_heads_whose_ratio_it_passes():
    ratios = [0.5, 0.9, 1.1, 1.4, 2.0]  # Sim_s / Sim_t
    sim_t = [0.2, 0.4, 0.1, 0.5, 0.3]
    head_map = HeadMap(
        WanShape(1, 5, 8), [[r * t for r, t in zip(ratios, sim_t, strict=True)]], [sim_t], 1.3, [0.5], 1, 16
    )
    for alpha in (0.4, 0.7, 1.0, 1.3, 1.7, 2.5):
        moved = head_map.with_changes(alpha=alpha)
        assert moved.heads(TEMPORAL).get(0, []) == [h for h, r in enumerate(ratios) if r < alpha], alpha
    assert head_map.alpha == 1.3  # with_changes copies


def test_head_map_json_round_trip_and_overrides():
    shape = WanShape(2, 2, 128)
    head_map = HeadMap(shape, [[0.9, 0.1], [0.5, 0.2]], [[0.1, 0.9], [0.1, 0.9]], 1.3, [0.5], 1, 64)
    edited = head_map.with_changes(overrides="0.0=t\n1.1=spatial")
    assert edited.kind(0, 0) == TEMPORAL and edited.kind(1, 1) == SPATIAL and head_map.kind(0, 0) == SPATIAL
    loaded = HeadMap.from_json(edited.to_json())
    assert loaded == edited
    assert loaded.heads(TEMPORAL) == {0: [0, 1]}
    assert heat_map(loaded, cell=4).shape == (8, 8, 3)


@pytest.mark.parametrize("text", ["0.0", "0.0=x", "2.0=t", "0.5=s"])
def test_bad_overrides_are_rejected(text):
    with pytest.raises(ValueError, match="override"):
        parse_overrides(text, WanShape(2, 2, 128))


def test_head_map_from_another_model_is_rejected():
    head_map = HeadMap(WanShape(2, 2, 128), [[0.0] * 2] * 2, [[0.0] * 2] * 2, 1.3, [0.5], 1, 8)
    with pytest.raises(ValueError, match="Classify Heads"):
        head_map.check_shape(WanShape(30, 12, 128), "Spatial LoRA Train")


def test_one_sided_head_map_is_split_by_score():
    shape = WanShape(num_layers=2, num_heads=2, head_dim=8)
    ratios = [[0.5, 0.9], [0.7, 0.6]]  # Sim_s / Sim_t; all below alpha 1.3, so every head is temporal
    one_sided = HeadMap(shape, ratios, [[1.0, 1.0], [1.0, 1.0]], 1.3, [0.5], 1, 16)
    assert one_sided.count("spatial") == 0
    split, changed = split_if_one_sided(one_sided)
    assert changed
    assert split.heads("temporal") == {0: [0], 1: [1]}  # the two lowest ratios: 0.5 and 0.6
    assert split.heads("spatial") == {0: [1], 1: [0]}
    assert split_if_one_sided(split) == (split, False)


def test_as_overrides_pins_the_split_through_the_override_text():
    shape = WanShape(num_layers=2, num_heads=3, head_dim=8)
    scored = HeadMap(shape, [[2.0, 0.1, 2.0], [0.1, 2.0, 0.1]], [[1.0] * 3] * 2, 1.3, [0.5], 1, 16)
    text = scored.as_overrides()
    assert parse_overrides(text, shape) == {
        "0.0": "spatial", "0.1": "temporal", "0.2": "spatial", "1.0": "temporal", "1.1": "spatial", "1.2": "temporal",
    }  # fmt: skip
    flipped = scored.with_changes(alpha=100.0)  # every head temporal by score...
    assert flipped.with_changes(overrides=text).heads("spatial") == scored.heads("spatial")  # ...unless pinned
