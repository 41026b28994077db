"""Reference clips: Prepare Reference turns a VIDEO or an IMAGE batch into the latents the training nodes need;
Add Reference Clip collects more clips of the same motion for them."""

from __future__ import annotations

from dataclasses import dataclass

import comfy.utils
import torch
from comfy_api.latest import io

from .queue_checks import check_clip_frames
from .types import CATEGORY, ReferenceClipsType

NODE = "FYM Prepare Reference"
RESIZE_MODES = ("center crop", "stretch")


def select_frames(images: torch.Tensor, frames: int, start_frame: int, frame_step: int) -> torch.Tensor:
    """images (N, H, W, C) -> (frames, H, W, 3): every frame_step-th from start_frame; frames 0 = as many as
    fit, rounded down to 4n+1."""
    picked = images[start_frame::frame_step, :, :, :3]
    available = picked.shape[0]
    if frames == 0:
        frames = (available - 1) // 4 * 4 + 1
    if available < max(frames, 5):
        raise ValueError(
            f"{NODE}: the video gives {available} frames from frame {start_frame} every {frame_step}, but "
            f"{max(frames, 5)} are needed; lower 'frames', 'start_frame' or 'frame_step'"
        )
    return picked[:frames]


def resize(images: torch.Tensor, width: int, height: int, mode: str) -> torch.Tensor:
    """(F, H, W, 3) -> (F, height, width, 3); 'center crop' keeps the aspect ratio, 'stretch' does not."""
    samples = comfy.utils.common_upscale(
        images.movedim(-1, 1), width, height, "bilinear", "center" if mode == "center crop" else "disabled"
    )
    return samples.movedim(1, -1).clamp(0, 1)


class PrepareReference(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_PrepareReference",
            display_name="Prepare Reference (Follow-Your-Motion)",
            category=f"{CATEGORY}/data",
            description="Resizes the reference clip and encodes it with the Wan VAE: a video latent for Classify "
            "Heads and the temporal LoRA, and one single-frame latent per frame for the spatial LoRA.",
            inputs=[
                io.Vae.Input(
                    "vae",
                    tooltip="The model's VAE: wan_2.1_vae for Wan 2.1 and Wan 2.2 A14B, wan2.2_vae for Wan 2.2 TI2V 5B.",
                ),
                io.Video.Input(
                    "video", optional=True, tooltip="Reference clip from core Load Video. Give this or 'images'."
                ),
                io.Image.Input(
                    "images",
                    optional=True,
                    tooltip="Reference frames as an IMAGE batch (e.g. VideoHelperSuite Load Video). Used when 'video' is not connected.",
                ),
                io.Int.Input(
                    "width",
                    default=512,
                    min=16,
                    max=2048,
                    step=16,
                    tooltip="Output width in pixels, a multiple of 16 (32 for the Wan 2.2 VAE; paper: 512). For image-to-video, give WanImageToVideo the same.",
                ),
                io.Int.Input(
                    "height",
                    default=512,
                    min=16,
                    max=2048,
                    step=16,
                    tooltip="Output height in pixels, a multiple of 16 (32 for the Wan 2.2 VAE; paper: 512). For image-to-video, give WanImageToVideo the same.",
                ),
                io.Int.Input(
                    "frames",
                    default=81,
                    min=0,
                    max=1025,
                    step=1,  # the frontend snaps INTs to min + k * step: with step 4 from 0, 4n+1 is unreachable
                    tooltip="Frames to use, 4n+1 as Wan needs (81 = Wan's native 5 s at 16 fps; 0 = as many as the clip has, rounded down to 4n+1). Fewer frames need less memory.",
                ),
                io.Int.Input("start_frame", default=0, min=0, max=100000, tooltip="First frame of the clip to use."),
                io.Int.Input(
                    "frame_step",
                    default=1,
                    min=1,
                    max=16,
                    tooltip="Use every N-th frame (2 halves a 30 fps clip to about Wan's 16 fps).",
                ),
                io.Combo.Input(
                    "resize_mode",
                    options=list(RESIZE_MODES),
                    default="center crop",
                    tooltip="center crop keeps the aspect ratio and cuts the sides; stretch fits the whole frame and distorts it.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "video_latent",
                    display_name="video_latent",
                    tooltip="(1, C, (frames-1)/4+1, height/8, width/8): the clip encoded as one video (Wan 2.2 VAE: C = 48 and /16).",
                ),
                io.Latent.Output(
                    "frame_latents",
                    display_name="frame_latents",
                    tooltip="(frames, C, 1, height/8, width/8): every frame encoded alone, as an image latent, for the spatial LoRA.",
                ),
                io.Image.Output(
                    "resized_frames",
                    display_name="frames",
                    tooltip="The resized frames that were encoded; for image-to-video, the first (ImageFromBatch 0) is WanImageToVideo's start_image.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, width, height, frames, resize_mode):  # no **kwargs: it turns off core's min/max checks
        if resize_mode not in RESIZE_MODES:
            return f"{NODE}: resize_mode must be one of {', '.join(RESIZE_MODES)}; got {resize_mode!r}"
        for name, value in (("width", width), ("height", height)):
            if value % 16:
                return f"{NODE}: {name} {value} is not a multiple of 16; use {value // 16 * 16 or 16} or {value // 16 * 16 + 16}"
        if frames and frames % 4 != 1:
            return f"{NODE}: frames must be 4n+1 for Wan; got {frames}, use {frames // 4 * 4 + 1}"
        return True

    @classmethod
    def execute(cls, vae, width, height, frames, start_frame, frame_step, resize_mode, video=None, images=None):
        if video is not None:
            images = video.get_components().images
        if images is None:
            raise ValueError(f"{NODE}: connect a reference clip to 'video' (core Load Video) or 'images'")
        message = cls.validate_inputs(width, height, frames, resize_mode)
        if message is not True:
            raise ValueError(message)
        ratio = vae.downscale_ratio[-1] if isinstance(vae.downscale_ratio, tuple) else vae.downscale_ratio
        multiple = 2 * ratio  # one Wan patch (2 x 2 latent pixels) per multiple
        for name, value in (("width", width), ("height", height)):
            if value % multiple:
                raise ValueError(
                    f"{NODE}: with this VAE ({ratio}x smaller latents) {name} must be a multiple of {multiple}; "
                    f"use {value // multiple * multiple or multiple} or {value // multiple * multiple + multiple}"
                )
        picked = select_frames(images, frames, start_frame, frame_step)
        check_clip_frames(NODE, (picked.shape[0] - 1) // 4 + 1)  # a Temporal LoRA Train's need, before the encode
        clip = resize(picked, width, height, resize_mode)
        video_latent = vae.encode(clip)
        frame_latents = torch.cat([vae.encode(clip[i : i + 1]) for i in range(clip.shape[0])])
        return io.NodeOutput({"samples": video_latent}, {"samples": frame_latents}, clip)


@dataclass(frozen=True)
class ReferenceClip:
    """One more clip of the motion: Prepare Reference's two latents and the clip's caption (CONDITIONING)."""

    video_latent: dict
    frame_latents: dict
    positive: list


class AddReferenceClip(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_AddReferenceClip",
            display_name="Add Reference Clip (Follow-Your-Motion)",
            category=f"{CATEGORY}/data",
            description="Another clip of the same motion for the training nodes' more_clips; chain one per clip. Each "
            "step trains on one clip drawn at random with its own caption, so with clips that look different the LoRA "
            "learns the motion they share and not one clip's look (as MotionDirector trains on several clips). What "
            "it measured on MotionBench: the README's MotionBench section.",
            inputs=[
                io.Latent.Input("video_latent", tooltip="This clip's video_latent from its Prepare Reference."),
                io.Latent.Input("frame_latents", tooltip="This clip's frame_latents from the same Prepare Reference."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="This clip's caption (CLIPTextEncode). For an I2V model: WanImageToVideo's positive with "
                    "this clip's first frame, as for the main clip.",
                ),
                ReferenceClipsType.Input("clips", optional=True, tooltip="Clips added before (chain the nodes)."),
            ],
            outputs=[
                ReferenceClipsType.Output(
                    "all_clips",
                    display_name="clips",
                    tooltip="To a training node's more_clips, or the next Add Reference Clip.",
                )
            ],
        )

    @classmethod
    def execute(cls, video_latent, frame_latents, positive, clips=None):
        check_clip_frames("FYM Add Reference Clip", video_latent["samples"].shape[2])
        return io.NodeOutput([*(clips or []), ReferenceClip(video_latent, frame_latents, positive)])


NODES = [PrepareReference, AddReferenceClip]
