"""Custom socket types of the pack (created once, shared by every node module)."""

import os

import folder_paths
from comfy_api.latest import io

HeadMapType = io.Custom("FYM_HEAD_MAP")  # fym.heads.HeadMap
MotionLoRAType = io.Custom("FYM_MOTION_LORA")  # fym.lora.MotionLoRA
ReferenceClipsType = io.Custom("FYM_REFERENCE_CLIPS")  # list of nodes.data.ReferenceClip

CATEGORY = "FollowYourMotion"


def node_error(node: str, error: Exception) -> ValueError:
    """A ValueError whose message starts with the node's display name (unless it already does)."""
    message = str(error)
    return ValueError(message if message.startswith(node) else f"{node}: {message}")


def context_of(positive, node: str):
    """The text embedding (1, L, D) of a CONDITIONING; errors name the node."""
    try:
        context = positive[0][0]
    except (IndexError, TypeError, KeyError):
        raise ValueError(f"{node}: 'positive' is not a CONDITIONING; connect a CLIPTextEncode output") from None
    if context.dim() != 3 or context.shape[0] != 1:
        raise ValueError(f"{node}: expected one caption embedding (1, tokens, 4096); got {tuple(context.shape)}")
    return context


def output_prefix_problem(node: str, prefix: str | None, folder: str = "") -> str | None:
    """What to change if the save prefix `prefix` leads out of output/`folder` (or names no file), else None.

    Checked when the prompt is queued (the save nodes' validate_inputs) so that a bad prefix is refused before
    the training it would lose, and again when saving. None for a linked prefix: its value is known only then.
    """
    if prefix is None:
        return None
    root = os.path.abspath(os.path.join(folder_paths.get_output_directory(), folder))
    path = os.path.normpath(prefix)
    target = os.path.abspath(os.path.join(root, os.path.dirname(path)))
    name = os.path.basename(path)
    if os.path.commonpath((root, target)) == root and name not in ("", ".", ".."):
        return None
    where = f"output/{folder}".rstrip("/")
    return f"{node}: filename_prefix {prefix!r} does not name a file inside {where}; use a relative path without '..'"


def free_output_path(prefix: str, extension: str, node: str, folder: str = "") -> tuple[str, str]:
    """A new file under ComfyUI's output folder `folder`: (absolute path, path relative to output/).

    `prefix` may hold subfolders; a 5-digit counter is added (name_00001_.ext) and never points at an
    existing file. A prefix that leads out of the folder raises, naming `node`.
    """
    if problem := output_prefix_problem(node, prefix, folder):
        raise ValueError(problem)
    prefix = f"{folder}/{prefix}" if folder else prefix
    directory, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_output_directory()
    )
    while os.path.exists(path := os.path.join(directory, f"{name}_{counter:05}_.{extension}")):
        counter += 1
    return path, os.path.join(subfolder, os.path.basename(path))
