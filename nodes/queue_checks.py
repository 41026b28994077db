"""Checks that need the whole graph, made when a prompt is queued, before any node runs.

A node's own validation sees only its widget values, not what flows into it. So an on-prompt handler walks
the queued graph, finds problems that would otherwise surface only after minutes of earlier stages (more
temporal frames per step than the clip has, after classification and the whole spatial stage), and leaves one
message per node; the node's `validate_inputs` returns it, and ComfyUI rejects the prompt with it.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger(__name__)

_problems: dict[tuple[str, str], str] = {}  # (prompt id, node id) -> message, taken by validate_inputs


def latent_frames_into(prompt: dict, node_id: str, input_name: str) -> int | None:
    """Latent frames of the video latent reaching `input_name` of a node, if Prepare Reference makes it with a
    fixed `frames` widget; None when the graph does not say (another source, frames 0 = 'all', a link)."""
    link = prompt[node_id]["inputs"].get(input_name)
    if not isinstance(link, list) or link[0] not in prompt:
        return None
    source = prompt[link[0]]
    frames = source.get("inputs", {}).get("frames")
    if source.get("class_type") != "FYM_PrepareReference" or not isinstance(frames, int) or frames <= 0:
        return None
    return (frames - 1) // 4 + 1


def temporal_window_problem(prompt: dict, node_id: str) -> str | None:
    """The Temporal LoRA Train node's frames per step against the clip feeding it, before anything runs."""
    inputs = prompt[node_id]["inputs"]
    count = inputs.get("frame_count")
    if not isinstance(count, int) or inputs.get("sparse_sampling") is False:
        return None
    latent_frames = latent_frames_into(prompt, node_id, "video_latent")
    if latent_frames is None or count <= latent_frames:
        return None
    return (
        f"FYM Temporal LoRA Train: frame_count {count} is more than the {latent_frames} latent frames of Prepare "
        f"Reference's {4 * (latent_frames - 1) + 1} frames. Lower frame_count to {latent_frames} or fewer, or set "
        f"Prepare Reference's frames to {4 * (count - 1) + 1} or more"
    )


def check_prompt(json_data: dict) -> dict:
    """On-prompt handler: record the problems of every FYM node of the queued graph (never raises)."""
    try:
        prompt = json_data.get("prompt") or {}
        json_data.setdefault("prompt_id", str(uuid.uuid4()))  # validation runs under this id
        for node_id, node in prompt.items():
            if isinstance(node, dict) and node.get("class_type") == "FYM_TemporalLoRATrain":
                problem = temporal_window_problem(prompt, node_id)
                if problem:
                    _problems[(str(json_data["prompt_id"]), str(node_id))] = problem
    except Exception:  # a check must never block a prompt it cannot read
        log.exception("Follow-Your-Motion: the queue-time check failed; the prompt is validated as usual")
    return json_data


def take_problem() -> str | None:
    """The message left for the node being validated now, if any (called from validate_inputs)."""
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    return None if context is None else _problems.pop((str(context.prompt_id), str(context.node_id)), None)


def register() -> None:
    """Install the handler on the running server (no server, e.g. in scripts: nothing to do)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.add_on_prompt_handler(check_prompt)
