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


def test_classify_heads_scores_every_layer_and_head(host, clip, context):
    head_map = classify_heads(host, clip, context, ClassifyConfig(num_queries=32))
    assert len(head_map.sim_spatial) == 2 and all(len(row) == 4 for row in head_map.sim_spatial)
    assert all(0 < v <= 1 for row in head_map.sim_spatial + head_map.sim_temporal for v in row)
    assert head_map.count(SPATIAL) + head_map.count(TEMPORAL) == 8
    again = classify_heads(host, clip, context, ClassifyConfig(num_queries=32))
    assert again.sim_spatial == head_map.sim_spatial  # seeded


def test_alpha_moves_heads_to_temporal(host, clip, context):
    head_map = classify_heads(host, clip, context, ClassifyConfig(num_queries=32))
    assert head_map.with_changes(alpha=1e-6).count(TEMPORAL) == 0
    assert head_map.with_changes(alpha=1e6).count(SPATIAL) == 0


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
