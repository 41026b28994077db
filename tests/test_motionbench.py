"""MotionBench-mini's own code: the latent world, the tracker and metrics, the ComfyUI key converter, the sampler."""

import itertools
import math

import pytest
import torch

from bench.motionbench import metrics, world
from bench.motionbench.model import CONFIG, comfy_key, to_comfy_state_dict
from bench.motionbench.sample import merged, sample, sigma_grid
from fym.diffusers_host import DiffusersWan, tiny_wan
from fym.host import PROJECTIONS
from fym.lora import export, make_adapters

ENTRIES = world.reference_clips()


def test_basis_is_orthonormal_and_colours_are_separable():
    e = world.basis()
    assert torch.allclose(e @ e.T, torch.eye(16), atol=1e-5)
    for color in world.COLORS:  # an object's signature has no energy in any scene direction
        assert torch.allclose(e[8:] @ world.color_signature(color), torch.zeros(8), atol=1e-5)


def test_render_is_deterministic_and_shaped():
    clip = world.random_clip(torch.Generator().manual_seed(3), "nonrigid")
    video = world.render(clip)
    assert video.shape == (16, world.FRAMES, world.SIZE, world.SIZE)
    assert torch.equal(video, world.render(world.random_clip(torch.Generator().manual_seed(3), "nonrigid")))
    latents, captions = world.training_batch(torch.Generator().manual_seed(0), 2, frames=5)
    assert latents.shape == (2, 16, 5, 16, 16) and captions.shape == (2, world.CAPTION_LEN, world.TEXT_DIM)


@pytest.mark.parametrize("sharp", [True, False])
def test_waypoint_paths_pass_through_every_waypoint(sharp):
    points = torch.tensor([[3.0, 4.0], [10.0, 5.0], [6.0, 12.0], [12.0, 11.0]])
    path = world._waypoint_path(points, torch.linspace(0, 3, 13), sharp)  # 4 samples per segment
    assert torch.allclose(path[::4], points, atol=1e-5)
    midpoint = path[2]  # half-way along the first segment
    straight = torch.allclose(midpoint, points[:2].mean(0), atol=1e-5)
    assert straight == sharp  # polyline: on the chord; spline: bent by the next waypoint


def test_captions_are_fixed_word_sums_with_zero_padding():
    words = ["red", "ball", "moves", "on", "meadow"]
    context = world.embed(words)
    assert context.shape == (world.CAPTION_LEN, world.TEXT_DIM)
    assert torch.equal(context, world.embed(words))
    assert context[len(words) :].abs().sum() == 0
    assert not torch.allclose(world.embed(["red", "ball"])[0], world.embed(["ball", "red"])[1])  # order matters


def test_benchmark_covers_four_categories_with_new_looks():
    assert sorted({clip.category for _, clip, _ in ENTRIES}) == sorted(world.CATEGORIES)
    for _, clip, targets in ENTRIES:
        assert len(targets) == len(clip.appearances)
        assert not {c for c, _ in targets} & {c for c, _ in clip.appearances}  # every colour changes
        tracks = world.screen_tracks(clip)
        assert tracks.min() > 0 and tracks.max() < world.SIZE  # everything stays in view


@pytest.mark.parametrize("name,clip,targets", ENTRIES, ids=[e[0] for e in ENTRIES])
def test_tracker_recovers_true_tracks(name, clip, targets):
    truth = world.screen_tracks(clip)
    tracked = metrics.track(world.render(clip), len(clip.appearances), clip.worm is not None)
    assert tracked["found"].all()
    count = len(clip.appearances)
    errors = min(  # centroids, whatever order the tracker found the objects in
        float((tracked["centroids"][list(p)] - truth[:count]).norm(dim=-1).max())
        for p in itertools.permutations(range(count))
    )
    assert errors < 0.35
    if clip.worm is not None:  # body ends: approximate (capsule caps), but close
        assert (tracked["tracks"][1:] - truth[1:]).norm(dim=-1).mean() < 1.2


def test_metrics_reward_the_ideal_transfer_and_catch_leakage_and_wrong_motion():
    _, clip, targets = ENTRIES[0]
    ideal = metrics.evaluate(world.render(clip.with_appearances(targets)), clip, targets)
    assert ideal["motion_fidelity"] > 0.98 and ideal["track_error"] < 0.2
    assert ideal["appearance"] > 0.99 and ideal["leakage"] < 0.01 and ideal["found"] == 1.0
    leaked = metrics.evaluate(world.render(clip), clip, targets)  # the reference's own look
    assert leaked["appearance"] < 0.01 and leaked["leakage"] > 0.99
    backwards = world.Clip(clip.category, clip.scene, targets, clip.positions.flip(1), clip.camera)
    reversed_motion = metrics.evaluate(world.render(backwards), clip, targets)
    assert reversed_motion["motion_fidelity"] < -0.5 and reversed_motion["track_error"] > 2


def test_motion_fidelity_is_yatims_symmetric_best_match():
    t = torch.linspace(0, 1, 5)
    right = torch.stack([t, 0 * t], -1)[None]
    up = torch.stack([0 * t, t], -1)[None]
    assert metrics.motion_fidelity(right, right) == pytest.approx(1.0)
    assert metrics.motion_fidelity(right, up) == pytest.approx(0.0, abs=1e-6)
    # one matching tracklet out of two generated: 1/2 (mean(1, 0) + 1)
    assert metrics.motion_fidelity(right, torch.cat([right, up])) == pytest.approx(0.75)


def test_comfy_keys_follow_comfyui_wan_names():
    assert comfy_key("condition_embedder.text_embedder.linear_1.weight") == "text_embedding.0.weight"
    assert comfy_key("condition_embedder.time_embedder.linear_2.bias") == "time_embedding.2.bias"
    assert comfy_key("condition_embedder.time_proj.weight") == "time_projection.1.weight"
    assert comfy_key("blocks.3.attn1.to_out.0.weight") == "blocks.3.self_attn.o.weight"
    assert comfy_key("blocks.0.attn2.norm_k.weight") == "blocks.0.cross_attn.norm_k.weight"
    assert comfy_key("blocks.1.norm2.bias") == "blocks.1.norm3.bias"
    assert comfy_key("blocks.2.ffn.net.0.proj.weight") == "blocks.2.ffn.0.weight"
    assert comfy_key("blocks.2.ffn.net.2.weight") == "blocks.2.ffn.2.weight"
    assert comfy_key("blocks.2.scale_shift_table") == "blocks.2.modulation"
    assert comfy_key("scale_shift_table") == "head.modulation"
    assert comfy_key("proj_out.bias") == "head.head.bias"


def test_converter_covers_a_whole_wan_model():
    model = tiny_wan(num_layers=2, num_heads=2, head_dim=32, ffn_dim=64, text_dim=64)
    state = to_comfy_state_dict(model)
    assert len(state) == len(model.state_dict())
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"patch_embedding", "text_embedding", "time_embedding", "time_projection", "blocks", "head"}
    block = {k[len("blocks.0.") :] for k in state if k.startswith("blocks.0.")}
    expected = {f"{a}.{p}.{w}" for a in ("self_attn", "cross_attn") for p in "qkvo" for w in ("weight", "bias")}
    expected |= {f"{a}.norm_{p}.weight" for a in ("self_attn", "cross_attn") for p in "qk"}
    expected |= {"norm3.weight", "norm3.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias", "modulation"}
    assert block == expected
    assert state["head.head.weight"].shape[0] // 4 == 16  # ComfyUI's out_dim detection


def test_model_config_is_detectable_by_comfyui():
    assert CONFIG["attention_head_dim"] == 128 and CONFIG["num_attention_heads"] >= 4 and CONFIG["num_layers"] >= 4
    assert CONFIG["text_dim"] == 4096 and CONFIG["freq_dim"] == 256 and CONFIG["patch_size"] == (1, 2, 2)


def test_sampler_and_lora_merge_restore_the_model():
    host = DiffusersWan(tiny_wan(num_layers=2, num_heads=4, head_dim=32, text_dim=64))
    grid = sigma_grid(4)
    assert grid[0] == 1 and grid[-1] == 0 and (grid[1:] < grid[:-1]).all()
    adapters = make_adapters(host.shape, {0: [1], 1: [0, 3]}, rank=4, alpha=4.0)
    for adapter in adapters.values():
        torch.nn.init.normal_(adapter.lora_up)
    lora = export(adapters, host.shape)
    before = {(i, p): host.linear(i, p).weight.clone() for i in range(2) for p in PROJECTIONS}
    context = torch.randn(1, 4, 64)
    plain = sample(host, context, seed=0, steps=2, frames=3, size=8)
    with merged(host, [(lora, 0.5)]):
        changed = host.linear(1, "q").weight.clone()
        patched = sample(host, context, seed=0, steps=2, frames=3, size=8)
    assert not torch.equal(changed, before[(1, "q")])
    assert all(torch.equal(host.linear(i, p).weight, w) for (i, p), w in before.items())
    assert plain.shape == (1, 16, 3, 8, 8) and not torch.allclose(plain, patched)
    assert math.isfinite(float(sample(host, context, seed=0, steps=2, cfg=3.0, frames=3, size=8).sum()))


LEAK_ENTRIES = world.reference_clips(patterns=True)


@pytest.mark.parametrize("name,clip,targets", LEAK_ENTRIES, ids=[e[0] for e in LEAK_ENTRIES])
def test_the_leak_world_paints_an_unnamed_colour_that_leakage_sees_and_tracking_ignores(name, clip, targets):
    """A patterned reference object shows a colour its caption never names; the target never uses it; the
    tracker follows the object as before; the target's ideal transfer leaks nothing, a target painted with the
    pattern leaks it (about cos 45 degrees for half the object in the pattern's colour)."""
    named = [color for color, _ in clip.appearances]
    assert len(clip.patterns) == len(named) and not set(clip.patterns) & (set(named) | {c for c, _ in targets})
    assert not set(clip.patterns) & set(world.caption_words(clip))
    truth = world.screen_tracks(clip)
    tracked = metrics.track(world.render(clip), len(named), clip.worm is not None)
    assert tracked["found"].all()
    errors = min(
        float((tracked["centroids"][list(p)] - truth[: len(named)]).norm(dim=-1).max())
        for p in itertools.permutations(range(len(named)))
    )
    assert errors < 0.6  # the two-colour object's centroid stays on it
    ideal = metrics.evaluate(world.render(clip.with_appearances(targets)), clip, targets)
    assert ideal["leakage"] < 0.01 and ideal["appearance"] > 0.99
    carried = metrics.evaluate(world.render(clip.with_appearances(targets, clip.patterns)), clip, targets)
    assert 0.6 < carried["leakage"] < 0.8 and 0.6 < carried["appearance"] < 0.8


def test_other_looks_keep_the_motion_and_never_show_a_target_colour():
    for _, clip, targets in LEAK_ENTRIES:
        target_colors = {c for c, _ in targets}
        for look in world.other_looks(clip, targets, 2):
            assert torch.equal(world.screen_tracks(look), world.screen_tracks(clip))
            assert not set(look.colors) & target_colors
            assert [c for c, _ in look.appearances] != [c for c, _ in clip.appearances]


def test_paired_differences_use_the_t_interval_of_the_per_run_differences():
    from bench.motionbench_mini import paired

    def run(a, b):
        return {"result": {"x": {"1.0": {"m": a}}, "y": {"1.0": {"m": b}}}}

    runs = [run(0.5, 0.1), run(0.4, 0.3), run(0.9, 0.2), run(0.2, 0.3)]  # differences 0.4, 0.1, 0.7, -0.1
    result = paired(runs, "x", "y", 1.0, "m")
    differences = torch.tensor([0.4, 0.1, 0.7, -0.1], dtype=torch.float64)
    half = 3.182 * float(differences.std()) / 2  # t(0.975, 3 degrees of freedom) * s / sqrt(4)
    assert math.isclose(result["mean"], 0.275) and result["a_higher"] == 3 and result["n"] == 4
    assert math.isclose(result["high"] - result["mean"], half, rel_tol=1e-9)
    assert math.isclose(result["mean"] - result["low"], half, rel_tol=1e-9)
