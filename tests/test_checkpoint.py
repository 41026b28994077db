"""Resumable training (fym.checkpoint), previews (fym.preview) and the live loss feed (on_log), on the tiny Wan."""

import os
from dataclasses import replace

import pytest
import torch
from test_train import split_map

from fym.checkpoint import Checkpoints, RunFiles, load_state, save_state
from fym.config import PREVIEW_STEPS, SPATIAL, TEMPORAL
from fym.host import GIVEN_CLEAN, Condition
from fym.preview import Preview
from fym.train import NonFiniteLoss, train_stage

TEMPORAL_TINY = replace(TEMPORAL, steps=6, rank=4, alpha=4.0, learning_rate=1e-2, frame_stride=2, frame_count=3)


def checkpointed_run(host, clip, context, tmp_path, config, resume=None, stop_after=None, model=(1.0,), **more):
    """Train the temporal stage writing a checkpoint every 2 steps under tmp_path; stop (as Cancel does) after
    step `stop_after`; `more` goes to train_stage (on_log, preview). Returns (result or None, {step: path})."""
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
            host, "temporal", clip, context, split_map(host.shape), config, on_step, checkpoints=checkpoints, **more
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


class Poisoned:
    """The tiny host, whose training velocity is NaN from training call `from_call` on (previews run no-grad)."""

    def __init__(self, host, from_call: int) -> None:
        self.host, self.from_call, self.calls, self.sigmas = host, from_call, 0, []
        self.shape, self.attach, self.detach, self.checkpointing = (
            host.shape,
            host.attach,
            host.detach,
            host.checkpointing,
        )

    def velocity(self, x_t, sigma, condition, frame_positions=None):
        if not torch.is_grad_enabled():
            self.sigmas.append(float(sigma))
            return self.host.velocity(x_t, sigma, condition, frame_positions)
        self.calls += 1
        velocity = self.host.velocity(x_t, sigma, condition, frame_positions)
        return velocity * float("nan") if self.calls >= self.from_call else velocity


def test_no_checkpoint_or_preview_is_made_from_nan_weights(host, clip, context, tmp_path):
    """Code review 25.10: between log points (log_every 100) a NaN from step 3 on must stop the run before the
    step-4 checkpoint and preview, not leave NaN weights on disk or on the node."""
    previews = []
    with pytest.raises(NonFiniteLoss, match="by step 4; nothing was saved"):
        checkpointed_run(Poisoned(host, from_call=3), clip, context, tmp_path, replace(TEMPORAL_TINY, log_every=100),
                            preview=Preview(every=2, show=lambda step, latent: previews.append(step)))  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["run0_step2.pt"] and previews == [2]
    assert host.attached_keys() == []


def test_no_checkpoint_is_written_from_weights_that_became_nan_after_a_finite_loss(host, clip, context, tmp_path):
    """The weights are checked too: a LoRA factor turned NaN after step 4's finite loss is caught before its
    checkpoint."""

    adapters = {}
    attach = host.attach
    host.attach = lambda key, attached: (adapters.update(attached), attach(key, attached))[1]

    def poison(step, losses):
        if step == 4:
            with torch.no_grad():
                next(iter(adapters.values())).lora_up.fill_(float("nan"))

    with pytest.raises(NonFiniteLoss, match="LoRA weights became NaN or infinite by step 4"):
        checkpointed_run(host, clip, context, tmp_path, replace(TEMPORAL_TINY, log_every=2), on_log=poison)
    assert sorted(os.listdir(tmp_path)) == ["run0_step2.pt"]


@pytest.mark.parametrize("expert_range", [(0.9, 1.0), (0.0, 0.9), (0.0, 1.0)])
def test_previews_of_an_expert_run_only_in_its_noise_range(host, clip, context, expert_range):
    """Code review 25.9: a Wan 2.2 A14B expert's preview calls the model only at the noise levels it runs at
    (the low-noise expert from the reference noised to 0.9, the high-noise one down to 0.9 then straight to 0)."""
    poisoned = Poisoned(host, from_call=10**9)  # never NaN: only records the preview's sigmas
    config = replace(TEMPORAL_TINY, steps=1, noise_range=expert_range)
    shown = []
    train_stage(poisoned, "temporal", clip, context, split_map(host.shape), config,
                preview=Preview(every=1, show=lambda step, latent: shown.append(latent), frames=3))  # fmt: skip
    low, high = expert_range
    assert len(poisoned.sigmas) == PREVIEW_STEPS + (low > 0)
    assert all(low - 1e-6 <= s <= high + 1e-6 for s in poisoned.sigmas), poisoned.sigmas
    assert poisoned.sigmas[0] == pytest.approx(high, abs=1e-6)
    assert low == 0 or poisoned.sigmas[-1] == pytest.approx(low, abs=1e-6)  # then the estimate of the clean clip
    assert shown[0].shape == (1, 16, 3, 8, 8) and torch.isfinite(shown[0]).all()


def test_run_files_rotate_clean_up_old_runs_and_survive_a_deleted_file(tmp_path):
    """Code review 25.8: a run keeps its newest 2 files, the folder the stage's newest 3 runs and the run resumed
    from (older runs go when a run starts writing); other files stay, and a file the user deleted is no error."""
    folder = tmp_path / "fym_checkpoints"
    folder.mkdir()
    for run in range(1, 6):
        for step in (2, 4):
            (folder / f"spatial_{run:05}_step{step:06}.pt").write_bytes(b"old")
    others = ["spatial_notes.pt", "temporal_00001_step000002.pt", "spatial_00009_step000002.pt.part"]
    for name in others:
        (folder / name).write_bytes(b"not ours to delete")
    write = RunFiles(str(folder), "spatial", resumed="spatial_00002_step000004.pt")
    write({"format": "fym.checkpoint.v1", "step": 1})
    assert sorted(write.runs()) == [2, 4, 5, 6]  # runs 1 and 3 went; 2 is resumed from; 4, 5 and this one (6) stay
    (folder / "spatial_00006_step000001.pt").unlink()  # the user deletes a file the rotation will remove
    for step in (2, 3, 4):
        write({"format": "fym.checkpoint.v1", "step": step})
    assert write.runs()[6] == ["spatial_00006_step000003.pt", "spatial_00006_step000004.pt"]
    assert load_state(str(folder / "spatial_00006_step000004.pt"))["step"] == 4
    assert all((folder / name).read_bytes() == b"not ours to delete" for name in others)
    assert RunFiles(str(folder), "spatial").runs()[2] == ["spatial_00002_step000002.pt", "spatial_00002_step000004.pt"]
