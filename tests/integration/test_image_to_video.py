"""Image-to-video and Wan 2.2 models in a real ComfyUI server (tiny CPU models): the first frame comes from core
WanImageToVideo exactly as at inference, each A14B expert trains in its own noise range, and what the pack cannot
train is refused by name before any work."""

import json
from pathlib import Path

from safetensors import safe_open

from .comfy_server import (
    UNET_I2V_HIGH_NAME,
    UNET_NAME,
    UNET_TI2V_NAME,
    UNET_VACE_NAME,
    UNET_WAN21_I2V_NAME,
    VAE22_NAME,
)
from .test_harness import ksampler, random_conditioning
from .test_pack import reference_nodes, run_expecting_error, sampling_nodes, saved_text, training_nodes, unique

TINY_OVERRIDES = "0.0=s, 0.1=t, 1.0=s, 1.1=t"


def i2v_nodes(unet=UNET_I2V_HIGH_NAME, expert="high-noise expert", sigmas="0.95", start_frame=0, length=9) -> dict:
    """Reference clip -> its first frame -> WanImageToVideo -> Classify (heat map shown), Spatial and Temporal
    (2 steps each)."""
    graph = reference_nodes()
    train = {
        "steps": 2, "rank": 8, "lora_alpha": 8.0, "learning_rate": 1e-2, "timestep_shift": 8.0,
        "gradient_checkpointing": False, "log_every": 1, "seed": 0, "expert": expert,
    }  # fmt: skip
    graph.update(
        {
            "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
            "caption": random_conditioning(1),
            "negative": random_conditioning(2),
            "first": {
                "class_type": "ImageFromBatch",
                "inputs": {"image": ["prep", 2], "batch_index": start_frame, "length": 1},
            },
            "i2v": {
                "class_type": "WanImageToVideo",
                "inputs": {
                    "positive": ["caption", 0],
                    "negative": ["negative", 0],
                    "vae": ["vae", 0],
                    "width": 64,
                    "height": 64,
                    "length": length,
                    "batch_size": 1,
                    "start_image": ["first", 0],
                },
            },  # fmt: skip
            "classify": {
                "class_type": "FYM_ClassifyHeads",
                "inputs": {
                    "model": ["unet", 0],
                    "video_latent": ["prep", 0],
                    "positive": ["i2v", 0],
                    "alpha": 1.3,
                    "sigmas": sigmas,
                    "num_queries": 64,
                    "band": 1,
                    "seed": 0,
                    "overrides": TINY_OVERRIDES,
                    "expert": expert,
                },
            },  # fmt: skip
            "heat": {"class_type": "PreviewImage", "inputs": {"images": ["classify", 1]}},
            "spatial": {
                "class_type": "FYM_SpatialLoRATrain",
                "inputs": {
                    "model": ["unet", 0],
                    "frame_latents": ["prep", 1],
                    "positive": ["i2v", 0],
                    "head_map": ["classify", 0],
                    "weight_decay": 0.1,
                    **train,
                },
            },  # fmt: skip
            "temporal": {
                "class_type": "FYM_TemporalLoRATrain",
                "inputs": {
                    "model": ["spatial", 0],
                    "video_latent": ["prep", 0],
                    "positive": ["i2v", 0],
                    "head_map": ["classify", 0],
                    "weight_decay": 0.99,
                    **train,
                    "sparse_sampling": True,
                    "frame_stride": 1,
                    "frame_count": 2,
                    "adaptive_rope": True,
                    "motion_loss_weight": 1.0,
                },
            },  # fmt: skip
        }
    )
    return graph


def save_temporal_lora(comfy, graph: dict, prefix: str) -> str:
    """Runs `graph` with its temporal LoRA saved by Save Motion LoRA; returns the file's name under loras/."""
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}"},
    }
    return saved_text(comfy.run(graph, timeout=600), "save").removeprefix("loras/")


def saved_lora(comfy, graph: dict, prefix: str) -> tuple[dict, list[str]]:
    """Runs `graph` with the temporal LoRA saved; returns its metadata and tensor keys."""
    path = Path(comfy.output_dir) / "loras" / save_temporal_lora(comfy, graph, prefix)
    with safe_open(str(path), "pt") as handle:
        return handle.metadata(), list(handle.keys())


def test_wan22_i2v_expert_trains_in_its_noise_range_on_the_reference_first_frame(comfy):
    metadata, keys = saved_lora(comfy, i2v_nodes(), unique("i2v_high"))
    fym = json.loads(metadata["fym"])
    assert fym["noise_range"] == [0.9, 1.0] and fym["frame_sampling"]["first_frame_given"] == "concat", fym
    # only self-attention: the LoRA loads on T2V and I2V graphs alike (no img_emb, k_img, v_img keys)
    assert keys and all(".self_attn." in key for key in keys), keys


def test_the_reference_first_frame_reaches_the_model(comfy):
    """Classify Heads scores differ when WanImageToVideo is given another start image: the image channels are
    part of the forward pass (through the model's own extra_conds), not dropped."""
    maps = []
    for start_frame in (0, 8):
        graph = i2v_nodes(start_frame=start_frame)
        for node in ("spatial", "temporal"):
            del graph[node]
        graph["save"] = {
            "class_type": "FYM_SaveHeadMap",
            "inputs": {"head_map": ["classify", 0], "filename_prefix": unique("i2v_map")},
        }
        entry = comfy.run(graph, timeout=600)
        maps.append(json.loads((comfy.output_dir / saved_text(entry, "save")).read_text()))
    assert maps[0]["sim_spatial"] != maps[1]["sim_spatial"]


def test_wan21_i2v_with_clip_vision_trains(comfy):
    graph = i2v_nodes(unet=UNET_WAN21_I2V_NAME, expert="whole range", sigmas="0.5")
    graph["vision"] = {"class_type": "FYMTest_RandomClipVision", "inputs": {"seed": 0}}
    graph["i2v"]["inputs"]["clip_vision_output"] = ["vision", 0]
    metadata, keys = saved_lora(comfy, graph, unique("wan21_i2v"))
    assert keys and all(".self_attn." in key for key in keys), keys


def test_i2v_model_without_the_first_frame_is_refused(comfy):
    graph = i2v_nodes()
    graph["classify"]["inputs"]["positive"] = ["caption", 0]
    message = run_expecting_error(comfy, graph)
    assert "FYM Classify Heads" in message and "WanImageToVideo" in message, message


def test_first_frame_conditioning_of_another_length_is_refused(comfy):
    message = run_expecting_error(comfy, i2v_nodes(length=5))
    assert "WanImageToVideo the same width, height and length" in message, message


def test_expert_scored_outside_its_noise_range_is_refused(comfy):
    message = run_expecting_error(comfy, i2v_nodes(sigmas="0.5"))
    assert "high-noise expert runs at noise levels 0.9-1" in message and "0.95" in message, message


def test_a_vace_model_is_refused_by_its_name(comfy):
    graph = i2v_nodes(unet=UNET_VACE_NAME, expert="whole range", sigmas="0.5")
    graph["classify"]["inputs"]["positive"] = ["caption", 0]
    message = run_expecting_error(comfy, graph)
    assert "FYM Classify Heads: the MODEL is Wan VACE" in message, message


def test_t2v_lora_and_i2v_lora_load_on_each_others_graphs(comfy):
    """Motion LoRAs hold self-attention keys only, so core LoraLoaderModelOnly loads an I2V expert's LoRA on a T2V
    model and a T2V LoRA on an I2V expert, every key used (no 'lora key not loaded' in the server log)."""
    i2v_lora = save_temporal_lora(comfy, i2v_nodes(), unique("cross_i2v"))
    t2v_lora = save_temporal_lora(comfy, training_nodes(), unique("cross_t2v"))

    log_start = comfy.log_path.stat().st_size
    graph = i2v_nodes()
    for node in ("classify", "spatial", "temporal"):
        del graph[node]
    graph.update(
        {
            "t2v": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_NAME, "weight_dtype": "default"}},
            "i2v_on_t2v": {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {"model": ["t2v", 0], "lora_name": i2v_lora, "strength_model": 0.5},
            },
            "t2v_on_i2v": {
                "class_type": "LoraLoaderModelOnly",
                "inputs": {"model": ["unet", 0], "lora_name": t2v_lora, "strength_model": 0.5},
            },
            "sample_i2v": ksampler(["t2v_on_i2v", 0], ["i2v", 0], ["i2v", 1], ["i2v", 2], seed=1, steps=1),
            "save_i2v": {
                "class_type": "FYMTest_LatentStats",
                "inputs": {"latent": ["sample_i2v", 0], "filename_prefix": unique("x")},
            },
        }
    )
    graph.update(sampling_nodes(["i2v_on_t2v", 0], unique("cross"), "_t2v"))
    comfy.run(graph, timeout=600)
    log = comfy.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "lora key not loaded" not in log.lower(), log


def test_ti2v_5b_trains_with_the_reference_first_frame_given_clean(comfy, wan22_vae):
    """Wan 2.2 TI2V 5B: its own 48-channel VAE, the caption as plain conditioning, and the first latent frame
    given clean (as Wan22ImageToVideoLatent gives it at inference); Prepare Reference refuses sizes the 16x VAE
    cannot patch."""
    graph = i2v_nodes(unet=UNET_TI2V_NAME, expert="whole range", sigmas="0.5")
    graph["vae"]["inputs"]["vae_name"] = VAE22_NAME
    for node in ("classify", "spatial", "temporal"):
        graph[node]["inputs"]["positive"] = ["caption", 0]
    for node in ("first", "i2v"):
        del graph[node]
    metadata, keys = saved_lora(comfy, graph, unique("ti2v"))
    fym = json.loads(metadata["fym"])
    assert fym["frame_sampling"]["first_frame_given"] == "clean" and fym["noise_range"] == [0.0, 1.0], fym
    assert keys and all(".self_attn." in key for key in keys), keys

    graph = i2v_nodes(unet=UNET_TI2V_NAME, expert="whole range", sigmas="0.5")
    graph["vae"]["inputs"]["vae_name"] = VAE22_NAME
    graph["prep"]["inputs"].update(width=48, height=48)
    message = run_expecting_error(comfy, graph)
    assert "FYM Prepare Reference: with this VAE (16x smaller latents) width must be a multiple of 32" in message


def with_second_clip(graph: dict, positive: list | None = None) -> dict:
    """The I2V graph with a second clip of the motion (another size: 48 x 64, its own caption and first frame)
    added by Add Reference Clip to both training nodes' more_clips; `positive` replaces its WanImageToVideo."""
    graph.update(
        {
            "prep2": {"class_type": "FYM_PrepareReference", "inputs": {
                **graph["prep"]["inputs"], "width": 48, "resize_mode": "stretch"}},
            "caption2": random_conditioning(3),
            "first2": {"class_type": "ImageFromBatch", "inputs": {"image": ["prep2", 2], "batch_index": 0, "length": 1}},
            "i2v2": {"class_type": "WanImageToVideo", "inputs": {
                **graph["i2v"]["inputs"], "positive": ["caption2", 0], "width": 48, "start_image": ["first2", 0]}},
            "more": {"class_type": "FYM_AddReferenceClip", "inputs": {
                "video_latent": ["prep2", 0], "frame_latents": ["prep2", 1], "positive": positive or ["i2v2", 0]}},
        }
    )  # fmt: skip
    for node in ("spatial", "temporal"):
        graph[node]["inputs"]["more_clips"] = ["more", 0]
    return graph


def test_several_clips_of_one_motion_train_both_stages_each_with_its_own_first_frame(comfy):
    """Wan 2.2 A14B I2V with two clips of other sizes, each with its own caption and first frame: both stages
    train on both (the LoRA differs from the one-clip LoRA of the same seed) and the metadata says so."""
    from safetensors.torch import load_file

    two = with_second_clip(i2v_nodes())
    two["temporal"]["inputs"]["steps"] = two["spatial"]["inputs"]["steps"] = 4
    metadata, _ = saved_lora(comfy, two, unique("i2v_two_clips"))
    assert json.loads(metadata["fym"])["clips"] == 2, metadata
    one = i2v_nodes()
    one["temporal"]["inputs"]["steps"] = one["spatial"]["inputs"]["steps"] = 4
    lora_dir = Path(comfy.output_dir) / "loras"
    one_clip = load_file(lora_dir / save_temporal_lora(comfy, one, unique("i2v_one_clip")))
    two_clips = load_file(lora_dir / save_temporal_lora(comfy, two, unique("i2v_two_clips_again")))
    assert one_clip.keys() == two_clips.keys()
    assert any(not (one_clip[key] == two_clips[key]).all() for key in one_clip), "the second clip changed nothing"


def test_a_second_clip_with_a_mismatched_first_frame_is_refused_by_name(comfy):
    """The second clip (48 wide) given the main clip's 64-wide WanImageToVideo positive: refused before any
    training, naming the clip."""
    graph = with_second_clip(i2v_nodes(), positive=["i2v", 0])
    del graph["temporal"]
    graph["save"] = {"class_type": "FYM_SaveMotionLoRA",
                     "inputs": {"motion_lora": ["spatial", 1], "filename_prefix": f"loras/{unique('bad')}"}}  # fmt: skip
    message = run_expecting_error(comfy, graph)
    assert "FYM Spatial LoRA Train: more_clips' clip 1: the positive's concat" in message, message
