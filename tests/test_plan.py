"""fym.plan against memory measured on this CPU: the same step run on real tensors, its peak taken from the
allocator's own events (torch.profiler's memory profile), not from the planner's counting."""

import json
import os
from dataclasses import replace

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from fym.config import latent_frames, video_frames
from fym.plan import (
    GIB,
    H100_TFLOP_PER_S,
    Architecture,
    Setting,
    blocks_that_fit,
    cheapest_fit,
    describe,
    main,
    plan,
    prepared_step,
    trace,
)

pytest.importorskip("diffusers")

TINY = Architecture(dim=256, ffn_dim=512, num_layers=3)  # 2 heads of 128, as Wan's
TINY_I2V = replace(TINY, in_channels=36)
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "results")


def allocator_peak(setting: Setting) -> int:
    """Peak bytes the CPU allocator held above its start while the step of `setting` ran on real tensors."""
    with prepared_step(setting, fake=False) as (step, _, _):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            step()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize(
    "stage, checkpointing, weights, on_card, model",
    [
        ("spatial", False, "bf16", None, TINY),
        ("spatial", True, "bf16", None, TINY),
        ("temporal", False, "bf16", None, TINY),
        ("temporal", True, "bf16", None, TINY),
        ("temporal", False, "fp8_scaled", None, TINY),
        ("temporal", False, "bf16", 1, TINY),
        ("temporal", True, "fp8", 1, TINY_I2V),
        ("classify", False, "bf16", None, TINY),
    ],
)
def test_plan_matches_the_cpu_allocator(stage, checkpointing, weights, on_card, model):
    setting = Setting(model, 128, 128, 17, stage=stage, rank=16, weight_dtype=weights, sparse_sampling=False,
                      gradient_checkpointing=checkpointing, blocks_on_card=on_card)  # fmt: skip
    planned, measured = plan(setting).activations, allocator_peak(setting)
    assert 0.95 <= planned / measured <= 1.05, (planned, measured)


def test_fp8_halves_weights_but_keeps_copies_without_checkpointing():
    """As ComfyUI casts fp8 weights per call: 1-byte resident weights, a compute-dtype copy kept for backward."""
    base = Setting(TINY, 128, 128, 17, rank=16, sparse_sampling=False)
    bf16, fp8 = plan(base), plan(replace(base, weight_dtype="fp8"))
    block_linears = 3 * (8 * 256 * 256 + 2 * 256 * 512)  # self- and cross-attention q, k, v, o; the FFN
    assert bf16.weights - fp8.weights == block_linears  # 2 bytes -> 1
    assert fp8.peak > bf16.peak  # without checkpointing the kept copies outweigh the saving
    ckpt, ckpt_fp8 = (plan(replace(s, gradient_checkpointing=True)) for s in (base, replace(base, weight_dtype="fp8")))
    assert ckpt_fp8.peak < ckpt.peak < bf16.peak


def test_extrapolated_plan_equals_the_whole_trace():
    """plan traces 2 and 3 blocks and extrapolates: exact, with blocks on and off the card."""
    six = replace(TINY, num_layers=6)
    for setting in [
        Setting(six, 96, 96, 17, rank=16, sparse_sampling=False),
        Setting(six, 96, 96, 17, rank=16, gradient_checkpointing=True, blocks_on_card=4, weight_dtype="fp8"),
        Setting(six, 96, 96, 17, rank=16, blocks_on_card=0),
        Setting(six, 96, 96, 17, stage="classify", blocks_on_card=1),
    ]:
        planned, traced = plan(setting), trace(setting)
        for name in ("weights", "lora", "optimizer", "activations", "flops"):
            assert getattr(planned, name) == pytest.approx(getattr(traced, name), rel=1e-9), (setting, name)


def test_weights_are_the_models_parameters():
    """Closed-form check: Wan 2.1 1.3B in bf16 holds 2 bytes per parameter (diffusers' count: 1.42 B)."""
    weights = plan(Setting("wan2.1-1.3b", 64, 64, 5, stage="spatial")).weights
    assert 1.40e9 * 2 < weights < 1.44e9 * 2


def test_cheapest_fit_names_the_first_change_that_fits():
    base = Setting(TINY, 128, 128, 17, rank=16, sparse_sampling=False)
    full, ckpt = plan(base).peak, plan(replace(base, gradient_checkpointing=True)).peak
    assert cheapest_fit(base, full) == base or plan(cheapest_fit(base, full)).peak <= full
    between = cheapest_fit(base, (full + ckpt) // 2)
    assert between == replace(base, gradient_checkpointing=True)
    assert describe(base, between) == "turn on gradient_checkpointing"
    assert cheapest_fit(base, 1000) is None


def test_blocks_that_fit_is_the_most_that_fit():
    setting = Setting(replace(TINY, num_layers=8), 64, 64, 17, rank=16, gradient_checkpointing=True)
    none_on_card = plan(replace(setting, blocks_on_card=0)).peak
    card = none_on_card + 3.5 * (plan(setting).peak - none_on_card) / 8
    blocks = blocks_that_fit(setting, int(card))
    assert blocks == 3
    assert plan(replace(setting, blocks_on_card=blocks)).peak <= card < plan(replace(setting, blocks_on_card=4)).peak
    assert blocks_that_fit(setting, int(none_on_card) - 1) is None


def test_the_check_file_is_within_bounds_and_sets_the_time_rate():
    """Issue 22's bar on bench/results/memory_plan_check.json, and H100_TFLOP_PER_S is what it measured."""
    with open(os.path.join(RESULTS, "memory_plan_check.json")) as handle:
        check = json.load(handle)
    assert check["rows"] and all(0.85 <= row["ratio"] <= 1.15 for row in check["rows"])
    long_steps = [row["achieved_tflop_per_s"] for row in check["rows"] if row["setting"]["frames"] == 81]
    assert min(long_steps) * 0.98 <= H100_TFLOP_PER_S <= max(long_steps)


def test_cli_prints_every_stage(capsys):
    main(["--model", "wan2.1-1.3b", "--size", "64x64x17", "--card", "80"])
    out = capsys.readouterr().out
    assert [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "GiB" not in line
            and "stage" not in line] == ["classify", "spatial", "temporal"]  # fmt: skip
    assert out.count("| fits |") == 3


def test_latent_and_video_frames_invert():
    assert [latent_frames(f) for f in (1, 5, 17, 81)] == [1, 2, 5, 21]
    assert all(video_frames(latent_frames(f)) == f for f in (1, 5, 17, 81))
    assert GIB == 1024**3 and torch.float8_e4m3fn.itemsize == 1
