"""Resumable training (fym.checkpoint), previews (fym.preview) and the live loss feed (on_log), on the tiny Wan."""

import os
from dataclasses import replace

import pytest
import torch
from test_train import split_map

from fym.checkpoint import Checkpoints, load_state, save_state
from fym.config import PREVIEW_STEPS, SPATIAL, TEMPORAL
from fym.host import GIVEN_CLEAN, Condition
from fym.preview import Preview
from fym.train import train_stage

TEMPORAL_TINY = replace(TEMPORAL, steps=6, rank=4, alpha=4.0, learning_rate=1e-2, frame_stride=2, frame_count=3)


def checkpointed_run(host, clip, context, tmp_path, config, resume=None, stop_after=None, model=(1.0,)):
    """Train the temporal stage writing a checkpoint every 2 steps under tmp_path; stop (as Cancel does) after
    step `stop_after`. Returns (result or None, {step: path})."""
    written = {}

    def write(state):
        path = str(tmp_path / f"run{len(os.listdir(tmp_path))}_step{state['step']}.pt")
        save_state(state, path)
        written[state["step"]] = path

    def on_step(step):
        if step == stop_after:
            raise KeyboardInterrupt

    checkpoints = Checkpoints(every=2, write=write, resume=resume, model=list(model))
    try:
        result = train_stage(
            host, "temporal", clip, context, split_map(host.shape), config, on_step, checkpoints=checkpoints
        )
    except KeyboardInterrupt:
        return None, written
    return result, written


def test_a_resumed_run_gives_the_same_lora_as_an_uninterrupted_one(host, clip, context, tmp_path):
    whole, _ = checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY)
    stopped, written = checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY, stop_after=3)
    assert stopped is None and sorted(written) == [2]  # cancelled at step 3: the step-2 checkpoint is on disk
    state = load_state(written[2])
    resumed, _ = checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY, resume=state)
    assert resumed.losses == whole.losses
    for key, value in whole.lora.state_dict.items():
        assert torch.equal(resumed.lora.state_dict[key], value), key
    # Without the optimizer and random-number state it would differ: the check above can fail.
    state["generator"] = torch.Generator().manual_seed(99).get_state()
    other, _ = checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY, resume=state)
    assert other.losses[:2] == whole.losses[:2] and other.losses[2:] != whole.losses[2:]


def test_a_finished_run_can_be_continued_with_more_steps(host, clip, context, tmp_path):
    longer = replace(TEMPORAL_TINY, steps=8)
    whole, _ = checkpointed_run(host, clip, context, tmp_path, longer)
    _, written = checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY)
    assert sorted(written) == [2, 4, 6]  # every 2 steps, and the last
    continued, _ = checkpointed_run(host, clip, context, tmp_path, longer, resume=load_state(written[6]))
    assert continued.losses == whole.losses
    with pytest.raises(ValueError, match="set steps to at least 6"):
        checkpointed_run(host, clip, context, tmp_path, replace(TEMPORAL_TINY, steps=4), resume=load_state(written[6]))


def test_resuming_refuses_another_stage_head_map_model_clip_or_setting(host, clip, context, tmp_path):
    _, written = checkpointed_run(host, clip, context, tmp_path, replace(TEMPORAL_TINY, steps=2))
    state = load_state(written[2])
    frames = clip[0].transpose(0, 1).unsqueeze(2)
    head_map = split_map(host.shape)
    cases = [
        ("a temporal checkpoint and this node trains the spatial LoRA",
         lambda: train_stage(host, "spatial", frames, context, head_map, replace(SPATIAL, steps=2, rank=4),
                             checkpoints=Checkpoints(resume=state, model=[1.0]))),
        ("another head map",
         lambda: train_stage(host, "temporal", clip, context, head_map.with_changes(overrides="0.1=s"),
                             TEMPORAL_TINY, checkpoints=Checkpoints(resume=state, model=[1.0]))),
        ("another model", lambda: checkpointed_run(host, clip, context, tmp_path, TEMPORAL_TINY, state, model=(1.5,))),
        ("other reference clips",
         lambda: checkpointed_run(host, clip.flip(2), context, tmp_path, TEMPORAL_TINY, state)),
        ("other captions", lambda: checkpointed_run(host, clip, -context, tmp_path, TEMPORAL_TINY, state)),
        ("other reference clips",  # one more clip of the motion
         lambda: checkpointed_run(host, [clip, clip.flip(2)], [context, context], tmp_path, TEMPORAL_TINY, state)),
        ("learning_rate 0.01 here 0.02",
         lambda: checkpointed_run(host, clip, context, tmp_path, replace(TEMPORAL_TINY, learning_rate=2e-2), state)),
    ]  # fmt: skip
    for message, run in cases:
        with pytest.raises(ValueError, match=message):
            run()
    resumed, _ = checkpointed_run(
        host, clip, context, tmp_path, replace(TEMPORAL_TINY, log_every=1), state, model=(1.001,)
    )
    assert resumed is not None  # log_every may differ, and the model summary is compared within 10%


def test_checkpoint_files_are_never_overwritten_and_only_checkpoints_load(tmp_path):
    path = str(tmp_path / "a.pt")
    save_state({"format": "fym.checkpoint.v1", "step": 1}, path)
    with pytest.raises(FileExistsError):
        save_state({"format": "fym.checkpoint.v1", "step": 2}, path)
    assert load_state(path)["step"] == 1 and os.listdir(tmp_path) == ["a.pt"]
    torch.save({"x": torch.zeros(1)}, str(tmp_path / "b.pt"))
    (tmp_path / "c.pt").write_bytes(b"truncated")
    for name in ("b.pt", "c.pt"):
        with pytest.raises(ValueError, match="training checkpoint"):
            load_state(str(tmp_path / name))


def test_on_log_gets_every_loss_once_and_previews_show_the_lora_as_it_trains(host, clip, context):
    logged, previews = [], []
    config = replace(TEMPORAL_TINY, steps=7, log_every=3)
    preview = Preview(every=3, show=lambda step, latent: previews.append((step, latent)), frames=4, seed=5)
    result = train_stage(host, "temporal", clip, context, split_map(host.shape), config,
                         on_log=lambda step, losses: logged.append((step, losses)), preview=preview)  # fmt: skip
    assert [step for step, _ in logged] == [3, 6, 7]
    assert [loss for _, losses in logged for loss in losses] == result.losses
    assert [step for step, _ in previews] == [3, 6, 7]
    first, last = previews[0][1], previews[-1][1]
    assert first.shape == (1, 16, 4, 8, 8) and torch.isfinite(first).all()
    assert (first - last).abs().max() > 1e-4  # the LoRA changed between previews; the fixed noise did not


def test_a_preview_keeps_a_clean_first_frame_and_runs_the_steps(host, clip, context):
    calls = []

    class Counting:
        shape = host.shape
        attach, detach, checkpointing = host.attach, host.detach, host.checkpointing

        def velocity(self, x_t, sigma, condition, frame_positions=None):
            calls.append(torch.is_grad_enabled())
            return host.velocity(x_t, sigma, condition.text, frame_positions)

    shown = []
    config = replace(TEMPORAL_TINY, steps=1)
    train_stage(Counting(), "temporal", clip, Condition(context, first_frame=GIVEN_CLEAN), split_map(host.shape), config,
                preview=Preview(every=1, show=lambda step, latent: shown.append(latent), frames=3))  # fmt: skip
    (latent,) = shown
    torch.testing.assert_close(latent[:, :, 0], clip[:, :, 0])
    assert calls == [True] + [False] * PREVIEW_STEPS  # one training step, then a no-grad preview


def test_a_resumed_run_on_several_clips_gives_the_same_lora(host, clip, context, tmp_path):
    clips, captions = [clip, clip.flip(2)[:, :, :5]], [context, -context]
    whole, _ = checkpointed_run(host, clips, captions, tmp_path, TEMPORAL_TINY)
    _, written = checkpointed_run(host, clips, captions, tmp_path, TEMPORAL_TINY, stop_after=3)
    resumed, _ = checkpointed_run(host, clips, captions, tmp_path, TEMPORAL_TINY, resume=load_state(written[2]))
    assert resumed.losses == whole.losses
