"""Smoke tests of the integration harness itself: stock ComfyUI nodes plus the
FYMTest_* test nodes only (nothing from the FollowYourMotion pack)."""

from pathlib import Path

import pytest

from .comfy_server import TEST_CLIP_NAME, UNET_NAME, VAE_NAME, PromptRejected


def load_saved_latent(entry: dict, node_id: str):
    """The tensor a FYMTest_LatentStats node saved, from its history entry."""
    import torch

    path = Path(entry["outputs"][node_id]["text"][0])
    return torch.load(path, map_location="cpu", weights_only=True)


def ksampler(
    model: list, positive: list, negative: list, latent: list, seed: int, steps: int, cfg: float = 1.0
) -> dict:
    """A core KSampler node (euler, simple schedule, full denoise) for an API graph; inputs are node links."""
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": seed,
            "steps": steps,
            "cfg": cfg,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": positive,
            "negative": negative,
            "latent_image": latent,
            "denoise": 1.0,
        },
    }


def random_conditioning(seed):
    return {"class_type": "FYMTest_RandomConditioning", "inputs": {"seed": seed, "length": 512, "dim": 4096}}


def test_object_info_lists_test_nodes(comfy):
    info = comfy.object_info()
    assert "FYMTest_RandomConditioning" in info
    assert UNET_NAME in info["UNETLoader"]["input"]["required"]["unet_name"][0]


def test_invalid_graph_is_rejected(comfy):
    graph = {
        "latent": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64}},
        "save": {
            "class_type": "FYMTest_LatentStats",
            "inputs": {"latent": ["latent", 0], "filename_prefix": "rejected"},
        },
    }
    with pytest.raises(PromptRejected) as excinfo:
        comfy.queue(graph)
    assert "latent" in excinfo.value.body["node_errors"]


def test_tiny_wan21_t2v_samples(comfy):
    import torch

    graph = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_NAME, "weight_dtype": "default"}},
        "shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["unet", 0], "shift": 8.0}},
        "pos": random_conditioning(1),
        "neg": random_conditioning(2),
        "latent": {
            "class_type": "EmptyHunyuanLatentVideo",
            "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1},
        },
        "sample": ksampler(["shift", 0], ["pos", 0], ["neg", 0], ["latent", 0], seed=0, steps=2),
        "save": {
            "class_type": "FYMTest_LatentStats",
            "inputs": {"latent": ["sample", 0], "filename_prefix": "harness_t2v"},
        },
    }
    samples = load_saved_latent(comfy.run(graph, timeout=300), "save")
    assert tuple(samples.shape) == (1, 16, 3, 8, 8)
    assert torch.isfinite(samples).all()


def test_load_video_vae_encode(comfy):
    import torch

    graph = {
        "video": {"class_type": "LoadVideo", "inputs": {"file": TEST_CLIP_NAME}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": VAE_NAME}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["frames", 0], "vae": ["vae", 0]}},
        "save": {
            "class_type": "FYMTest_LatentStats",
            "inputs": {"latent": ["encode", 0], "filename_prefix": "harness_vae"},
        },
    }
    samples = load_saved_latent(comfy.run(graph, timeout=300), "save")
    assert tuple(samples.shape) == (1, 16, 3, 8, 8)
    assert torch.isfinite(samples).all()
