"""Checkpoints and resume through the real nodes: Cancel a run, resume it from its checkpoint, get the same LoRA."""

import time

import torch
from safetensors.torch import load_file

from .comfy_server import UNET_T2V_LOW_NAME
from .test_pack import run_expecting_error, saved_text, training_nodes, unique


def temporal_run(prefix: str, steps: int, resume_from: str = "none", unet=None) -> dict:
    """The tiny training graph with checkpoints every 2 temporal steps, saving the temporal LoRA in fp32."""
    graph = training_nodes(seed=4, **({"unet": unet} if unet else {}))
    graph["temporal"]["inputs"].update(steps=steps, checkpoint_every=2, resume_from=resume_from, log_every=50)
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}", "dtype": "fp32"},
    }
    return graph


def checkpoints(comfy) -> set[str]:
    folder = comfy.output_dir / "fym_checkpoints"
    return {path.name for path in folder.glob("temporal_*.pt")} if folder.is_dir() else set()


def test_a_cancelled_run_resumed_from_its_checkpoint_gives_the_lora_of_a_run_that_never_stopped(comfy):
    prefix = unique("fym_resume")
    folder = comfy.output_dir / "fym_checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "temporal_my_notes.pt").write_bytes(b"a user's own file")  # not ours: runs number around it
    before = checkpoints(comfy)
    # A long run, cancelled once it has written a few checkpoints (every 2 steps; it keeps its newest two).
    prompt_id = comfy.queue(temporal_run(prefix, steps=100000))
    deadline = time.monotonic() + 300
    while len(checkpoints(comfy) - before) < 2:
        assert time.monotonic() < deadline, "the long run wrote no checkpoint"
        time.sleep(0.2)
    comfy._request("POST", "/interrupt", {})
    entry = comfy.wait(prompt_id, timeout=120)
    assert "execution_interrupted" in [event for event, _ in entry["status"]["messages"]]
    kept = sorted(checkpoints(comfy) - before)
    assert len(kept) == 2 and len({name.split("_")[1] for name in kept}) == 1, kept  # one run, its newest two
    resume_from = kept[-1]
    step = int(resume_from.split("_step")[1].removesuffix(".pt"))

    # Resumed to step + 2, and a run of step + 2 steps that never stopped: the same LoRA.
    resumed = comfy.run(temporal_run(prefix, steps=step + 2, resume_from=resume_from), timeout=600)
    whole = comfy.run(temporal_run(prefix, steps=step + 2), timeout=600)
    resumed_lora = load_file(comfy.output_dir / saved_text(resumed, "save"))
    whole_lora = load_file(comfy.output_dir / saved_text(whole, "save"))
    assert resumed_lora.keys() == whole_lora.keys()
    for key, value in whole_lora.items():
        assert torch.equal(resumed_lora[key], value), key
    moved = [key for key, value in whole_lora.items() if key.endswith("lora_up.weight") and value.abs().max() > 0]
    assert moved, "the LoRA never moved from zero; the comparison proves nothing"
    runs = {name.split("_")[1] for name in checkpoints(comfy) - before}
    assert len(runs) == 3 and resume_from in checkpoints(comfy)  # each run its own files; none overwritten


def test_resuming_refuses_a_checkpoint_of_another_stage_or_model_before_any_work(comfy):
    prefix = unique("fym_refuse")
    before = checkpoints(comfy)
    comfy.run(temporal_run(prefix, steps=2), timeout=600)
    (checkpoint,) = [name for name in checkpoints(comfy) - before if name.endswith("_step000002.pt")]

    graph = temporal_run(prefix, steps=4)
    graph["spatial"]["inputs"]["resume_from"] = checkpoint
    message = run_expecting_error(comfy, graph)
    assert "FYM Spatial LoRA Train" in message and "temporal checkpoint" in message, message

    message = run_expecting_error(comfy, temporal_run(prefix, steps=4, resume_from=checkpoint, unet=UNET_T2V_LOW_NAME))
    assert "FYM Temporal LoRA Train" in message and "another model" in message, message

    graph = temporal_run(prefix, steps=4, resume_from=checkpoint)
    graph["temporal"]["inputs"]["frame_stride"] = 1
    message = run_expecting_error(comfy, graph)
    assert "frame_stride 2 here 1" in message, message
