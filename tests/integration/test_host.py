"""The pack's ComfyUI host measured inside the server: each weight dtype a CPU can run, and adaptive RoPE.

Each graph loads the tiny Wan in one way (UNETLoader weight_dtype, an fp8_scaled checkpoint, bf16 compute),
and FYMTest_HostCheck reports numbers from inside the server (see its docstring).
"""

import json

import pytest

from .comfy_server import UNET_FP8_SCALED_NAME, UNET_NAME
from .test_harness import random_conditioning
from .test_pack import reference_nodes

FP8_CARD = "FYMTest_FP8CardUNETLoader"  # UNETLoader as on a card with fp8 compute
# (checkpoint, UNETLoader weight_dtype, compute dtype asked of the model[, loader])
LOADS = {
    "fp32": (UNET_NAME, "default", "model"),
    "bf16 compute": (UNET_NAME, "default", "bf16"),
    "fp8 storage, bf16 compute": (UNET_NAME, "fp8_e4m3fn", "bf16"),
    "fp8 storage": (UNET_NAME, "fp8_e4m3fn", "model"),
    "fp8_scaled": (UNET_FP8_SCALED_NAME, "default", "model"),
    "fp8_scaled, bf16 compute": (UNET_FP8_SCALED_NAME, "default", "bf16"),
    # code review 25.4: 0.3.64 multiplies these in fp8 (torch._scaled_mm, no backward): a crash on the first step
    "fp8_scaled as fp8_e4m3fn_fast, fp8 card": (UNET_FP8_SCALED_NAME, "fp8_e4m3fn_fast", "model", FP8_CARD),
    "fp8 fast, fp8 card": (UNET_NAME, "fp8_e4m3fn_fast", "model", FP8_CARD),
}


def host_check(comfy, check: str, unet: str, weight_dtype: str, compute_dtype: str, loader="UNETLoader") -> dict:
    graph = reference_nodes()
    graph.update(
        {
            "unet": {"class_type": loader, "inputs": {"unet_name": unet, "weight_dtype": weight_dtype}},
            "caption": random_conditioning(1),
            "check": {
                "class_type": "FYMTest_HostCheck",
                "inputs": {
                    "model": ["unet", 0],
                    "video_latent": ["prep", 0],
                    "positive": ["caption", 0],
                    "check": check,
                    "compute_dtype": compute_dtype,
                    "filename_prefix": f"{check}_{weight_dtype}_{compute_dtype}",
                },
            },
        }
    )
    entry = comfy.run(graph, timeout=300)
    (path,) = entry["outputs"]["check"]["text"]
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.parametrize("load", list(LOADS))
def test_the_exported_lora_reproduces_the_trained_model(comfy, load):
    """What Apply Motion LoRA adds equals what training changed, in real weight units, in every dtype: a
    mis-scaled export (an fp8_scaled delta trained in stored units, off by 1/scale_weight) fails the ratio."""
    result = host_check(comfy, "export", *LOADS[load])
    assert result["compute_dtype"] != "torch.float16", result  # never fp16 without a loss scaler
    if "bf16" in load:
        assert result["compute_dtype"] == "torch.bfloat16", result
    assert result["effect"] > 0.05, result  # the LoRA changes the output clearly, so the comparison means something
    low_precision = "fp8" in load or "bf16" in load  # the applied delta is rounded into the stored weight
    assert result["cosine"] > (0.95 if low_precision else 0.9999), result
    assert abs(result["norm_ratio"] - 1) < (0.1 if low_precision else 1e-3), result


def test_adaptive_rope_uses_the_full_clip_positions(comfy):
    """Frames 0 and 2 trained as a pair see RoPE rows 0 and 2 of the full clip, not 0 and 1."""
    result = host_check(comfy, "adaptive_rope", UNET_NAME, "default", "model")
    assert result["stock_vs_expected"] > 1e-5, result  # positions 0, 1 change the output measurably
    assert result["adaptive_vs_expected"] < result["stock_vs_expected"] / 100, result


def test_training_nodes_share_one_copy_of_a_dynamic_vram_model(comfy):
    """Code review 25.5: with DynamicVRAM (ComfyUI 0.33+, NVIDIA's default) training needs a non-dynamic copy of
    the weights; Spatial and Temporal LoRA Train on one expert (its MODEL and the LoRA'd clone) and a re-run
    share one copy read from disk once, not one each (workflow 03: 2 copies, was 4)."""
    result = host_check(comfy, "dynamic_delegates", UNET_NAME, "default", "model")
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert result["reads"] == 1 and result["disable_dynamic"] == [True], result
    assert result["shared"] and result["not_the_dynamic_one"], result


def test_capture_and_training_read_attention_through_the_hosts_containers(comfy):
    """Issue 24: newer ComfyUI Wan hands q, k, v to attention in AttentionTensorContainers (the overlay host runs
    that Wan file). Classify Heads still captures (B, S, heads, 128) q and k of each block in order, training
    attention has a backward through them, and the training flag that keeps fused inference kernels off is set
    in every block's forward and its checkpointed recompute, and cleared afterwards. On hosts whose Wan passes
    plain tensors the same numbers hold with no container taken."""
    result = host_check(comfy, "attention_path", UNET_NAME, "default", "model")
    layers, tokens = result["num_layers"], result["tokens"]
    print(f"Wan wraps q/k/v in containers: {result['wan_wraps_in_containers']}, taken {result['containers_taken']}")  # noqa: T201
    assert result["captured"] == [[i, [1, tokens, 2, 128], [1, tokens, 2, 128]] for i in range(layers)], result
    if result["wan_wraps_in_containers"]:  # self- and cross-attention: q, k, v each, in capture and in training
        assert all(n >= 6 * layers for n in result["containers_taken"]), result
    else:
        assert result["containers_taken"] == [0, 0], result
    assert result["grad_norm"] > 0 and result["grad_norm"] < float("inf"), result
    flag = True if result["host_has_training_flag"] else None  # 0.3.64 has no such flag
    assert result["in_training_flags"] == [flag] * (2 * layers), result  # forward + recompute, every block
    assert result["in_training_after"] is False, result
