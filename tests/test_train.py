import random
from dataclasses import replace

import pytest
import torch

from fym.config import SPATIAL, TEMPORAL, TrainConfig
from fym.heads import HeadMap
from fym.host import GIVEN_BY_CONCAT, GIVEN_CLEAN, Condition, WanShape
from fym.train import (
    NonFiniteLoss,
    _batch,
    adaptive_rope_positions,
    motion_loss,
    shifted_sigmas,
    sparse_frame_indices,
    train_stage,
    window_stride,
)


def split_map(shape):
    """Even heads spatial, odd heads temporal."""
    s = [[1.0 if h % 2 == 0 else 0.0 for h in range(shape.num_heads)] for _ in range(shape.num_layers)]
    return HeadMap(shape, s, [[0.5] * shape.num_heads] * shape.num_layers, 1.3, [0.5], 1, 64)


@pytest.mark.parametrize(
    "num_frames,stride,count,spacing",
    [
        (9, 2, 3, 2),
        (13, 3, 3, 3),
        (6, 1, 2, 1),
        (30, 5, 5, 5),
        (21, 5, 5, 4),
        (9, 2, 5, 1),
        (22, 5, 5, 4),
        (5, 3, 5, 1),
    ],
)
def test_a_stride_gives_a_window_that_moves_over_every_frame(num_frames, stride, count, spacing):
    """Code review 25.7: the stride is used as given where its window can reach every frame, and otherwise
    lowered to the widest that can (5 at stride 5 in Wan's 21 latent frames: 4), never a fixed window."""
    assert window_stride(num_frames, stride, count) == spacing
    rng = random.Random(0)
    starts, seen = set(), set()
    for _ in range(400):
        indices = sparse_frame_indices(num_frames, stride, count, rng)
        assert len(indices) == count and all(isinstance(i, int) for i in indices)
        assert all(b - a == spacing for a, b in zip(indices[:-1], indices[1:], strict=True))
        assert 0 <= min(indices) and max(indices) <= num_frames - 1
        starts.add(indices[0])
        seen.update(indices)
    assert starts == set(range(num_frames - (count - 1) * spacing))  # every start, never past the clip
    assert seen == set(range(num_frames))


@pytest.mark.parametrize("num_frames,count", [(21, 5), (9, 5), (9, 4), (22, 5), (5, 5)])
def test_stride_0_spreads_one_frame_per_segment_and_every_frame_is_drawn(num_frames, count):
    """Stride 0 (the default): one frame from each of `count` equal parts: increasing, inside its part, every
    frame drawn over the steps, and the spacing varies (not a window)."""
    rng = random.Random(0)
    bounds = [num_frames * i // count for i in range(count + 1)]
    seen, spacings = set(), set()
    for _ in range(400):
        indices = sparse_frame_indices(num_frames, 0, count, rng)
        assert len(indices) == count
        assert all(low <= i < high for i, low, high in zip(indices, bounds[:-1], bounds[1:], strict=True))
        seen.update(indices)
        spacings.update(b - a for a, b in zip(indices[:-1], indices[1:], strict=True))
    assert seen == set(range(num_frames))
    assert len(spacings) > 1 or num_frames == count


def test_more_frames_than_the_clip_has_is_refused_with_what_to_change():
    with pytest.raises(ValueError, match=r"frame_count 6 is more than the clip's 5 latent frames") as error:
        sparse_frame_indices(5, 1, 6, random.Random(0))
    assert "(21 video frames)" in str(error.value)  # 4 * (6 - 1) + 1


@pytest.mark.parametrize("indices", [[0, 5, 10, 15], [2, 4, 6], [3, 6, 9, 12, 15], [7]])
def test_adaptive_rope_positions_are_the_full_clip_indices(indices):
    positions = adaptive_rope_positions(indices)
    assert positions == tuple(float(i) for i in indices) and all(isinstance(p, float) for p in positions)


@pytest.mark.parametrize("stride,count", [(2, 3), (1, 4), (3, 3), (0, 4)])
def test_temporal_batches_carry_each_sampled_frames_full_clip_position(stride, count):
    """Frame t of the clip holds the value t, so each sampled frame shows which clip frame it came from; its RoPE
    position must be that index (not eq. 2's i * F / F_samp, which differs whenever stride != F / F_samp)."""
    frames = 9
    clip = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(1, 16, frames, 2, 2)
    config = replace(TEMPORAL, frame_stride=stride, frame_count=count)
    generator = random.Random(0)
    firsts = set()
    for _ in range(40):
        x0, _, positions = _batch("temporal", clip, Condition(torch.zeros(1, 4, 8)), config, generator)
        assert x0.shape == (1, 16, count, 2, 2)
        shown = x0[0, 0, :, 0, 0]
        assert positions is not None and list(positions) == shown.tolist()
        assert (shown.diff() == stride).all() or stride == 0
        firsts.add(int(shown[0]))
    assert len(firsts) > 1  # the window moves
    text_only = Condition(torch.zeros(1, 4, 8))
    x0, _, positions = _batch("temporal", clip, text_only, replace(config, adaptive_rope=False), generator)
    assert positions is None and x0.shape[2] == count  # stock 0..T-1 positions
    x0, _, positions = _batch("temporal", clip, text_only, replace(config, sparse_sampling=False), generator)
    assert positions is None and torch.equal(x0, clip)


@pytest.mark.parametrize("first_frame", [GIVEN_BY_CONCAT, GIVEN_CLEAN])
def test_image_conditioned_samples_always_show_the_given_first_frame_and_its_condition(first_frame):
    """At inference the user's image is frame 0, so every sparse sample of an image-to-video clip holds latent
    frame 0 at position 0, and the per-frame condition is cut with the same frames; spatial single frames are
    frames to generate (the clip's last frame's condition, no first frame given)."""
    frames = 9
    clip = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(1, 16, frames, 2, 2)
    image = torch.arange(frames, dtype=torch.float32).view(1, 1, frames, 1, 1).expand(1, 20, frames, 2, 2) + 100
    condition = Condition(torch.zeros(1, 4, 8), per_frame={"concat": image}, first_frame=first_frame)
    config = replace(TEMPORAL, frame_stride=2, frame_count=3)
    generator = random.Random(0)
    starts = set()
    for _ in range(40):
        x0, cut, positions = _batch("temporal", clip, condition, config, generator)
        shown = x0[0, 0, :, 0, 0]
        assert shown[0] == 0 and list(positions) == shown.tolist()
        assert cut.per_frame["concat"][0, 0, :, 0, 0].tolist() == (shown + 100).tolist()
        assert cut.first_frame == first_frame
        starts.add(int(shown[1]))
    assert len(starts) > 1 and x0.shape[2] in (3, 4)
    frame, cut, _ = _batch("spatial", clip[0].transpose(0, 1)[:, :, None], condition, config, generator)
    assert cut.first_frame is None and cut.per_frame["concat"][0, 0, :, 0, 0].tolist() == [108.0]


def test_noise_range_keeps_every_sigma_inside_and_the_whole_range_is_unchanged():
    """An A14B expert trains only at its own noise levels; the default range draws exactly the old levels."""
    generator = torch.Generator().manual_seed(0)
    high = shifted_sigmas(2000, 8.0, generator, (0.875, 1.0))
    low = shifted_sigmas(2000, 8.0, generator, (0.0, 0.875))
    assert high.min() >= 0.875 and high.max() <= 1.0 and low.max() <= 0.875 and low.min() >= 0.0
    assert high.std() > 0.02 and low.std() > 0.1
    whole = shifted_sigmas(100, 8.0, torch.Generator().manual_seed(1))
    u = torch.rand(100, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(whole, 8 * u / (1 + 7 * u))


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


def untouched(host, clip, context) -> torch.Tensor:
    """The host's velocity on a fixed input: equal before and after a run that leaves the model as it was."""
    with torch.no_grad():
        return host.velocity(clip, torch.tensor([0.7]), context)


def test_non_finite_loss_stops_training(host, clip, context):
    before = untouched(host, clip, context)
    bad = clip.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    frames = bad[0].transpose(0, 1).unsqueeze(2)[:1]
    with pytest.raises(NonFiniteLoss, match="nothing was saved"):
        train_stage(host, "spatial", frames, context, split_map(host.shape), replace(SPATIAL, steps=5, log_every=2))
    assert host.attached_keys() == []  # the adapters are gone
    assert torch.equal(untouched(host, clip, context), before)


def test_bad_inputs_fail_before_training(host, clip, context):
    head_map = split_map(host.shape)
    calls = []
    with pytest.raises(ValueError, match="single-frame latents"):
        train_stage(host, "spatial", clip, context, head_map, SPATIAL, on_step=calls.append)
    with pytest.raises(ValueError, match="frame_count 8 is more than the clip's 7 latent frames"):
        train_stage(host, "temporal", clip, context, head_map, replace(TEMPORAL, frame_count=8), on_step=calls.append)
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
    before = untouched(host, clip, context)

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
    assert host.attached_keys() == []
    assert torch.equal(untouched(host, clip, context), before)


def test_a_clean_first_frame_enters_clean_and_stays_out_of_the_loss(host, clip, context):
    """Wan 2.2 TI2V's scheme: frame 0 is given clean in every sample (x_t's frame 0 = the clip's), and whatever
    the model predicts there never reaches the loss."""
    seen = []

    class Recording:
        shape = host.shape
        attach, detach, checkpointing = host.attach, host.detach, host.checkpointing

        def velocity(self, x_t, sigma, condition, frame_positions=None):
            seen.append((x_t.detach().clone(), condition.first_frame, frame_positions))
            v = host.velocity(x_t, sigma, condition.text, frame_positions)
            return torch.cat([v[:, :, :1] + 1e6, v[:, :, 1:]], dim=2)  # a wild frame 0 the loss must not see

    condition = Condition(context, first_frame=GIVEN_CLEAN)
    config = replace(TEMPORAL, steps=6, rank=4, alpha=4.0, frame_stride=2, frame_count=2, log_every=3)
    result = train_stage(Recording(), "temporal", clip, condition, split_map(host.shape), config)
    assert max(result.losses) < 100
    for x_t, first_frame, positions in seen:
        assert first_frame == GIVEN_CLEAN and positions[0] == 0
        torch.testing.assert_close(x_t[:, :, 0], clip[:, :, 0])
        assert (x_t[:, :, 1:] - clip[:, :, [int(p) for p in positions[1:]]]).abs().max() > 0.01  # the others are noised
    assert len({tuple(p) for _, _, p in seen}) > 1


def test_several_clips_are_drawn_evenly_each_with_its_own_caption(host, context):
    """Several clips of one motion (other looks, lengths and sizes): each step trains on one clip drawn at random,
    its frames with its own caption; one clip in a list trains exactly as the clip alone."""
    from conftest import synthetic_clip

    clips = [synthetic_clip(frames=7, size=8, seed=0), synthetic_clip(frames=9, size=12, seed=1)]
    captions = [context, -context]
    seen = []
    velocity = host.velocity

    def recording(x_t, sigma, condition, positions=None):
        seen.append((x_t.shape[-1], float(condition.text.flatten()[0].sign()), max(positions)))
        return velocity(x_t, sigma, condition, positions)

    host.velocity = recording
    config = replace(TEMPORAL, steps=60, rank=4, alpha=4.0, frame_stride=2, frame_count=3)
    result = train_stage(host, "temporal", clips, captions, split_map(host.shape), config)
    assert result.lora.metadata["clips"] == 2
    sign = float(context.flatten()[0].sign())
    assert {(8, sign), (12, -sign)} == {(size, text) for size, text, _ in seen}  # each clip with its caption
    assert 20 <= sum(size == 12 for size, _, _ in seen) <= 40
    assert max(position for size, _, position in seen if size == 12) > 6  # the 9-frame clip's own positions
    host.velocity = velocity
    alone = train_stage(host, "temporal", clips[0], context, split_map(host.shape), replace(config, steps=4))
    listed = train_stage(host, "temporal", clips[:1], [context], split_map(host.shape), replace(config, steps=4))
    for key, value in alone.lora.state_dict.items():
        assert torch.equal(value, listed.lora.state_dict[key]), key


def test_the_rope_table_cache_stays_small_over_a_run(host, context):
    """Code review 25.2: spread frames draw a new set of positions most steps (21 latent frames: 1280 sets), so
    a cache by set grew all run; only the last few are kept."""
    from conftest import synthetic_clip

    clip = synthetic_clip(frames=21, size=4, seed=0)
    config = replace(TEMPORAL, steps=30, rank=4, alpha=4.0, learning_rate=1e-3, log_every=30)
    drawn = set()
    velocity = host.velocity
    host.velocity = lambda x_t, sigma, condition, positions=None: (
        drawn.add(positions),
        velocity(x_t, sigma, condition, positions),
    )[1]
    train_stage(host, "temporal", clip, context, split_map(host.shape), config)
    assert len(drawn) > 20  # many sets were drawn...
    assert 1 <= len(host._rope_tables) <= host._rope_tables.keep  # ...and few are kept
