"""Reference clips: Prepare Reference turns a VIDEO or an IMAGE batch into the latents the training nodes need;
Add Reference Clip collects more clips of the same motion for them; Load Reference Clips makes them of a folder."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass

import comfy.utils
import folder_paths
import torch
from comfy_api.latest import InputImpl, io

from ..fym.config import latent_frames, video_frames
from .queue_checks import check_clip_frames
from .types import CATEGORY, ReferenceClipsType

NODE = "FYM Prepare Reference"
RESIZE_MODES = ("center crop", "stretch")


def select_frames(
    images: torch.Tensor, frames: int, start_frame: int, frame_step: int, node: str = NODE
) -> torch.Tensor:
    """images (N, H, W, C) -> (frames, H, W, 3): every frame_step-th from start_frame; frames 0 = as many as
    fit, rounded down to 4n+1."""
    picked = images[start_frame::frame_step, :, :, :3]
    available = picked.shape[0]
    if frames == 0:
        frames = (available - 1) // 4 * 4 + 1
    if available < max(frames, 5):
        raise ValueError(
            f"{node}: the video gives {available} frames from frame {start_frame} every {frame_step}, but "
            f"{max(frames, 5)} are needed; lower 'frames', 'start_frame' or 'frame_step'"
        )
    return picked[:frames]


def resize(images: torch.Tensor, width: int, height: int, mode: str) -> torch.Tensor:
    """(F, H, W, 3) -> (F, height, width, 3); 'center crop' keeps the aspect ratio, 'stretch' does not."""
    samples = comfy.utils.common_upscale(
        images.movedim(-1, 1), width, height, "bilinear", "center" if mode == "center crop" else "disabled"
    )
    return samples.movedim(1, -1).clamp(0, 1)


def clip_inputs() -> list:
    """The size and frame widgets of Prepare Reference and Load Reference Clips."""
    return [
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
    ]


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
                *clip_inputs(),
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
        video_latent, frame_latents, clip = encode_clip(
            NODE, vae, images, width, height, frames, start_frame, frame_step, resize_mode
        )
        return io.NodeOutput({"samples": video_latent}, {"samples": frame_latents}, clip)


def encode_clip(node: str, vae, images, width, height, frames, start_frame, frame_step, resize_mode):
    """(video latent (1, C, T, h, w), frame latents (F, C, 1, h, w), resized frames (F, height, width, 3)) of a
    clip's images (N, H, W, C), with Prepare Reference's settings; errors name `node`."""
    ratio = vae.downscale_ratio[-1] if isinstance(vae.downscale_ratio, tuple) else vae.downscale_ratio
    multiple = 2 * ratio  # one Wan patch (2 x 2 latent pixels) per multiple
    for name, value in (("width", width), ("height", height)):
        if value % multiple:
            raise ValueError(
                f"{node}: with this VAE ({ratio}x smaller latents) {name} must be a multiple of {multiple}; "
                f"use {value // multiple * multiple or multiple} or {value // multiple * multiple + multiple}"
            )
    picked = select_frames(images, frames, start_frame, frame_step, node)
    check_clip_frames(node, latent_frames(picked.shape[0]))  # a Temporal LoRA Train's need, before the encode
    clip = resize(picked, width, height, resize_mode)
    video_latent = vae.encode(clip)
    frame_latents = torch.cat([vae.encode(clip[i : i + 1]) for i in range(clip.shape[0])])
    return video_latent, frame_latents, clip


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


FOLDER_NODE = "FYM Load Reference Clips"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
_ENCODED: OrderedDict = OrderedDict()  # (file hash, settings, VAE) -> (video latent, frame latents, first frame)
_KEEP_ENCODED = 32


def clip_folder(folder: str) -> str:
    """The absolute path of `folder` under ComfyUI's input directory; a ValueError if it leaves it or is missing."""
    root = os.path.realpath(folder_paths.get_input_directory())
    path = os.path.realpath(os.path.join(root, folder))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"{FOLDER_NODE}: folder {folder!r} is outside ComfyUI's input folder; give a folder in it")
    if not os.path.isdir(path):
        raise ValueError(f"{FOLDER_NODE}: there is no folder {folder!r} in ComfyUI's input folder ({root})")
    return path


def clip_files(path: str) -> list[str]:
    """The videos of a folder, by name."""
    return sorted(name for name in os.listdir(path) if name.lower().endswith(VIDEO_EXTENSIONS))


def _file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LoadReferenceClips(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_LoadReferenceClips",
            display_name="Load Reference Clips (folder) (Follow-Your-Motion)",
            category=f"{CATEGORY}/data",
            description="Every video of a folder in ComfyUI's input folder as clips of one motion, with same-name .txt "
            "captions (the musubi-tuner / ai-toolkit dataset layout): the first clip as Prepare Reference gives it, "
            "the others as more_clips for the training nodes. Each clip is encoded once (kept by its file's hash and "
            "the settings); an unchanged folder re-queued costs nothing.",
            inputs=[
                io.Vae.Input("vae", tooltip="The model's VAE, as for Prepare Reference."),
                io.Clip.Input("clip", tooltip="The model's text encoder (umt5_xxl for Wan): encodes each caption."),
                io.String.Input(
                    "folder",
                    default="motion_clips",
                    tooltip="A folder in ComfyUI's input folder holding the videos (.mp4, .mov, .webm, .mkv, .avi, "
                    ".gif) and optional same-name .txt captions.",
                ),
                io.String.Input(
                    "default_caption",
                    default="",
                    multiline=True,
                    tooltip="The caption of a video without a .txt beside it.",
                ),
                *clip_inputs(),
                io.Boolean.Input(
                    "image_to_video",
                    default=False,
                    tooltip="For Wan I2V models (Wan 2.2 A14B I2V): give each clip its own first frame as core "
                    "WanImageToVideo does. Off for text-to-video models and Wan 2.2 TI2V 5B.",
                ),
            ],
            outputs=[
                io.Latent.Output("video_latent", display_name="video_latent", tooltip="The first clip's video latent."),
                io.Latent.Output(
                    "frame_latents", display_name="frame_latents", tooltip="The first clip's single-frame latents."
                ),
                io.Conditioning.Output("positive", display_name="positive", tooltip="The first clip's caption."),
                ReferenceClipsType.Output(
                    "more_clips",
                    display_name="more_clips",
                    tooltip="The other clips, to the training nodes' more_clips.",
                ),
                io.String.Output(
                    "clips_used", display_name="clips", tooltip="The clips loaded, in order, with captions."
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, folder, width, height, frames, resize_mode):
        message = PrepareReference.validate_inputs(width, height, frames, resize_mode)
        if message is not True:
            return message.replace(NODE, FOLDER_NODE)
        if isinstance(folder, str):  # a linked folder is checked when the node runs
            try:
                if not clip_files(clip_folder(folder)):
                    return f"{FOLDER_NODE}: folder {folder!r} holds no videos ({', '.join(VIDEO_EXTENSIONS)})"
            except ValueError as error:
                return str(error)
        return True

    @classmethod
    def fingerprint_inputs(cls, folder, **_):
        """The folder's files (names, sizes, modification times): the node runs again only when they change."""
        try:
            path = clip_folder(folder)
        except ValueError:
            return folder
        stats = {name: os.stat(os.path.join(path, name)) for name in sorted(os.listdir(path))}
        return [(name, stat.st_size, stat.st_mtime_ns) for name, stat in stats.items()]

    @classmethod
    def execute(cls, vae, clip, folder, default_caption, width, height, frames, start_frame, frame_step,
                resize_mode, image_to_video) -> io.NodeOutput:  # fmt: skip
        message = cls.validate_inputs(folder, width, height, frames, resize_mode)
        if message is not True:
            raise ValueError(message)
        path = clip_folder(folder)
        names = clip_files(path)
        settings = (width, height, frames, start_frame, frame_step, resize_mode)
        encoded = [load_clip(vae, os.path.join(path, name), settings) for name in names]  # every read error first
        for name, (video_latent, _, _) in zip(names, encoded, strict=True):
            if video_latent.shape != encoded[0][0].shape:
                raise ValueError(
                    f"{FOLDER_NODE}: {name} gives {video_latent.shape[2]} latent frames, {names[0]} "
                    f"{encoded[0][0].shape[2]}: with frames 0 each clip keeps its own length; set frames (e.g. "
                    f"{video_frames(min(e[0].shape[2] for e in encoded))}) so that every clip has as many"
                )
        from nodes import CLIPTextEncode  # ComfyUI's nodes.py (this package's own is .nodes)

        clips, lines = [], []
        for name, (video_latent, frame_latents, first_frame) in zip(names, encoded, strict=True):
            caption = _caption(os.path.join(path, name), default_caption)
            positive = CLIPTextEncode().encode(clip, caption)[0]
            if image_to_video:  # as core WanImageToVideo gives a first frame (Wan 2.2 A14B I2V, Wan 2.1 I2V)
                from comfy_extras.nodes_wan import WanImageToVideo

                length = video_frames(video_latent.shape[2])
                positive = WanImageToVideo.execute(
                    positive, positive, vae, width, height, length, 1, start_image=first_frame
                ).result[0]
            clips.append(ReferenceClip({"samples": video_latent}, {"samples": frame_latents}, positive))
            lines.append(f"{name}: {caption!r}")
        first = clips[0]
        return io.NodeOutput(first.video_latent, first.frame_latents, first.positive, clips[1:], "\n".join(lines))


def _caption(video: str, default: str) -> str:
    caption = os.path.splitext(video)[0] + ".txt"
    if not os.path.isfile(caption):
        return default
    with open(caption, encoding="utf-8") as handle:
        return handle.read().strip()


def load_clip(vae, path: str, settings: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(video latent, frame latents, first resized frame (1, H, W, 3)) of the video at `path`, encoded once per
    file content, settings and VAE; errors name the file."""
    name = os.path.basename(path)
    key = (_file_hash(path), settings, id(vae.first_stage_model))
    if key in _ENCODED:
        _ENCODED.move_to_end(key)
        return _ENCODED[key]
    try:
        images = InputImpl.VideoFromFile(path).get_components().images
    except Exception as error:  # noqa: BLE001 - whatever the decoder says, name the file
        raise ValueError(f"{FOLDER_NODE}: {name} cannot be read as a video ({type(error).__name__}: {error})") from None
    video_latent, frame_latents, resized = encode_clip(f"{FOLDER_NODE}: {name}", vae, images, *settings)
    _ENCODED[key] = (video_latent, frame_latents, resized[:1])
    while len(_ENCODED) > _KEEP_ENCODED:
        _ENCODED.popitem(last=False)
    return _ENCODED[key]


NODES = [PrepareReference, AddReferenceClip, LoadReferenceClips]
