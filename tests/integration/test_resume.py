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
    before = checkpoints(comfy)
    whole = comfy.run(temporal_run(prefix, steps=6), timeout=600)
    whole_lora = load_file(comfy.output_dir / saved_text(whole, "save"))
    written = checkpoints(comfy) - before
    run = {name.split("_")[1] for name in written}
    assert len(run) == 1 and sorted(name.split("_step")[1] for name in written) == [
        "000002.pt",
        "000004.pt",
        "000006.pt",
    ]

    # A long run, cancelled once it has written a few checkpoints.
    prompt_id = comfy.queue(temporal_run(prefix, steps=100000))
    deadline = time.monotonic() + 300
    while not any(name.endswith("_step000004.pt") for name in checkpoints(comfy) - before - written):
        assert time.monotonic() < deadline, "the long run wrote no checkpoint"
        time.sleep(0.2)
    comfy._request("POST", "/interrupt", {})
    entry = comfy.wait(prompt_id, timeout=120)
    assert "execution_interrupted" in [event for event, _ in entry["status"]["messages"]]
    (resume_from,) = [n for n in checkpoints(comfy) - before - written if n.endswith("_step000004.pt")]
    assert resume_from.split("_")[1] not in run  # its own run number: nothing of the first run was overwritten

    resumed = comfy.run(temporal_run(prefix, steps=6, resume_from=resume_from), timeout=600)
    resumed_lora = load_file(comfy.output_dir / saved_text(resumed, "save"))
    assert resumed_lora.keys() == whole_lora.keys()
    for key, value in whole_lora.items():
        assert torch.equal(resumed_lora[key], value), key
    moved = [key for key, value in whole_lora.items() if key.endswith("lora_up.weight") and value.abs().max() > 0]
    assert moved, "the LoRA never moved from zero; the comparison proves nothing"


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
