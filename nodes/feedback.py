"""What a training node shows and keeps while it runs: the live loss chart's events, previews on the node, and
resumable checkpoints under output/fym_checkpoints. The chart is drawn by web/js/training_chart.js."""

from __future__ import annotations

import os
import time

import folder_paths
import latent_preview
import torch
from PIL import Image

from ..fym.checkpoint import RunFiles, load_state

LOSS_EVENT = "fym.training.loss"  # web/js/training_chart.js listens for it
CHECKPOINT_FOLDER = "fym_checkpoints"  # under ComfyUI's output folder
NO_CHECKPOINT = "none"
PREVIEW_SIZE = 1024  # longest side, in pixels, of the preview strip shown on the node


def checkpoint_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), CHECKPOINT_FOLDER)


def checkpoint_names() -> list[str]:
    """The resume_from choices: 'none', then the checkpoint files, newest first."""
    folder = checkpoint_folder()
    names = [name for name in os.listdir(folder) if name.endswith(".pt")] if os.path.isdir(folder) else []
    names.sort(key=lambda name: os.path.getmtime(os.path.join(folder, name)), reverse=True)
    return [NO_CHECKPOINT, *names]


def read_checkpoint(name: str) -> dict | None:
    """The state of checkpoint `name` (a resume_from value), or None for 'none'."""
    if name in (None, NO_CHECKPOINT):
        return None
    path = os.path.join(checkpoint_folder(), os.path.basename(name))
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {name} is not in output/{CHECKPOINT_FOLDER}; press R to refresh the list")
    with torch.inference_mode(False):  # nodes run in inference mode; the optimizer updates these tensors in place
        return load_state(path)


def checkpoint_writer(stage: str, resume_from: str | None) -> RunFiles:
    """Checkpoints.write of a training node: output/fym_checkpoints/<stage>_<run>_step<step>.pt (fym.checkpoint.
    RunFiles: a run keeps its newest two, the folder the stage's newest three runs and the one resumed from)."""
    return RunFiles(checkpoint_folder(), stage, resumed=None if resume_from in (None, NO_CHECKPOINT) else resume_from)


def model_summary(model) -> list:
    """What tells one Wan model's weights from another's without reading them all: its name, and the first
    values of a few small biases that LoRAs do not touch (compared within 10%, so fp8 storage passes)."""
    from .wan_host import model_name

    wan = model.model.diffusion_model
    biases = (wan.head.head.bias, wan.time_embedding[0].bias)
    return [model_name(model), *(value for bias in biases for value in bias.flatten()[:32].float().tolist())]


class LossFeed:
    """on_log for fym.train: sends the losses of each log window to the page, with steps per second and time
    left, as LOSS_EVENT {node, stage, step, steps, losses, steps_per_second, seconds_left}."""

    def __init__(self, node_id: str, stage: str, steps: int) -> None:
        self.node_id, self.stage, self.steps = node_id, stage, steps
        self.since, self.at = None, None

    def __call__(self, step: int, losses: list[float]) -> None:
        now = time.perf_counter()
        rate = None
        if self.since is not None and now > self.at:
            rate = (step - self.since) / (now - self.at)
        self.since, self.at = step, now
        from server import PromptServer  # here, not at import: the pack also loads in-process without a server

        server = PromptServer.instance
        server.send_sync(
            LOSS_EVENT,
            {
                "node": self.node_id, "stage": self.stage, "step": step, "steps": self.steps, "losses": losses,
                "steps_per_second": rate, "seconds_left": (self.steps - step) / rate if rate else None,
            },
            server.client_id,
        )  # fmt: skip


def preview_image(model, latent: torch.Tensor) -> Image.Image:
    """The latent (1, C, K, H, W) as one strip of K frames, through ComfyUI's latent-to-RGB factors (no VAE)."""
    fmt = model.model.latent_format
    previewer = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, fmt.latent_rgb_factors_bias)
    frames = [previewer.decode_latent_to_preview(latent[:, :, k : k + 1].float()) for k in range(latent.shape[2])]
    strip = Image.new("RGB", (sum(frame.width for frame in frames), frames[0].height))
    for index, frame in enumerate(frames):
        strip.paste(frame, (index * frame.width, 0))
    return strip


def preview_shower(model, progress):
    """Preview.show for fym.train: the strip on the training node, through ComfyUI's progress bar."""

    def show(step: int, latent: torch.Tensor) -> None:
        progress.update_absolute(step, preview=("JPEG", preview_image(model, latent), PREVIEW_SIZE))

    return show
