from dataclasses import replace

import pytest
import torch

from fym.config import SPATIAL, TEMPORAL, TrainConfig
from fym.heads import HeadMap
from fym.host import WanShape
from fym.train import NonFiniteLoss, adaptive_rope_positions, motion_loss, sparse_frame_indices, train_stage


def split_map(shape):
    """Even heads spatial, odd heads temporal."""
    s = [[1.0 if h % 2 == 0 else 0.0 for h in range(shape.num_heads)] for _ in range(shape.num_layers)]
    return HeadMap(shape, s, [[0.5] * shape.num_heads] * shape.num_layers, 1.3, [0.5], 1, 64)


def test_sparse_frame_indices():
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        indices = sparse_frame_indices(21, 5, 5, generator)
        assert indices.tolist() == [0, 5, 10, 15, 20]  # the paper's 17-of-81 case has one window
        indices = sparse_frame_indices(9, 2, 3, generator)
        assert (indices.diff() == 2).all() and indices.min() >= 0 and indices.max() <= 8
        seen.add(int(indices[0]))
    assert seen == {0, 1, 2, 3, 4}  # every start is drawn
    with pytest.raises(ValueError, match="lower frame_count or frame_stride"):
        sparse_frame_indices(9, 5, 5, generator)


def test_adaptive_rope_positions_are_full_clip_indices_and_match_eq2():
    indices = torch.tensor([0, 5, 10, 15])
    positions = adaptive_rope_positions(indices)
    assert positions.dtype == torch.float32 and positions.tolist() == [0, 5, 10, 15]
    full, sampled = 20, 4  # eq. 2 with F = 20, F_samp = 4: F/2 + F/F_samp (i - F_samp/2)
    eq2 = [full / 2 + full / sampled * (i - sampled / 2) for i in range(sampled)]
    assert positions.tolist() == eq2


def test_stock_positions_reproduce_the_stock_forward(host, clip, context):
    sigma = torch.tensor([0.4])
    stock = host.velocity(clip, sigma, context)
    same = host.velocity(clip, sigma, context, torch.arange(7.0))
    torch.testing.assert_close(same, stock, rtol=1e-5, atol=1e-5)
    spread = host.velocity(clip, sigma, context, torch.arange(7.0) * 5)
    assert (spread - stock).abs().max() > 1e-4


def test_motion_loss_properties():
    torch.manual_seed(0)
    target = torch.randn(1, 16, 5, 4, 4)
    assert motion_loss(target, target).item() == pytest.approx(0, abs=1e-6)
    assert motion_loss(-target, target).item() == pytest.approx(2, abs=1e-5)
    assert motion_loss(target * 3, target).item() == pytest.approx(0, abs=1e-5)  # scale-free
    appearance = torch.randn(1, 16, 1, 4, 4)
    assert motion_loss(target + appearance, target).item() == pytest.approx(0, abs=1e-5)  # ignores static content
    frozen = target[:, :, :1].expand_as(target) + 0.01 * torch.randn_like(target)
    assert motion_loss(frozen, target) > 0.5


def fixed_eval_loss(host, video, context):
    generator = torch.Generator().manual_seed(123)
    losses = []
    with torch.no_grad():
        for sigma in (0.3, 0.6, 0.9):
            noise = torch.randn(video.shape, generator=generator)
            x_t = sigma * noise + (1 - sigma) * video
            losses.append(
                torch.nn.functional.mse_loss(host.velocity(x_t, torch.tensor([sigma]), context), noise - video)
            )
    return float(sum(losses) / len(losses))


def test_two_stage_training_lowers_the_loss_on_a_fixed_clip(host, clip, context):
    head_map = split_map(host.shape)
    frames = clip[0].transpose(0, 1).unsqueeze(2)
    start = fixed_eval_loss(host, clip, context)
    fast = dict(rank=8, alpha=8.0, learning_rate=3e-3, log_every=10)
    train_stage(host, "spatial", frames, context, head_map, replace(SPATIAL, steps=40, **fast), keep_attached=True)
    after_spatial = fixed_eval_loss(host, clip, context)
    temporal = replace(TEMPORAL, steps=40, frame_stride=2, frame_count=3, **fast)
    result = train_stage(host, "temporal", clip, context, head_map, temporal, keep_attached=True)
    after_temporal = fixed_eval_loss(host, clip, context)
    assert after_spatial < start and after_temporal < after_spatial
    assert len(result.losses) == 40 and result.lora.metadata["frame_sampling"]["adaptive_rope"] is True
    assert result.lora.metadata["heads"] == {"0": [1, 3], "1": [1, 3]}


def test_non_finite_loss_stops_training(host, clip, context):
    bad = clip.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    frames = bad[0].transpose(0, 1).unsqueeze(2)[:1]
    with pytest.raises(NonFiniteLoss, match="nothing was saved"):
        train_stage(host, "spatial", frames, context, split_map(host.shape), replace(SPATIAL, steps=5, log_every=2))
    assert not any("parametrizations" in name for name, _ in host.model.named_parameters())


def test_bad_inputs_fail_before_training(host, clip, context):
    head_map = split_map(host.shape)
    calls = []
    with pytest.raises(ValueError, match="single-frame latents"):
        train_stage(host, "spatial", clip, context, head_map, SPATIAL, on_step=calls.append)
    with pytest.raises(ValueError, match="span 21 latent frames but the clip has 7"):
        train_stage(host, "temporal", clip, context, head_map, TEMPORAL, on_step=calls.append)
    with pytest.raises(ValueError, match="no temporal heads"):
        all_spatial = head_map.with_changes(overrides="0.1=s, 0.3=s, 1.1=s, 1.3=s")
        train_stage(host, "temporal", clip, context, all_spatial, TEMPORAL, on_step=calls.append)
    other = HeadMap(WanShape(3, 4, 32), [[1.0] * 4] * 3, [[0.5] * 4] * 3, 1.3, [0.5], 1, 64)
    with pytest.raises(ValueError, match="Classify Heads"):
        train_stage(host, "spatial", clip[:, :, :1], context, other, SPATIAL, on_step=calls.append)
    assert calls == []


@pytest.mark.parametrize("field,value", [("steps", 0), ("rank", 0), ("frame_count", 1), ("learning_rate", 0.0)])
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        replace(TrainConfig(steps=1, weight_decay=0.0), **{field: value})


def test_cancel_from_on_step_leaves_the_model_clean(host, clip, context):
    def cancel(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(
            host,
            "temporal",
            clip,
            context,
            split_map(host.shape),
            replace(TEMPORAL, steps=10, frame_stride=1, frame_count=3),
            on_step=cancel,
        )
    assert not any("parametrizations" in name for name, _ in host.model.named_parameters())
