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
        folder, filename, counter, _, _ = folder_paths.get_save_image_path(
            f"fym_test/{filename_prefix}", folder_paths.get_output_directory()
        )
        path = os.path.join(folder, f"{filename}_{counter:05}_.pt")
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

        return io.NodeOutput(
            {"samples": video},
            {"samples": frames},
            conditioning(world.caption(reference)),
            conditioning(world.caption(reference.with_appearances(targets))),
            conditioning(world.empty_caption()),
        )


class FYMTestExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [RandomConditioning, SyntheticVideo, LatentStats, LatentOp, MotionBenchClip]


async def comfy_entrypoint() -> FYMTestExtension:
    return FYMTestExtension()
