"""Integration tests of the FollowYourMotion pack inside a real ComfyUI server (tiny CPU models).

Every graph here trains for 2 steps on a 64x64, 9-frame clip (3 latent frames) with a 2-layer, 2-head Wan 2.1
T2V model, so the whole file runs in a few minutes on two CPU cores.
"""

import copy
import json
import math
import re
import uuid
from pathlib import Path

import pytest

from .comfy_server import (
    TEST_CLIP_NAME,
    TEST_DATASET_FOLDER,
    TEST_IMAGE_NAME,
    UNET_3LAYER_NAME,
    UNET_I2V_HIGH_NAME,
    UNET_I2V_LOW_NAME,
    UNET_NAME,
    UNET_T2V_LOW_NAME,
    UNET_TI2V_NAME,
    VAE22_NAME,
    VAE_NAME,
    PromptRejected,
)
from .test_harness import ksampler, load_saved_latent, random_conditioning
from .workflow_api import ui_to_api, widget_inputs, widget_values

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
# The tiny model's random weights may put all four heads on one side; force two of each.
TINY_OVERRIDES = "0.0=s, 0.1=t, 1.0=s, 1.1=t"


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.object_info()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def execution_errors(entry: dict) -> list[dict]:
    return [data for event, data in entry["status"]["messages"] if event == "execution_error"]


def run_expecting_error(comfy, graph: dict) -> str:
    """Queue a graph that must fail; returns the validation or execution error text."""
    try:
        entry = comfy.wait(comfy.queue(graph), timeout=300)
    except PromptRejected as rejected:
        return json.dumps(rejected.body)
    assert entry["status"]["status_str"] == "error", "the graph was expected to fail"
    errors = execution_errors(entry)
    assert errors, entry["status"]
    return "\n".join(f"{e['node_type']}: {e['exception_message']}" for e in errors)


# -- graphs ------------------------------------------------------------------------------------------------


def reference_nodes(width=64, height=64, frames=9, resize_mode="center crop") -> dict:
    return {
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": VAE_NAME}},
        "video": {"class_type": "LoadVideo", "inputs": {"file": TEST_CLIP_NAME}},
        "prep": {
            "class_type": "FYM_PrepareReference",
            "inputs": {
                "vae": ["vae", 0],
                "video": ["video", 0],
                "width": width,
                "height": height,
                "frames": frames,
                "start_frame": 0,
                "frame_step": 1,
                "resize_mode": resize_mode,
            },
        },
    }


def training_nodes(unet=UNET_NAME, seed=0, learning_rate=1e-2, temporal=True) -> dict:
    """Prepare, classify, spatial (and temporal) training for 2 steps each, on the tiny model."""
    graph = reference_nodes()
    train = {
        "steps": 2,
        "rank": 8,
        "lora_alpha": 8.0,
        "learning_rate": learning_rate,
        "timestep_shift": 8.0,
        "gradient_checkpointing": False,
        "log_every": 1,
        "seed": seed,
    }
    graph.update(
        {
            "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
            "caption": random_conditioning(1),
            "classify": {
                "class_type": "FYM_ClassifyHeads",
                "inputs": {
                    "model": ["unet", 0],
                    "video_latent": ["prep", 0],
                    "positive": ["caption", 0],
                    "alpha": 1.3,
                    "sigmas": "0.5",
                    "num_queries": 64,
                    "band": 1,
                    "seed": 0,
                    "overrides": TINY_OVERRIDES,
                },
            },
            "spatial": {
                "class_type": "FYM_SpatialLoRATrain",
                "inputs": {
                    "model": ["unet", 0],
                    "frame_latents": ["prep", 1],
                    "positive": ["caption", 0],
                    "head_map": ["classify", 0],
                    "weight_decay": 0.1,
                    **train,
                },
            },
        }
    )
    if temporal:
        graph["temporal"] = {
            "class_type": "FYM_TemporalLoRATrain",
            "inputs": {
                "model": ["spatial", 0],
                "video_latent": ["prep", 0],
                "positive": ["caption", 0],
                "head_map": ["classify", 0],
                "weight_decay": 0.99,
                **train,
                "sparse_sampling": True,
                "frame_stride": 2,  # one frame per half of the 3 latent frames: (0, 2) at seed 0, which a broken adaptive RoPE changes
                "frame_count": 2,
                "adaptive_rope": True,
                "motion_loss_weight": 1.0,
            },
        }
    return graph


def sampling_nodes(model: list, prefix: str, tag: str = "", seed: int = 7, cfg: float = 1.0, nonce: int = 0) -> dict:
    """KSampler (2 steps) from `model` through ModelSamplingSD3, latent saved by FYMTest_LatentStats."""
    return {
        f"shift{tag}": {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": 8.0}},
        f"pos{tag}": random_conditioning(11),
        f"neg{tag}": random_conditioning(12),
        f"empty{tag}": {
            "class_type": "EmptyHunyuanLatentVideo",
            "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1},
        },
        f"nonce{tag}": {
            "class_type": "FYMTest_LatentOp",
            "inputs": {"latent": [f"empty{tag}", 0], "op": "identity", "nonce": nonce},
        },
        f"sample{tag}": ksampler(
            [f"shift{tag}", 0], [f"pos{tag}", 0], [f"neg{tag}", 0], [f"nonce{tag}", 0], seed, steps=2, cfg=cfg
        ),
        f"save{tag}": {
            "class_type": "FYMTest_LatentStats",
            "inputs": {"latent": [f"sample{tag}", 0], "filename_prefix": prefix},
        },
    }


def saved_text(entry: dict, node_id: str) -> str:
    return entry["outputs"][node_id]["text"][0]


# -- workflows/*.json ----------------------------------------------------------------------------------------


# shipped model file -> the tiny one of the same architecture (first matching part of the name)
TINY_UNETS = {
    "i2v_high_noise": UNET_I2V_HIGH_NAME, "i2v_low_noise": UNET_I2V_LOW_NAME, "t2v_high_noise": UNET_NAME,
    "t2v_low_noise": UNET_T2V_LOW_NAME, "ti2v_5B": UNET_TI2V_NAME, "t2v_1.3B": UNET_NAME,
}  # fmt: skip


def tiny_world(api: dict, lora_name: str | None) -> dict:
    """The shipped workflow with the tiny test models, clip and image, and short settings everywhere."""
    api = copy.deepcopy(api)
    replaced = {}
    for node_id, node in list(api.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CLIPLoader":
            del api[node_id]
        elif kind == "CLIPTextEncode":
            del api[node_id]
            replaced[node_id] = f"{node_id}_random"
            api[replaced[node_id]] = random_conditioning(int(node_id))
        elif kind == "UNETLoader":
            inputs["unet_name"] = next(tiny for part, tiny in TINY_UNETS.items() if part in inputs["unet_name"])
        elif kind == "VAELoader":
            inputs["vae_name"] = VAE22_NAME if inputs["vae_name"] == "wan2.2_vae.safetensors" else VAE_NAME
        elif kind == "LoadVideo":
            inputs["file"] = TEST_CLIP_NAME
        elif kind == "LoadImage":
            inputs["image"] = TEST_IMAGE_NAME
        elif kind in ("WanImageToVideo", "Wan22ImageToVideoLatent"):
            inputs.update(width=64, height=64, length=9)
        elif kind == "KSamplerAdvanced":  # the two experts' halves of 2 steps
            split = {"start_at_step": 1} if inputs["start_at_step"] else {"end_at_step": 1}
            inputs.update(steps=2, **split)
        elif kind == "FYM_PrepareReference":
            inputs.update(width=64, height=64, frames=9)
        elif kind == "FYM_LoadReferenceClips":  # the test folder, and a stand-in text encoder for its captions
            inputs.update(folder=TEST_DATASET_FOLDER, width=64, height=64, frames=9, clip=[f"{node_id}_text", 0])
            api[f"{node_id}_text"] = {"class_type": "FYMTest_RandomTextEncoder", "inputs": {}}
        elif kind == "FYM_ClassifyHeads":
            inputs.update(num_queries=64)  # alpha as shipped: the node splits by score if it is one-sided
        elif kind == "FYM_SpatialLoRATrain":
            inputs.update(steps=2)
        elif kind == "FYM_TemporalLoRATrain":
            inputs.update(steps=2, frame_count=2)  # the shipped stride (2) on the tiny clip's 3 latent frames
        elif kind == "KSampler":
            inputs.update(steps=2)
        elif kind == "EmptyHunyuanLatentVideo":
            inputs.update(width=64, height=64, length=9)
        elif kind == "FYM_LoadMotionLoRA":
            assert lora_name, "a workflow loads a motion LoRA before any workflow saved one"
            inputs["lora_name"] = lora_name
    for node in api.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and value[0] in replaced:
                node["inputs"][name] = [replaced[value[0]], value[1]]
    dangling = [
        (node_id, name)
        for node_id, node in api.items()
        for name, value in node["inputs"].items()
        if isinstance(value, list) and value[0] not in api
    ]
    assert not dangling, f"links to removed nodes: {dangling}"
    return api


FILE_COMBOS = {"unet_name", "clip_name", "vae_name", "file", "lora_name", "image"}  # files the tiny world lacks


def frontend_keeps(kind: str, options: dict, value) -> bool:
    """Whether the frontend's widget would keep `value` when the user touches it: INT widgets snap to
    min + k * step, FLOAT widgets round to their precision (frontend useIntWidget / useFloatWidget)."""
    if kind == "INT":
        step = options.get("step") or 1
        offset = options.get("min", 0) % step
        return value == math.floor((value - offset) / step + 0.5) * step + offset
    if kind == "FLOAT":
        step = options.get("step", 0.5)
        precision = max(0, -math.floor(math.log10(step)))
        unit = options.get("round") or (10.0**-precision if precision else None)
        return unit is None or math.isclose(
            value, round(math.floor(value / unit + 0.5) * unit, precision), rel_tol=1e-9
        )
    return True


def test_workflow_files_are_ui_format(object_info):
    assert [w.name for w in WORKFLOWS] == [
        "01-motion-transfer-full.json",
        "02-apply-motion-lora.json",
        "03-wan22-i2v-motion-onto-your-image.json",
        "04-wan22-t2v-motion-transfer.json",
        "05-wan22-ti2v-5B-motion-onto-your-image.json",
        "06-wan22-i2v-several-clips-one-motion.json",
        "07-motion-from-a-folder-of-clips.json",
    ]
    for path in WORKFLOWS:
        ui = json.loads(path.read_text())
        assert ui["version"] == 0.4 and ui["extra"] == {} and ui["groups"]
        assert ui["groups"][0]["title"].startswith("Step 1 - Load models")
        assert ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
        assert ui["last_link_id"] == max(link[0] for link in ui["links"])
        links = {link[0]: link for link in ui["links"]}
        for node in ui["nodes"]:
            for key in (
                "id",
                "type",
                "pos",
                "size",
                "flags",
                "order",
                "mode",
                "inputs",
                "outputs",
                "properties",
                "widgets_values",
            ):
                assert key in node, (path.name, node["id"], key)
            if node["type"] == "MarkdownNote":
                continue
            info = object_info[node["type"]]
            assert node["properties"]["Node name for S&R"] == node["type"]
            # outputs a newer host added (PreviewImage's 'images') are added by the frontend when it loads the file
            listed = len(node["outputs"])
            assert [o["name"] for o in node["outputs"]] == info["output_name"][:listed], (path.name, node["type"])
            assert [o["type"] for o in node["outputs"]] == info["output"][:listed], (path.name, node["type"])
            for slot, socket in enumerate(node["inputs"]):
                if socket["link"] is not None:
                    link = links[socket["link"]]
                    assert link[3:5] == [node["id"], slot] and link[5] == socket["type"], (path.name, link)
            for slot, output in enumerate(node["outputs"]):
                assert output["slot_index"] == slot
                for link_id in output["links"] or []:
                    assert links[link_id][1:3] == [node["id"], slot], (path.name, links[link_id])
            # every widget gets a value, and nothing is left over
            values = widget_values(node, info)
            widgets = widget_inputs(info)
            top_level = [name for name in values if "." not in name]  # "format.codec": a dynamic combo's widget
            assert top_level == [name for name, _, _ in widgets[: len(top_level)]], (path.name, node["type"], values)
            # widgets a newer host added at the end (CreateVideo's bit_depth) take their defaults in the frontend
            nested = {name.rsplit(".", 1)[1] for name in values if "." in name}  # given inside a dynamic combo
            added = [widget for widget in widgets[len(top_level) :] if widget[0] not in nested]
            assert all("default" in options for _, _, options in added), (path.name, node["type"], added)
            for name, kind, options in widgets[: len(top_level)]:
                assert frontend_keeps(kind, options, values[name]), (path.name, node["type"], name, values[name])
                choices = info["input"]["required" if name in info["input"]["required"] else "optional"][name][0]
                choices = choices if isinstance(choices, list) else options.get("options", [])
                choices = [c["key"] if isinstance(c, dict) else c for c in choices]  # a dynamic combo's options
                if choices and name not in FILE_COMBOS:
                    assert values[name] in choices, (path.name, node["type"], name, values[name])
            if node["type"] in ("UNETLoader", "CLIPLoader", "VAELoader"):
                (model,) = node["properties"]["models"]
                assert model["name"] == node["widgets_values"][0]
                assert model["url"].startswith(
                    (
                        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/",
                        "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/",
                    )
                )
                assert model["url"].split("?")[0].endswith(f"/{model['directory']}/{model['name']}"), model


def test_workflows_run(comfy, object_info, wan22_vae):
    """Every shipped workflow, converted to API format and shrunk to the tiny world, runs to the end."""
    output = Path(comfy.output_dir)
    lora_name = None
    for path in WORKFLOWS:
        api = tiny_world(ui_to_api(json.loads(path.read_text()), object_info), lora_name)
        entry = comfy.run(api, timeout=600)
        for node_id, node in api.items():
            if node["class_type"] == "SaveVideo":
                (saved,) = entry["outputs"][node_id]["images"]
                video = output / saved["subfolder"] / saved["filename"]
                assert video.is_file() and video.stat().st_size > 0, (path.name, video)
            if node["class_type"] == "FYM_SaveMotionLoRA":
                relative = saved_text(entry, node_id)
                assert relative.startswith("loras/") and relative.endswith(".safetensors"), relative
                assert (output / relative).is_file(), (path.name, relative)
                lora_name = relative.removeprefix("loras/")
            if node["class_type"] in ("LossGraphNode", "PreviewImage"):
                assert entry["outputs"][node_id]["images"], (path.name, node["class_type"])


def test_the_defaults_run_on_an_81_frame_clip(comfy, object_info):
    """Code review 25.12: every widget at its default (Prepare Reference's 81 frames, frame_stride 0, frame_count
    5, previews and checkpoints on), on a 16 x 16 clip so that it runs in a minute; 2 steps per stage."""
    from safetensors import safe_open

    def defaults(node_id):
        inputs = object_info[node_id]["input"]
        return {name: spec[1]["default"] for part in inputs.values() for name, spec in part.items()
                if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]}  # fmt: skip

    graph = training_nodes(seed=0)
    graph["video"] = {
        "class_type": "FYMTest_SyntheticVideo",
        "inputs": {"frames": 81, "width": 16, "height": 16, "seed": 0},
    }
    graph["prep"]["inputs"] = {**defaults("FYM_PrepareReference"), "vae": ["vae", 0], "images": ["video", 0],
                               "width": 16, "height": 16}  # fmt: skip
    for node in ("classify", "spatial", "temporal"):
        links = {name: value for name, value in graph[node]["inputs"].items() if isinstance(value, list)}
        graph[node]["inputs"] = {**defaults(graph[node]["class_type"]), **links}
    graph["classify"]["inputs"]["overrides"] = TINY_OVERRIDES
    for node in ("spatial", "temporal"):
        graph[node]["inputs"]["steps"] = 2
    prefix = unique("fym_defaults")
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}"},
    }
    checkpoints = comfy.output_dir / "fym_checkpoints"
    before = set(checkpoints.glob("*.pt"))
    entry = comfy.run(graph, timeout=900)
    with safe_open(str(comfy.output_dir / saved_text(entry, "save")), "pt") as handle:
        sampling = json.loads(handle.metadata()["fym"])["frame_sampling"]
    assert sampling == {**sampling, "mode": "sparse", "stride": 0, "count": 5, "adaptive_rope": True}, sampling
    written = sorted(path.name for path in set(checkpoints.glob("*.pt")) - before)
    assert [name.split("_")[0] for name in written] == ["spatial", "temporal"], written  # the last step of each


# -- LoRA equivalence and model hygiene -------------------------------------------------------------------------


def merged_checkpoint(comfy_models, lora_path: Path, strength: float) -> str:
    """The tiny Wan with the LoRA file added into its weights here, by the file format's own definition
    (W + strength * alpha / rank * up @ down), not by ComfyUI's LoRA code; saved beside it, returns its name."""
    import safetensors.torch

    weights = safetensors.torch.load_file(str(comfy_models.unet_path))
    lora = safetensors.torch.load_file(str(lora_path))
    for key in [k for k in lora if k.endswith(".lora_up.weight")]:
        module = key.removesuffix(".lora_up.weight")
        up, down = lora[key].double(), lora[f"{module}.lora_down.weight"].double()
        scale = float(lora[f"{module}.alpha"]) / up.shape[1]
        target = module.removeprefix("diffusion_model.") + ".weight"
        weights[target] = (weights[target].double() + strength * scale * up @ down).float()
    name = f"{lora_path.stem}_merged.safetensors"
    safetensors.torch.save_file(weights, str(comfy_models.unet_path.parent / name))
    return name


def test_lora_matches_stock_loader(comfy, comfy_models):
    """A motion LoRA applied by FYM_ApplyMotionLoRA gives the samples of the base weights with the file's delta
    added independently of ComfyUI's LoRA code (code review 25.12: comparing with core LoraLoaderModelOnly alone
    ran the same code path twice); core LoraLoaderModelOnly gives them too and loads every key of the file."""
    import torch

    prefix = unique("fym_match")
    graph = training_nodes(seed=3)
    for dtype in ("fp32", "bf16"):
        graph[f"save_{dtype}"] = {
            "class_type": "FYM_SaveMotionLoRA",
            "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}_{dtype}", "dtype": dtype},
        }
    entry = comfy.run(graph, timeout=600)
    names = {dtype: saved_text(entry, f"save_{dtype}").removeprefix("loras/") for dtype in ("fp32", "bf16")}
    sizes = {dtype: (comfy.output_dir / "loras" / name).stat().st_size for dtype, name in names.items()}
    assert sizes["bf16"] < 0.55 * sizes["fp32"], sizes  # half the bytes, plus the metadata

    log_start = comfy.log_path.stat().st_size
    graph.pop("save_fp32")
    graph.pop("save_bf16")
    graph["apply"] = {
        "class_type": "FYM_ApplyMotionLoRA",
        "inputs": {"model": ["unet", 0], "motion_lora": ["temporal", 1], "strength": 0.5},
    }
    for dtype, name in names.items():
        graph[f"stock_{dtype}"] = {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {"model": ["unet", 0], "lora_name": name, "strength_model": 0.5},
        }
    graph.update(sampling_nodes(["apply", 0], prefix, "_fym"))
    graph.update(sampling_nodes(["stock_fp32", 0], prefix, "_stock"))
    graph.update(sampling_nodes(["stock_bf16", 0], prefix, "_stock_bf16"))
    graph.update(sampling_nodes(["unet", 0], prefix, "_base"))
    merged = merged_checkpoint(comfy_models, comfy.output_dir / "loras" / names["fp32"], 0.5)
    graph["merged"] = {"class_type": "UNETLoader", "inputs": {"unet_name": merged, "weight_dtype": "default"}}
    graph.update(sampling_nodes(["merged", 0], prefix, "_merged"))
    entry = comfy.run(graph, timeout=600)
    cached = next(data["nodes"] for event, data in entry["status"]["messages"] if event == "execution_cached")
    assert "temporal" in cached, "the LoRA was trained again instead of reusing the cached one"

    fym = load_saved_latent(entry, "save_fym")
    stock = load_saved_latent(entry, "save_stock")
    base = load_saved_latent(entry, "save_base")
    assert torch.isfinite(fym).all()
    independent = load_saved_latent(entry, "save_merged")
    assert torch.allclose(fym, independent, rtol=1e-4, atol=1e-5), (fym - independent).abs().max()
    assert torch.allclose(fym, stock, rtol=1e-5, atol=1e-6), (fym - stock).abs().max()
    assert not torch.allclose(fym, base, rtol=1e-4, atol=1e-5), "the LoRA changed nothing; the test proves nothing"
    # The bf16 file: the same result within bf16 rounding of the factors, far below what the LoRA changes.
    stock_bf16 = load_saved_latent(entry, "save_stock_bf16")
    assert (stock_bf16 - fym).abs().max() < 0.02 * (fym - base).abs().max(), (stock_bf16 - fym).abs().max()

    log = comfy.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "lora key not loaded" not in log.lower(), log


def test_model_unpatched_after_training(comfy):
    """Training (and a training run that fails midway) leaves the shared base model as it was: the same seed
    samples the same latent before and after."""
    import torch

    prefix = unique("fym_unpatched")

    def sample(nonce):
        entry = comfy.run(
            {
                "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_NAME, "weight_dtype": "default"}},
                **sampling_nodes(["unet", 0], prefix, nonce=nonce, cfg=3.0),
            },
            timeout=300,
        )
        cached = next(data["nodes"] for event, data in entry["status"]["messages"] if event == "execution_cached")
        assert "sample" not in cached
        return load_saved_latent(entry, "save"), cached

    before, _ = sample(nonce=1)

    graph = training_nodes(seed=5, learning_rate=0.5)
    graph["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["temporal", 2], "filename_prefix": prefix}}
    comfy.run(graph, timeout=600)
    after_training, cached = sample(nonce=2)
    assert "unet" in cached, "the base model was reloaded, so this does not test the shared model"

    failing = training_nodes(seed=6, learning_rate=0.5, temporal=False)
    failing["poison"] = {"class_type": "FYMTest_LatentOp", "inputs": {"latent": ["prep", 1], "op": "nan", "nonce": 0}}
    failing["spatial"]["inputs"]["frame_latents"] = ["poison", 0]
    failing["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["spatial", 2], "filename_prefix": prefix}}
    message = run_expecting_error(comfy, failing)
    assert "FYM Spatial LoRA Train" in message and "nan" in message.lower(), message
    after_failure, cached = sample(nonce=3)
    assert "unet" in cached

    assert torch.equal(before, after_training), (before - after_training).abs().max()
    assert torch.equal(before, after_failure), (before - after_failure).abs().max()


def test_sampling_the_spatial_model_then_training_leaves_the_base_model_unpatched(comfy):
    """Code review 25.1: sample with Spatial LoRA Train's model (ComfyUI keeps it loaded, its LoRA merged into the
    shared weights), then train the temporal stage on it: the plain base model must still sample what it sampled
    before, not what the spatial-LoRA model did."""
    import torch

    prefix = unique("fym_spatial_sampled")
    base = {"unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_NAME, "weight_dtype": "default"}}}
    before = load_saved_latent(comfy.run({**base, **sampling_nodes(["unet", 0], prefix, nonce=21)}), "save")

    graph = training_nodes(seed=13, learning_rate=0.5, temporal=False)
    graph.update(sampling_nodes(["spatial", 0], prefix, "_spatial", nonce=22))
    spatial = load_saved_latent(comfy.run(graph, timeout=600), "save_spatial")
    assert (spatial - before).abs().max() > 1e-3, "the spatial LoRA changed nothing; the test proves nothing"

    graph = training_nodes(seed=13, learning_rate=0.5)
    graph["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["temporal", 2], "filename_prefix": prefix}}
    entry = comfy.run(graph, timeout=600)
    cached = next(data["nodes"] for event, data in entry["status"]["messages"] if event == "execution_cached")
    assert "spatial" in cached and "temporal" not in cached
    after = load_saved_latent(comfy.run({**base, **sampling_nodes(["unet", 0], prefix, nonce=23)}), "save")
    assert torch.equal(after, before), (after - before).abs().max()


def test_a_torch_compiled_model_trains_as_the_plain_one_and_samples_compiled(comfy):
    """Issue 24, the compiler-on path as far as a CPU goes: core TorchCompileModel (inductor) upstream of the pack.
    Classify Heads and training run the module itself (the compile wrapper is a sampling wrapper, as ComfyUI's
    model compiler only runs where a model's forward opts in), so the LoRA is bit-identical to the plain model's;
    the trained MODEL keeps the wrapper, and KSampler samples it compiled, as eager within float tolerance."""
    import torch
    from safetensors.torch import load_file

    prefix = unique("fym_compiled")
    loras = {}
    samples = {}
    for tag in ("plain", "compiled"):
        graph = training_nodes(seed=17)
        if tag == "compiled":
            graph["compile"] = {
                "class_type": "TorchCompileModel",
                "inputs": {"model": ["unet", 0], "backend": "inductor"},
            }
            for node in ("classify", "spatial"):
                graph[node]["inputs"]["model"] = ["compile", 0]
        graph["save"] = {
            "class_type": "FYM_SaveMotionLoRA",
            "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}_{tag}", "dtype": "fp32"},
        }
        graph.update(sampling_nodes(["temporal", 0], prefix, "_sample"))
        entry = comfy.run(graph, timeout=1200)
        loras[tag] = load_file(comfy.output_dir / saved_text(entry, "save"))
        samples[tag] = load_saved_latent(entry, "save_sample")
    assert loras["plain"].keys() == loras["compiled"].keys() and loras["plain"]
    for key, tensor in loras["plain"].items():
        assert torch.equal(tensor, loras["compiled"][key]), key
    assert torch.isfinite(samples["compiled"]).all()
    assert torch.allclose(samples["compiled"], samples["plain"], rtol=1e-3, atol=1e-4), (
        (samples["compiled"] - samples["plain"]).abs().max()
    )


def test_core_dataset_nodes_feed_prepare_reference_one_lora_per_clip(comfy, object_info):
    """Issue 24.5: core Load Video-Text (from Folder) and Sample Video Frame (ComfyUI 0.33+) feed Prepare
    Reference. Their outputs are lists, so ComfyUI runs the chain once per clip: a folder of motions gives one
    motion LoRA each (README recipe). The captions go to CLIPTextEncode in a real graph; the tests have no text
    encoder, so a random conditioning stands in for them."""
    if "LoadVideoTextDataSetFromFolder" not in object_info:
        pytest.skip("this ComfyUI has no dataset nodes (ComfyUI 0.33+)")
    prefix = unique("fym_dataset")
    graph = training_nodes(seed=19)
    graph["dataset"] = {"class_type": "LoadVideoTextDataSetFromFolder", "inputs": {"folder": TEST_DATASET_FOLDER}}
    graph["frames"] = {
        "class_type": "VideoFrameSample",
        "inputs": {"video": ["dataset", 0], "num_frames": 9, "strategy": "head", "seed": 0},
    }
    graph["prep"]["inputs"]["video"] = ["frames", 0]
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{prefix}", "dtype": "fp32"},
    }
    entry = comfy.run(graph, timeout=900)
    saved = entry["outputs"]["save"]["text"]
    assert len(saved) == 2 and len(set(saved)) == 2, saved
    assert all((comfy.output_dir / name).stat().st_size > 0 for name in saved), saved


def folder_training(folder: str, seed: int, frames: int = 9, unet: str = UNET_NAME, i2v: bool = False) -> dict:
    """Load Reference Clips on `folder` into Classify Heads and both training nodes (its first clip, the others as
    more_clips), the temporal LoRA saved."""
    graph = training_nodes(unet=unet, seed=seed)
    graph["text"] = {"class_type": "FYMTest_RandomTextEncoder", "inputs": {}}
    graph["prep"] = {
        "class_type": "FYM_LoadReferenceClips",
        "inputs": {
            "vae": ["vae", 0], "clip": ["text", 0], "folder": folder, "default_caption": "a square moves",
            "width": 64, "height": 64, "frames": frames, "start_frame": 0, "frame_step": 1,
            "resize_mode": "center crop", "image_to_video": i2v,
        },
    }  # fmt: skip
    del graph["video"], graph["caption"]
    for node in ("classify", "spatial", "temporal"):
        graph[node]["inputs"]["positive"] = ["prep", 2]
    for node in ("spatial", "temporal"):
        graph[node]["inputs"]["more_clips"] = ["prep", 3]
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["temporal", 1], "filename_prefix": f"loras/{unique('fym_folder')}", "dtype": "fp32"},
    }
    graph["listed"] = {"class_type": "PreviewAny", "inputs": {"source": ["prep", 4]}}
    return graph


def saved_clips(comfy, entry) -> int:
    from safetensors import safe_open

    with safe_open(str(comfy.output_dir / saved_text(entry, "save")), "pt") as handle:
        return json.loads(handle.metadata()["fym"])["clips"]


def test_load_reference_clips_trains_on_a_folder_and_a_requeue_encodes_nothing(comfy):
    """Issue 23: a folder of videos with .txt captions feeds the training nodes as several clips; re-queued
    unchanged, the node does not run again."""
    entry = comfy.run(folder_training(TEST_DATASET_FOLDER, seed=31), timeout=900)
    assert saved_clips(comfy, entry) == 2
    listed = entry["outputs"]["listed"]["text"][0]
    assert "a.mp4: 'a square moves (a)'" in listed and "b.mp4: 'a square moves (b)'" in listed, listed
    again = comfy.run(folder_training(TEST_DATASET_FOLDER, seed=32), timeout=900)  # retrains, same folder
    cached = next(data["nodes"] for event, data in again["status"]["messages"] if event == "execution_cached")
    assert "prep" in cached and "spatial" not in cached


def test_load_reference_clips_with_one_clip_and_no_caption_and_for_an_i2v_model(comfy):
    """One clip, no .txt: the default caption; on the tiny I2V model, each clip's first frame as WanImageToVideo
    gives it (image_to_video on), without which the I2V model refuses the clip."""
    folder = Path(comfy.input_dir) / unique("fym_one_clip")
    folder.mkdir()
    (folder / "only.mp4").write_bytes((Path(comfy.input_dir) / TEST_CLIP_NAME).read_bytes())
    entry = comfy.run(folder_training(folder.name, seed=33), timeout=900)
    assert saved_clips(comfy, entry) == 1
    assert entry["outputs"]["listed"]["text"][0] == "only.mp4: 'a square moves'"
    entry = comfy.run(folder_training(folder.name, seed=34, unet=UNET_I2V_HIGH_NAME, i2v=True), timeout=900)
    assert saved_clips(comfy, entry) == 1
    message = run_expecting_error(comfy, folder_training(folder.name, seed=35, unet=UNET_I2V_HIGH_NAME))
    assert "needs the reference's first frame" in message, message


def test_load_reference_clips_names_the_corrupt_or_short_video_before_any_training(comfy):
    folder = Path(comfy.input_dir) / unique("fym_corrupt")
    folder.mkdir()
    (folder / "good.mp4").write_bytes((Path(comfy.input_dir) / TEST_CLIP_NAME).read_bytes())
    (folder / "bad.mp4").write_bytes(b"not a video at all" * 100)
    message = run_expecting_error(comfy, folder_training(folder.name, seed=36))
    assert "FYM Load Reference Clips: bad.mp4 cannot be read as a video" in message, message
    message = run_expecting_error(comfy, folder_training(TEST_DATASET_FOLDER, seed=35, frames=801))
    assert "FYM Load Reference Clips: a.mp4: the video gives" in message, message
    empty = Path(comfy.input_dir) / unique("fym_empty")
    empty.mkdir()
    message = run_expecting_error(comfy, folder_training(empty.name, seed=36))
    assert "holds no videos" in message, message


# -- errors -------------------------------------------------------------------------------------------------------


def test_bad_inputs_width_not_multiple_of_16(comfy):
    graph = reference_nodes(width=500)
    graph["save"] = {
        "class_type": "FYMTest_LatentStats",
        "inputs": {"latent": ["prep", 0], "filename_prefix": "fym_bad_width"},
    }
    message = run_expecting_error(comfy, graph)
    assert "FYM Prepare Reference" in message and "multiple of 16" in message, message


def test_bad_inputs_core_range_checks_still_apply(comfy):
    """Prepare Reference's own validation must not switch off core's min/max checks (a validate_inputs taking
    **kwargs does). Core 0.3.64 does not check V3 combo values at all, so resize_mode is not tested."""
    graph = reference_nodes()
    graph["prep"]["inputs"].update(frame_step=0)
    graph["save"] = {
        "class_type": "FYMTest_LatentStats",
        "inputs": {"latent": ["prep", 0], "filename_prefix": "fym_bad_step"},
    }
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(graph)
    errors = {e["type"]: e for e in rejected.value.body["node_errors"]["prep"]["errors"]}
    assert errors["value_smaller_than_min"]["extra_info"]["input_name"] == "frame_step"


def test_bad_inputs_more_temporal_frames_than_the_clip(comfy):
    """Caught when the prompt is queued (the whole graph is known), before classification and the spatial stage.
    (A stride too long for the clip is not an error: the frames are then drawn one per segment.)"""
    graph = training_nodes(seed=0)
    graph["temporal"]["inputs"].update(frame_stride=5, frame_count=5)
    graph["loss"] = {
        "class_type": "LossGraphNode",
        "inputs": {"loss": ["temporal", 2], "filename_prefix": "fym_bad_window"},
    }
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(graph)
    message = json.dumps(rejected.value.body)
    assert "FYM Temporal LoRA Train" in message, message
    assert "frame_count 5 is more than the 3 latent frames (9 video frames) of its clip" in message, message
    assert "use 17 or more video frames" in message, message


def more_clip(graph: dict, frames: int, through_op: bool = False) -> None:
    """A second clip (Prepare Reference with `frames`, optionally through a non-FYM latent node) on both
    training nodes' more_clips."""
    graph["prep2"] = copy.deepcopy(graph["prep"])
    graph["prep2"]["inputs"]["frames"] = frames
    latent = ["prep2", 0]
    if through_op:
        graph["op2"] = {"class_type": "FYMTest_LatentOp", "inputs": {"latent": latent, "op": "identity", "nonce": 0}}
        latent = ["op2", 0]
    graph["more"] = {
        "class_type": "FYM_AddReferenceClip",
        "inputs": {"video_latent": latent, "frame_latents": ["prep2", 1], "positive": ["caption", 0]},
    }
    for node in ("spatial", "temporal"):
        graph[node]["inputs"]["more_clips"] = ["more", 0]


def temporal_asking(frame_count: int) -> dict:
    graph = training_nodes(seed=0)
    graph["temporal"]["inputs"].update(frame_stride=0, frame_count=frame_count)
    graph["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["temporal", 2], "filename_prefix": "fym_x"}}
    return graph


def test_bad_inputs_too_short_clips_are_caught_before_any_work(comfy):
    """Code review 25.6: every clip of a Temporal LoRA Train node is checked against its frame_count before
    classification and the spatial stage: at queue time where the graph says the clip's length, otherwise by
    the first FYM node that sees the clip (Prepare Reference before its VAE encode, Classify Heads, Add
    Reference Clip)."""
    graph = temporal_asking(3)  # the main clip has 3 latent frames: enough
    more_clip(graph, frames=5)  # 2 latent frames
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(graph)
    message = json.dumps(rejected.value.body)
    assert "frame_count 3 is more than the 2 latent frames (5 video frames) of more_clips' clip 1" in message

    graph = temporal_asking(4)
    graph["prep"]["inputs"]["frames"] = 0  # all the clip's 9 frames: known only when the video is read
    message = run_expecting_error(comfy, graph)
    assert message.startswith("FYM_PrepareReference: FYM Prepare Reference: this clip has 3 latent frames"), message
    assert "FYM Temporal LoRA Train (node temporal) trains on 4 per step" in message, message

    graph = temporal_asking(4)
    graph["op"] = {"class_type": "FYMTest_LatentOp", "inputs": {"latent": ["prep", 0], "op": "identity", "nonce": 0}}
    for node in ("classify", "temporal"):  # another latent source: the graph does not say its length
        graph[node]["inputs"]["video_latent"] = ["op", 0]
    message = run_expecting_error(comfy, graph)
    assert message.startswith("FYM_ClassifyHeads: FYM Classify Heads: this clip has 3 latent frames"), message

    graph = temporal_asking(3)
    more_clip(graph, frames=5, through_op=True)
    message = run_expecting_error(comfy, graph)
    assert message.startswith("FYM_AddReferenceClip: FYM Add Reference Clip: this clip has 2 latent frames"), message
    assert "this is more_clips' clip 1 there" in message, message


def test_a_save_prefix_outside_the_output_folder_is_refused_before_any_training(comfy):
    """Issue 21.5: a filename_prefix that leaves output/ (Save Motion LoRA) or output/fym_head_maps (Save Head
    Map) used to be refused by ComfyUI only when saving, after the whole training. A typed prefix is now refused
    when the prompt is queued; a linked one (known only when it arrives) by the save node, naming it, with
    nothing written outside the folder."""
    escape = unique("fym_escape")
    for node, prefix in (
        ("FYM_SaveMotionLoRA", f"../../{escape}"),
        ("FYM_SaveMotionLoRA", f"loras/../../{escape}"),
        ("FYM_SaveMotionLoRA", f"/tmp/{escape}"),
        ("FYM_SaveHeadMap", f"../{escape}"),
    ):
        graph = training_nodes(seed=0)
        source = ["temporal", 1] if node == "FYM_SaveMotionLoRA" else ["classify", 0]
        name = "motion_lora" if node == "FYM_SaveMotionLoRA" else "head_map"
        graph["save"] = {"class_type": node, "inputs": {name: source, "filename_prefix": prefix}}
        with pytest.raises(PromptRejected) as rejected:
            comfy.queue(graph)
        message = json.dumps(rejected.value.body)
        shown = "Save Motion LoRA" if node == "FYM_SaveMotionLoRA" else "Save Head Map"
        assert f"FYM {shown}: filename_prefix {prefix!r} does not name a file inside output" in message, message

    graph = training_nodes(seed=0, temporal=False)
    graph["prefix"] = {"class_type": "PrimitiveString", "inputs": {"value": f"../{escape}"}}
    graph["save"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["spatial", 1], "filename_prefix": ["prefix", 0]},
    }
    message = run_expecting_error(comfy, graph)
    assert f"FYM Save Motion LoRA: filename_prefix '../{escape}' does not name a file inside output" in message
    assert not list(comfy.output_dir.parent.rglob(f"{escape}*")), "a file was written outside output/"


def test_the_memory_plan_warns_before_training_and_refuses_far_over_the_card(comfy):
    """Issue 22: a training node plans its peak memory before loading the model; on a card that is too small it
    warns, naming the change that fits, and trains; over the card by more than 1.5x it refuses before any work."""
    prefix = unique("fym_memory")

    def spatial_training(seed, card_mib):
        graph = training_nodes(seed=seed, temporal=False)
        graph["card"] = {"class_type": "FYMTest_CardSize", "inputs": {"model": ["unet", 0], "card_mib": card_mib}}
        graph["spatial"]["inputs"]["model"] = ["card", 0]
        graph["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["spatial", 2], "filename_prefix": prefix}}
        return graph

    def log_since(start):
        return Path(comfy.log_path).read_text(errors="replace")[start:]

    start = len(Path(comfy.log_path).read_text(errors="replace"))
    comfy.run(spatial_training(seed=21, card_mib=1e6), timeout=600)
    plans = re.findall(r"memory plan: ([0-9.]+) (GiB|MiB) at peak", log_since(start))
    assert plans, log_since(start)[-3000:]
    peak_mib = float(plans[-1][0]) * (1024 if plans[-1][1] == "GiB" else 1)
    assert "does not fit" not in log_since(start)

    start = len(Path(comfy.log_path).read_text(errors="replace"))
    comfy.run(spatial_training(seed=22, card_mib=0.8 * peak_mib), timeout=600)  # warned, then trained
    warned = log_since(start)
    assert (
        "FYM Spatial LoRA Train: the planned peak is" in warned and "to fit: turn on gradient_checkpointing" in warned
    )

    message = run_expecting_error(comfy, spatial_training(seed=23, card_mib=0.5 * peak_mib))
    assert "FYM Spatial LoRA Train" in message and "over the card by more than 1.5x" in message, message
    assert "gradient_checkpointing" in message  # the change that fits, or all the planner tried


def test_head_maps_save_atomically_and_load_only_from_their_folder(comfy):
    """Code review 25.11: Save Head Map writes a new file (no .part left), Load Head Map reads it back by name,
    and a name that leads out of output/fym_head_maps (possible through the API) is refused, not read."""
    graph = training_nodes(seed=0, temporal=False)
    del graph["spatial"]
    prefix = unique("fym_map")
    graph["save"] = {
        "class_type": "FYM_SaveHeadMap",
        "inputs": {"head_map": ["classify", 0], "filename_prefix": prefix},
    }
    relative = saved_text(comfy.run(graph, timeout=300), "save")
    folder = comfy.output_dir / "fym_head_maps"
    assert relative.startswith("fym_head_maps/") and (comfy.output_dir / relative).is_file(), relative
    assert not list(folder.glob("*.part"))
    saved = (comfy.output_dir / relative).read_text()
    (comfy.output_dir / "outside.json").write_text(saved)  # a valid head map, but outside the folder

    def load(file):
        return {
            "load": {"class_type": "FYM_LoadHeadMap", "inputs": {"file": file, "alpha": 0.0, "overrides": ""}},
            "save": {"class_type": "FYM_SaveHeadMap", "inputs": {"head_map": ["load", 0], "filename_prefix": prefix}},
        }

    again = saved_text(comfy.run(load(Path(relative).name), timeout=300), "save")
    assert json.loads((comfy.output_dir / again).read_text()) == json.loads(saved)
    message = run_expecting_error(comfy, load("../outside.json"))
    ours = "FYM Load Head Map" in message and "is not a head map file in output/fym_head_maps" in message
    assert ours or "value_not_in_list" in message, message  # newer hosts check combo values themselves


def test_temporal_training_refuses_a_model_without_the_spatial_lora(comfy):
    graph = training_nodes(seed=0)
    graph["temporal"]["inputs"]["model"] = ["unet", 0]
    graph["loss"] = {"class_type": "LossGraphNode", "inputs": {"loss": ["temporal", 2], "filename_prefix": "fym_x"}}
    message = run_expecting_error(comfy, graph)
    assert "FYM Temporal LoRA Train: the MODEL carries no spatial LoRA" in message, message


def test_bad_inputs_load_motion_lora_on_other_lora(comfy, comfy_models):
    import torch
    from safetensors.torch import save_file

    name = f"{unique('not_a_motion_lora')}.safetensors"
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(256, 4),
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 256),
        },
        str(comfy_models.loras_dir / name),
    )
    graph = {
        "load": {"class_type": "FYM_LoadMotionLoRA", "inputs": {"lora_name": name}},
        "save": {
            "class_type": "FYM_SaveMotionLoRA",
            "inputs": {"motion_lora": ["load", 0], "filename_prefix": "loras/fym_never_written"},
        },
    }
    message = run_expecting_error(comfy, graph)
    assert "FYM Load Motion LoRA" in message and "not a Follow-Your-Motion motion LoRA" in message, message


def test_bad_inputs_head_map_from_another_model(comfy):
    graph = training_nodes(seed=0, temporal=False)
    graph["unet3"] = {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_3LAYER_NAME, "weight_dtype": "default"}}
    graph["spatial"]["inputs"]["model"] = ["unet3", 0]  # head map classified on the 2-layer model
    graph["loss"] = {
        "class_type": "LossGraphNode",
        "inputs": {"loss": ["spatial", 2], "filename_prefix": "fym_bad_head_map"},
    }
    message = run_expecting_error(comfy, graph)
    assert "FYM Spatial LoRA Train" in message and "head map" in message, message


# -- caching ---------------------------------------------------------------------------------------------------------


def test_prepare_cached(comfy):
    """Queueing the same Prepare Reference twice encodes once: the second run lists it as cached."""
    import torch

    graph = reference_nodes(resize_mode="stretch", frames=5)  # settings no other test uses
    graph["save"] = {
        "class_type": "FYMTest_LatentStats",
        "inputs": {"latent": ["prep", 1], "filename_prefix": unique("fym_cached")},
    }
    runs = [comfy.run(graph, timeout=300) for _ in range(2)]
    cached = [next(d["nodes"] for e, d in run["status"]["messages"] if e == "execution_cached") for run in runs]
    assert "prep" not in cached[0]
    assert "prep" in cached[1]
    assert tuple(torch.load(saved_text(runs[0], "save"), weights_only=True).shape) == (5, 16, 1, 8, 8)


# -- defaults and cancel -------------------------------------------------------------------------------------------


def test_widget_defaults_are_the_fym_config_defaults(object_info):
    """One source of truth: what a user gets when dropping a node is fym.config's value."""
    from fym.config import (
        APPLY_STRENGTH,
        CHECKPOINT_EVERY,
        EXPERTS,
        LORA_FILE_DTYPE,
        PREVIEW_EVERY,
        SPATIAL,
        TEMPORAL,
        ClassifyConfig,
        expert_noise_range,
    )  # fmt: skip

    def defaults(node_id):
        inputs = object_info[node_id]["input"]
        return {name: spec[1].get("default") for part in inputs.values() for name, spec in part.items()
                if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict)}  # fmt: skip

    trained = {"steps": "steps", "rank": "rank", "lora_alpha": "alpha", "learning_rate": "learning_rate",
               "weight_decay": "weight_decay", "timestep_shift": "timestep_shift", "log_every": "log_every",
               "gradient_checkpointing": "gradient_checkpointing", "seed": "seed"}  # fmt: skip
    temporal_only = ["sparse_sampling", "frame_stride", "frame_count", "adaptive_rope", "motion_loss_weight"]
    for node_id, config, extra in (
        ("FYM_SpatialLoRATrain", SPATIAL, []),
        ("FYM_TemporalLoRATrain", TEMPORAL, temporal_only),
    ):
        shown = defaults(node_id)
        for widget, field in {**trained, **{name: name for name in extra}}.items():
            assert shown[widget] == getattr(config, field), (node_id, widget)
        assert expert_noise_range(shown["expert"], image_to_video=True) == config.noise_range, node_id
        assert (shown["preview_every"], shown["checkpoint_every"]) == (PREVIEW_EVERY, CHECKPOINT_EVERY), node_id
        assert shown["resume_from"] == "none", node_id
    classify = defaults("FYM_ClassifyHeads")
    config = ClassifyConfig()
    assert (classify["alpha"], classify["num_queries"], classify["band"], classify["seed"]) == (
        config.alpha, config.num_queries, config.band, config.seed)  # fmt: skip
    assert classify["expert"] == EXPERTS[0]
    assert defaults("FYM_ApplyMotionLoRA")["strength"] == APPLY_STRENGTH
    assert defaults("FYM_SaveMotionLoRA")["dtype"] == LORA_FILE_DTYPE


def test_cancel_during_training_saves_nothing_and_leaves_the_model_unpatched(comfy):
    import time

    import torch

    prefix = unique("fym_cancel")
    base = {"unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET_NAME, "weight_dtype": "default"}}}
    before = load_saved_latent(comfy.run({**base, **sampling_nodes(["unet", 0], prefix, nonce=11)}), "save")

    graph = training_nodes(seed=9, temporal=False)
    graph["spatial"]["inputs"]["steps"] = 100000  # far longer than the test waits
    graph["save_lora"] = {
        "class_type": "FYM_SaveMotionLoRA",
        "inputs": {"motion_lora": ["spatial", 1], "filename_prefix": f"loras/{prefix}"},
    }
    log_start = comfy.log_path.stat().st_size
    prompt_id = comfy.queue(graph)
    deadline = time.monotonic() + 180
    while "spatial LoRA step" not in comfy.log_path.read_bytes()[log_start:].decode(errors="replace"):
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.5)  # fym logs every step here (log_every 1): the loop is running
    comfy._request("POST", "/interrupt", {})
    entry = comfy.wait(prompt_id, timeout=120)
    events = [event for event, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in events, events
    assert not list((comfy.output_dir / "loras").glob(f"{prefix}*")), "a cancelled run saved a LoRA"
    after = load_saved_latent(comfy.run({**base, **sampling_nodes(["unet", 0], prefix, nonce=12)}), "save")
    assert torch.equal(before, after), (before - after).abs().max()
