"""Test-only ComfyUI node pack used by the FollowYourMotion integration tests.

Loaded by a real ComfyUI server (via a symlink in the test custom_nodes dir),
it stands in for things the tiny test setup lacks: a text encoder
(`FYMTest_RandomConditioning`), an input video (`FYMTest_SyntheticVideo`),
a way to read a LATENT back from the server (`FYMTest_LatentStats`), a
LATENT pass-through that defeats the output cache or poisons the latent
(`FYMTest_LatentOp`) and MotionBench-mini reference clips with their captions
(`FYMTest_MotionBenchClip`).
"""

import os
import sys
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import ComfyExtension, io
from typing_extensions import override


def moving_square_video(frames: int, height: int, width: int, seed: int) -> torch.Tensor:
    """[frames, height, width, 3] float video in 0..1: a bright square moving
    left to right over a dark, slightly noisy background."""
    generator = torch.Generator().manual_seed(seed)
    video = 0.1 + 0.02 * torch.rand(frames, height, width, 3, generator=generator)
    side = max(2, min(height, width) // 4)
    top = (height - side) // 2
    for f in range(frames):
        left = round(f * (width - side) / max(1, frames - 1))
        video[f, top : top + side, left : left + side, :] = 0.9
    return video


class RandomConditioning(io.ComfyNode):
    """Seeded random text-encoder output, since the tests have no text encoder."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_RandomConditioning",
            category="FYM/test",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Int.Input("length", default=512, min=1, max=4096),
                io.Int.Input("dim", default=4096, min=1, max=8192),
            ],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, seed, length, dim) -> io.NodeOutput:
        generator = torch.Generator().manual_seed(seed)
        context = torch.randn(1, length, dim, generator=generator) * 0.1
        return io.NodeOutput([[context, {}]])


class ClipVisionOutput:
    """What CLIPVisionEncode returns, as far as Wan 2.1 I2V reads it (penultimate_hidden_states)."""

    def __init__(self, hidden: torch.Tensor) -> None:
        self.penultimate_hidden_states = hidden

    def get(self, key, default=None):
        return getattr(self, key, default)

    def __getitem__(self, key):
        return getattr(self, key)


class RandomClipVision(io.ComfyNode):
    """Seeded random CLIP-vision output (1, 257, 1280), since the tests have no CLIP vision model."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_RandomClipVision",
            category="FYM/test",
            inputs=[io.Int.Input("seed", default=0, min=0, max=2**31 - 1)],
            outputs=[io.ClipVisionOutput.Output()],
        )

    @classmethod
    def execute(cls, seed) -> io.NodeOutput:
        generator = torch.Generator().manual_seed(seed)
        return io.NodeOutput(ClipVisionOutput(torch.randn(1, 257, 1280, generator=generator) * 0.1))


class SyntheticVideo(io.ComfyNode):
    """IMAGE batch of a moving square, so workflows need no input file."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_SyntheticVideo",
            category="FYM/test",
            inputs=[
                io.Int.Input("frames", default=9, min=1, max=1024),
                io.Int.Input("width", default=64, min=8, max=4096, step=8),
                io.Int.Input("height", default=64, min=8, max=4096, step=8),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, frames, width, height, seed) -> io.NodeOutput:
        return io.NodeOutput(moving_square_video(frames, height, width, seed))


def output_file(prefix: str, extension: str) -> str:
    """A new file <output>/fym_test/<prefix>_NNNNN_.<extension> (the tests read it back by the ui text)."""
    folder, filename, counter, _, _ = folder_paths.get_save_image_path(
        f"fym_test/{prefix}", folder_paths.get_output_directory()
    )
    return os.path.join(folder, f"{filename}_{counter:05}_.{extension}")


class LatentStats(io.ComfyNode):
    """Output node: saves latent["samples"] to <output>/fym_test/ with
    torch.save and reports the file path as ui text."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_LatentStats",
            category="FYM/test",
            inputs=[
                io.Latent.Input("latent"),
                io.String.Input("filename_prefix", default="latent"),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, latent, filename_prefix) -> io.NodeOutput:
        path = output_file(filename_prefix, "pt")
        torch.save(latent["samples"].detach().cpu().contiguous(), path)
        return io.NodeOutput(ui={"text": [path]})


class LatentOp(io.ComfyNode):
    """LATENT -> LATENT: 'identity' passes it through unchanged (a new `nonce`
    makes every node downstream re-run while everything upstream stays
    cached); 'nan' fills the samples with NaN (to make a training run fail)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_LatentOp",
            category="FYM/test",
            inputs=[
                io.Latent.Input("latent"),
                io.Combo.Input("op", options=["identity", "nan"], default="identity"),
                io.Int.Input("nonce", default=0, min=0, max=2**31 - 1),
            ],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, latent, op, nonce) -> io.NodeOutput:
        if op == "nan":
            return io.NodeOutput({**latent, "samples": torch.full_like(latent["samples"], float("nan"))})
        return io.NodeOutput(latent)


def motionbench_world():
    """bench.motionbench.world from this repository (this folder is symlinked into custom_nodes)."""
    root = str(Path(__file__).resolve().parents[3])
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench.motionbench import world

    return world


class MotionBenchClip(io.ComfyNode):
    """A MotionBench-mini reference clip as ComfyUI LATENTs (the world's latents are model-space, so they go
    through Wan 2.1's process_out, as a VAE encode would give them), with its caption, the target caption
    (same motion, new objects) and the empty caption, since the tests have no text encoder."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_MotionBenchClip",
            category="FYM/test",
            inputs=[io.Combo.Input("clip", options=[name for name, _, _ in motionbench_world().reference_clips()])],
            outputs=[
                io.Latent.Output("video_latent"),
                io.Latent.Output("frame_latents"),
                io.Conditioning.Output("reference_caption"),
                io.Conditioning.Output("target_caption"),
                io.Conditioning.Output("empty_caption"),
                io.Latent.Output("target_video_latent"),
            ],
        )

    @classmethod
    def execute(cls, clip) -> io.NodeOutput:
        import comfy.latent_formats

        world = motionbench_world()
        _, reference, targets = next(entry for entry in world.reference_clips() if entry[0] == clip)
        video = comfy.latent_formats.Wan21().process_out(world.render(reference)[None])  # (1, 16, T, H, W)
        frames = video[0].transpose(0, 1).unsqueeze(2).contiguous()  # (T, 16, 1, H, W)

        def conditioning(context):
            return [[context[None], {}]]

        target = comfy.latent_formats.Wan21().process_out(world.render(reference.with_appearances(targets))[None])
        return io.NodeOutput(
            {"samples": video},
            {"samples": frames},
            conditioning(world.caption(reference)),
            conditioning(world.caption(reference.with_appearances(targets))),
            conditioning(world.empty_caption()),
            {"samples": target},
        )


class MotionBenchFirstFrame(io.ComfyNode):
    """What core WanImageToVideo does, in MotionBench's latent world (which has no VAE): the positive gets
    concat_latent_image = the latent's frame 0 followed by empty frames (the world's zeros stand for the grey
    frames a VAE would encode) and concat_mask = 0 on frame 0 (given), 1 elsewhere."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_MotionBenchFirstFrame",
            category="FYM/test",
            inputs=[io.Conditioning.Input("positive"), io.Latent.Input("video_latent")],
            outputs=[io.Conditioning.Output("conditioning")],
        )

    @classmethod
    def execute(cls, positive, video_latent) -> io.NodeOutput:
        import comfy.latent_formats
        import node_helpers

        wan = comfy.latent_formats.Wan21()
        world_latent = wan.process_in(video_latent["samples"])
        image = torch.zeros_like(world_latent)
        image[:, :, 0] = world_latent[:, :, 0]
        mask = torch.ones(1, 1, *image.shape[2:])
        mask[:, :, 0] = 0.0
        values = {"concat_latent_image": wan.process_out(image), "concat_mask": mask}
        return io.NodeOutput(node_helpers.conditioning_set_values(positive, values))


def pack_module(name: str):
    """A module of the Follow-Your-Motion pack as the server loaded it (e.g. "nodes.wan_host")."""
    found = [m for key, m in sys.modules.items() if key.endswith(f"FollowYourMotion.{name}")]
    assert found, f"the Follow-Your-Motion pack's {name} is not loaded"
    return found[0]


class HostCheck(io.ComfyNode):
    """Output node: measures the pack's ComfyUI host from inside the server and saves the numbers as JSON.

    check "export": trains a spatial LoRA a few steps through training_host (in the MODEL's dtype, or
    compute_dtype), then compares what it changes in the velocity while attached (the trained model) with
    what the exported file changes when applied through Apply Motion LoRA (ComfyUI's own patching).
    check "adaptive_rope": the velocity of latent frames 0 and 2 at their full-clip positions, against the
    same frames run with stock RoPE rows 0 and 2 taken from a 3-frame rope_encode, and against positions 0, 1.
    check "dynamic_delegates": how many copies of the weights training reads from disk for a DynamicVRAM MODEL
    and a LoRA'd clone of it (Spatial and Temporal LoRA Train on one expert). A stand-in: ComfyUI's own
    ModelPatcher with is_dynamic() true, since a CPU load never makes a ModelPatcherDynamic; clone() and the
    loader's cached_patcher_init (which reads the copies) and ModelPatcherDynamic.get_non_dynamic_delegate are
    the host's own.
    check "attention_path": what the pack's q/k capture (Classify Heads) and training attention get where the
    host's Wan hands q, k, v to attention in AttentionTensorContainers (ComfyUI after 0.33.0; the real Wan file
    on the overlay host), and whether `comfy.model_management.in_training` (which keeps newer hosts' fused
    kernels without a backward off the gradient path) is set in every block's forward and its checkpointed
    recompute during backward.
    """

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_HostCheck",
            category="FYM/test",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("video_latent"),
                io.Conditioning.Input("positive"),
                io.Combo.Input("check", options=["export", "adaptive_rope", "dynamic_delegates", "attention_path"]),
                io.Combo.Input("compute_dtype", options=["model", "bf16"]),
                io.String.Input("filename_prefix", default="host_check"),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, video_latent, positive, check, compute_dtype, filename_prefix) -> io.NodeOutput:
        import json

        if compute_dtype == "bf16":
            model = model.clone()
            model.set_model_compute_dtype(torch.bfloat16)
        run = {"export": cls.export, "adaptive_rope": cls.adaptive_rope, "dynamic_delegates": cls.dynamic_delegates,
               "attention_path": cls.attention_path}  # fmt: skip
        result = run[check](model, video_latent["samples"], positive[0][0])
        path = output_file(filename_prefix, "json")
        with open(path, "w") as handle:
            json.dump(result, handle)
        return io.NodeOutput(ui={"text": [path]})

    @staticmethod
    def export(model, samples, context):
        from dataclasses import replace

        wan_host, lora_nodes = pack_module("nodes.wan_host"), pack_module("nodes.lora")
        fym_config, fym_heads, fym_train = (pack_module(f"fym.{m}") for m in ("config", "heads", "train"))
        shape = wan_host.wan_shape(model, "test")
        sim_s, sim_t = ([[value] * shape.num_heads for _ in range(shape.num_layers)] for value in (1.0, 0.1))
        head_map = fym_heads.HeadMap(shape, sim_s, sim_t, 1.3, [0.5], 1, 64).with_changes(overrides="0.1=t")
        config = replace(fym_config.SPATIAL, steps=3, rank=4, alpha=4.0, learning_rate=5e-2)
        frames = samples[0].transpose(0, 1).unsqueeze(2)
        generator = torch.Generator().manual_seed(3)
        x0 = frames[:1]
        noise = torch.randn(x0.shape, generator=generator)
        sigma = torch.tensor([0.6])
        x_t = sigma * noise + (1 - sigma) * x0

        def velocity(host):
            latent = model.model.process_latent_in(x_t.clone()).to(host.device)
            return host.velocity(latent, sigma, context.to(host.device)).cpu()

        with wan_host.training_host(model, tuple(x0.shape), False) as host:
            latents = model.model.process_latent_in(frames.clone()).to(host.device)
            result = fym_train.train_stage(host, "spatial", latents, context.to(host.device), head_map, config,
                                           keep_attached=True)  # fmt: skip
            with torch.no_grad():
                trained = velocity(host)
                host.detach("fym_spatial")
                base = velocity(host)
            dtype = str(host.dtype)
        applied_model = lora_nodes.apply_motion_lora(model, result.lora, 1.0, "test")
        with wan_host.scoring_host(applied_model, tuple(x0.shape)) as host, torch.no_grad():
            applied = velocity(host)
        with wan_host.scoring_host(model, tuple(x0.shape)) as host, torch.no_grad():
            applied_base = velocity(host)
        live, exported = (trained - base).flatten(), (applied - applied_base).flatten()
        return {
            "compute_dtype": dtype,
            "cosine": float(torch.nn.functional.cosine_similarity(live, exported, dim=0)),
            "norm_ratio": float(exported.norm() / live.norm()),
            "effect": float(live.norm() / base.flatten().norm()),
        }

    @staticmethod
    def dynamic_delegates(model, samples, context):
        if not hasattr(model, "get_clone_model_override") or getattr(model, "cached_patcher_init", None) is None:
            return {"skipped": "this host has no DynamicVRAM (no clone model override or cached_patcher_init)"}
        wan_host = pack_module("nodes.wan_host")
        reads = []
        loader, arguments = model.cached_patcher_init[:2]

        def counted(*args, **kwargs):
            reads.append(kwargs.get("disable_dynamic"))
            return loader(*args, **kwargs)

        import comfy.model_patcher

        class StandIn(type(model)):
            non_dynamic_delegate_model = None
            get_non_dynamic_delegate = comfy.model_patcher.ModelPatcherDynamic.get_non_dynamic_delegate

            def is_dynamic(self):
                return True

        dynamic = StandIn(model.model, model.load_device, model.offload_device)
        dynamic.cached_patcher_init = (counted, arguments)
        lora_clone = dynamic.clone()  # what Apply Motion LoRA / Spatial LoRA Train's model output is
        lora_clone.add_patches({}, 1.0)
        modules = []
        x = samples[:, :, :1]
        for patcher in (dynamic, lora_clone, dynamic):
            with wan_host.training_host(patcher, tuple(x.shape), False) as host:
                modules.append(host.diffusion_model)
        return {"reads": len(reads), "disable_dynamic": reads, "shared": all(m is modules[0] for m in modules),
                "not_the_dynamic_one": modules[0] is not model.model.diffusion_model}  # fmt: skip

    @staticmethod
    def attention_path(model, samples, context):
        import inspect

        import comfy.ldm.modules.attention
        import comfy.ldm.wan.model
        import comfy.model_management

        wan_host = pack_module("nodes.wan_host")
        container = getattr(comfy.ldm.modules.attention, "AttentionTensorContainer", None)
        source = inspect.getsource(comfy.ldm.wan.model.WanSelfAttention.forward)
        taken = []
        if container is not None:
            stock_take = container.take
            container.take = lambda self: taken.append(1) or stock_take(self)
        x = samples[:, :, :2]
        sigma = torch.tensor([0.5])
        captured, flags = [], []
        try:
            with wan_host.scoring_host(model, tuple(x.shape)) as host:
                latent = model.model.process_latent_in(x.clone()).to(host.device)
                host.capture_qk(latent, sigma, context.to(host.device),
                                lambda layer, q, k: captured.append([layer, list(q.shape), list(k.shape)]))  # fmt: skip
                taken_capture = len(taken)
            with wan_host.training_host(model, tuple(x.shape), True) as host, host.checkpointing(True):
                hooks = [block.self_attn.register_forward_pre_hook(  # also runs in the recompute
                    lambda *_: flags.append(getattr(comfy.model_management, "in_training", None)))
                    for block in host.diffusion_model.blocks]  # fmt: skip
                latent = model.model.process_latent_in(x.clone()).to(host.device).requires_grad_(True)
                text = context.clone().to(host.device)  # not an inference tensor: autograd may keep it
                host.velocity(latent, sigma.clone(), text).square().mean().backward()
                for hook in hooks:
                    hook.remove()
                grad = latent.grad
        finally:
            if container is not None:
                container.take = stock_take
        return {
            "wan_wraps_in_containers": "AttentionTensorContainer" in source,
            "containers_taken": [taken_capture, len(taken) - taken_capture],
            "captured": captured,
            "tokens": x.shape[2] * (x.shape[3] // 2) * (x.shape[4] // 2),
            "in_training_flags": flags,
            "num_layers": len(model.model.diffusion_model.blocks),
            "grad_norm": float(grad.norm()),
            "host_has_training_flag": hasattr(comfy.model_management, "in_training"),
            "in_training_after": getattr(comfy.model_management, "in_training", False),
        }

    @staticmethod
    def adaptive_rope(model, samples, context):
        wan_host = pack_module("nodes.wan_host")
        x = samples[:, :, [0, 2]]
        sigma = torch.tensor([0.5])
        with wan_host.training_host(model, tuple(x.shape), False) as host, torch.no_grad():
            latent = model.model.process_latent_in(x.clone()).to(host.device)
            context = context.to(host.device)
            adaptive = host.velocity(latent, sigma, context, frame_positions=torch.tensor([0.0, 2.0]))
            stock = host.velocity(latent, sigma, context)
            dm = host.diffusion_model
            rope_encode = type(dm).rope_encode.__get__(dm)
            h, w = latent.shape[-2:]
            rows = rope_encode(3, h, w, device=host.device, dtype=torch.float32)
            per_frame = rows.shape[1] // 3
            expected_rows = torch.cat([rows[:, :per_frame], rows[:, 2 * per_frame :]], dim=1)
            dm.rope_encode = lambda *args, **kwargs: expected_rows
            try:
                expected = host.velocity(latent, sigma, context)
            finally:
                del dm.rope_encode
        return {
            "adaptive_vs_expected": float((adaptive - expected).abs().max()),
            "stock_vs_expected": float((stock - expected).abs().max()),
        }


class FP8CardUNETLoader(io.ComfyNode):
    """Core UNETLoader's load as on a card with fp8 compute (H100, RTX 4090): ComfyUI is told the CPU supports
    fp8 compute while it builds the model, so it picks the ops a user's fp8 card gets (0.3.64: scaled fp8 with
    fp8 matrix multiplication, torch._scaled_mm, which a CPU torch runs too)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_FP8CardUNETLoader",
            category="FYM/test",
            inputs=[
                io.String.Input("unet_name"),
                io.Combo.Input("weight_dtype", options=["default", "fp8_e4m3fn_fast"]),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, unet_name, weight_dtype) -> io.NodeOutput:
        from unittest import mock

        import comfy.model_management

        import nodes

        with mock.patch.object(comfy.model_management, "supports_fp8_compute", lambda *args, **kwargs: True):
            (model,) = nodes.UNETLoader().load_unet(unet_name, weight_dtype)
        return io.NodeOutput(model)


class HashedTextEncoder:
    """A CLIP stand-in for core CLIPTextEncode: each text becomes a fixed random (1, 512, 4096) embedding seeded by
    the text, so captions differ and repeat."""

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        import hashlib

        seed = int(hashlib.sha256(tokens.encode()).hexdigest()[:8], 16)
        context = torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(seed)) * 0.1
        return [[context, {}]]


class RandomTextEncoder(io.ComfyNode):
    """A CLIP output for nodes that encode captions themselves (Load Reference Clips), since the tests have no
    text encoder."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_RandomTextEncoder", category="FYM/test", inputs=[], outputs=[io.Clip.Output()]
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(HashedTextEncoder())


class CardSize(io.ComfyNode):
    """MODEL pass-through that makes comfy.model_management.get_total_memory report a card of card_mib while the
    prompt that ran it executes (the card a training node's memory plan is checked against)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYMTest_CardSize",
            category="FYM/test",
            inputs=[io.Model.Input("model"), io.Float.Input("card_mib", default=1024.0, min=0.0, max=1e9)],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, card_mib) -> io.NodeOutput:
        import comfy.model_management
        from server import PromptServer

        server = PromptServer.instance
        prompt_id = server.last_prompt_id
        stock = getattr(comfy.model_management.get_total_memory, "stock", comfy.model_management.get_total_memory)

        def total_memory(dev=None, torch_total_too=False):
            if server.last_prompt_id != prompt_id:
                return stock(dev, torch_total_too)
            card = int(card_mib * 2**20)
            return (card, card) if torch_total_too else card

        total_memory.stock = stock
        comfy.model_management.get_total_memory = total_memory
        return io.NodeOutput(model)


class FYMTestExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            RandomConditioning, RandomClipVision, SyntheticVideo, LatentStats, LatentOp, MotionBenchClip,
            MotionBenchFirstFrame, HostCheck, FP8CardUNETLoader, CardSize, RandomTextEncoder,
        ]  # fmt: skip


async def comfy_entrypoint() -> FYMTestExtension:
    return FYMTestExtension()
