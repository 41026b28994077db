"""MotionBench-mini's image-to-video pieces: the first-frame concat, the I2V model, the sampler with a Condition."""

import os

import pytest
import torch

from bench.motionbench import model as mb_model
from bench.motionbench import world
from bench.motionbench.sample import sample
from bench.motionbench_i2v import paired, t_quantile_975
from fym.diffusers_host import DiffusersWan
from fym.host import GIVEN_BY_CONCAT, Condition


def test_first_frame_concat_is_mask_then_image_at_frame_zero_only():
    x0 = torch.randn(2, 16, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    concat = world.first_frame_concat(x0)
    assert concat.shape == (2, 20, 5, 4, 6)
    assert torch.equal(concat[:, :4, 0], torch.ones(2, 4, 4, 6))  # mask: 1 where given (ComfyUI's 1 - concat_mask)
    assert torch.equal(concat[:, 4:, 0], x0[:, :, 0])  # then the given latent frame
    assert not concat[:, :, 1:].any()  # nothing at the frames to generate
    # the same as ComfyUI's WAN21.concat_cond from WanImageToVideo's inputs (mask 0 where given, 1 elsewhere)
    comfy_mask = torch.ones(2, 1, 5, 4, 6)
    comfy_mask[:, :, 0] = 0
    image = torch.zeros_like(x0)
    image[:, :, 0] = x0[:, :, 0]
    assert torch.equal(concat, torch.cat([(1 - comfy_mask).repeat(1, 4, 1, 1, 1), image], 1))


def test_i2v_condition_carries_the_concat():
    clip = world.render(world.random_clip(torch.Generator().manual_seed(1), "single"))
    condition = mb_model.i2v_condition(world.embed(["red", "ball"]), clip)
    assert condition.first_frame == GIVEN_BY_CONCAT and condition.text.shape == (1, world.CAPTION_LEN, world.TEXT_DIM)
    assert torch.equal(condition.per_frame["concat"], world.first_frame_concat(clip[None]))


def test_i2v_from_t2v_zero_inits_the_new_channels_and_starts_as_the_t2v_model():
    t2v = mb_model.build(seed=3)
    i2v = mb_model.i2v_from_t2v(t2v)
    assert i2v.config.in_channels == 36
    assert not i2v.patch_embedding.weight[:, 16:].any()
    x = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    context = world.embed(["blue", "box"])[None]
    with torch.no_grad():
        expected = DiffusersWan(t2v).velocity(x, torch.tensor([0.6]), context)
        got = DiffusersWan(i2v).velocity(
            x, torch.tensor([0.6]), mb_model.i2v_condition(context, torch.randn(16, 2, 4, 4))
        )
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.skipif(not os.path.exists(mb_model.I2V_WEIGHTS), reason="I2V weights not built")
def test_shipped_i2v_velocity_depends_on_the_given_first_frame():
    model = mb_model.load(mb_model.I2V_WEIGHTS)
    assert model.config.in_channels == 36 and model.patch_embedding.weight[:, 16:].abs().max() > 1e-3
    host = DiffusersWan(model)
    generator = torch.Generator().manual_seed(4)
    red, blue = (world.render(world.random_clip(torch.Generator().manual_seed(s), "single")) for s in (5, 6))
    x = torch.randn(1, 16, 3, 16, 16, generator=generator)
    sigma, context = torch.tensor([0.8]), world.embed(["red", "ball", "moves", "on", "meadow"])
    with torch.no_grad():
        a = host.velocity(x, sigma, mb_model.i2v_condition(context, red[:, :3]))
        b = host.velocity(x, sigma, mb_model.i2v_condition(context, blue[:, :3]))
        a_again = host.velocity(x, sigma, mb_model.i2v_condition(context, red[:, :3]))
    assert torch.equal(a, a_again)
    assert (a - b)[:, :, 0].abs().mean() > 0.1 * a[:, :, 0].abs().mean()  # frame 0 follows the given frame


class _Recorder:
    """A host whose velocity is zero and which records what it was conditioned on."""

    def __init__(self):
        self.calls = []

    def velocity(self, x_t, sigma, condition, frame_positions):
        self.calls.append((x_t.shape[0], Condition.of(condition)))
        return torch.zeros_like(x_t)


def test_sampler_takes_a_condition_and_cfg_keeps_the_image_with_the_empty_caption():
    clip = torch.randn(16, 3, 4, 4)
    condition = mb_model.i2v_condition(world.embed(["red", "ball"]), clip)
    host = _Recorder()
    sample(host, condition, seed=0, steps=2, cfg=3.0, frames=3, size=4)
    assert len(host.calls) == 2
    for batch, seen in host.calls:
        assert batch == 2 and seen.first_frame == GIVEN_BY_CONCAT
        assert torch.equal(seen.text[0], condition.text[0]) and not seen.text[1].any()  # cond, then empty
        assert torch.equal(seen.per_frame["concat"], condition.per_frame["concat"])  # the image in both branches


def test_paired_confidence_interval():
    assert t_quantile_975(23) == pytest.approx(2.069, abs=2e-3)
    assert t_quantile_975(5) == pytest.approx(2.571, abs=5e-3)
    assert t_quantile_975(3) == pytest.approx(3.182, abs=3e-2)
    result = paired([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    half = 3.182 * statistics_stdev([1.0, 2.0, 3.0, 4.0]) / 2
    assert result["mean"] == 2.5 and result["higher"] == 4
    assert result["ci95"] == pytest.approx([2.5 - half, 2.5 + half], abs=0.05)


def statistics_stdev(values):
    import statistics

    return statistics.stdev(values)
