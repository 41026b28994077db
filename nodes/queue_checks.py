"""Checks that need the whole graph, made when a prompt is queued, before any node runs.

A node's own validation sees only its widget values, not what flows into it. So an on-prompt handler walks
the queued graph and finds what would otherwise fail only after minutes of earlier stages: a Temporal LoRA
Train node asking more latent frames per step than one of its clips has (its own clip and every Add Reference
Clip clip), found after classification and the whole spatial stage.

- Where the graph says the clip's length (Prepare Reference with a fixed `frames`), the prompt is refused at
  once: the message is left for the node's `validate_inputs`, and ComfyUI rejects the prompt with it.
- Where it does not (Prepare Reference with frames 0 = "all", another latent source), the need is left for the
  FYM nodes that see the clip first: Prepare Reference checks it right after reading the video, before the VAE
  encode; Classify Heads and Add Reference Clip check the latent they are given, before their work.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger(__name__)

TEMPORAL = "FYM_TemporalLoRATrain"
PREPARE = "FYM_PrepareReference"
ADD_CLIP = "FYM_AddReferenceClip"
TEMPORAL_NAME = "FYM Temporal LoRA Train"
KEPT_PROMPTS = 32  # prompts whose needs are kept (a need is looked up while its prompt runs)

_problems: dict[tuple[str, str], str] = {}  # (prompt id, node id) -> message, taken by validate_inputs
_needs: OrderedDict[str, dict[str, FrameNeed]] = OrderedDict()  # prompt id -> node id -> what it must check


@dataclass(frozen=True)
class FrameNeed:
    """A clip must have at least `frames` latent frames, for the Temporal LoRA Train node `node` (its `clip`)."""

    frames: int
    node: str
    clip: str  # "its clip" or "more_clips' clip N"

    def problem(self, latent_frames: int, seen_by: str = TEMPORAL_NAME) -> str | None:
        """What to change if the clip has only `latent_frames`, said by the node `seen_by`; None if it is enough."""
        if latent_frames >= self.frames:
            return None
        video = f"{latent_frames} latent frames ({4 * (latent_frames - 1) + 1} video frames)"
        fix = f"or use {4 * (self.frames - 1) + 1} or more video frames (Prepare Reference's frames)"
        if seen_by == TEMPORAL_NAME:
            return (
                f"{TEMPORAL_NAME}: frame_count {self.frames} is more than the {video} of {self.clip}. Lower "
                f"frame_count to {latent_frames} or fewer, {fix}"
            )
        return (
            f"{seen_by}: this clip has {video}, but {TEMPORAL_NAME} (node {self.node}) trains on {self.frames} per "
            f"step (its frame_count; this is {self.clip} there). Lower that frame_count to {latent_frames} or "
            f"fewer, {fix}"
        )


def _link(prompt: dict, node_id: str, input_name: str) -> tuple[str, int] | None:
    link = prompt.get(node_id, {}).get("inputs", {}).get(input_name)
    return (str(link[0]), link[1]) if isinstance(link, list) and str(link[0]) in prompt else None


def temporal_clips(prompt: dict, node_id: str) -> list[tuple[str, tuple[str, int]]]:
    """[(name, link)] of the video latents a Temporal LoRA Train node trains on: its own, then those of the
    Add Reference Clip chain on its more_clips, in the order the node numbers them."""
    clips = [("its clip", link)] if (link := _link(prompt, node_id, "video_latent")) else []
    chain, node = [], _link(prompt, node_id, "more_clips")
    while node is not None and prompt[node[0]].get("class_type") == ADD_CLIP and node[0] not in chain:
        chain.append(node[0])
        node = _link(prompt, node[0], "clips")
    for number, add_id in enumerate(reversed(chain), start=1):  # the first node of the chain is clip 1
        if link := _link(prompt, add_id, "video_latent"):
            clips.append((f"more_clips' clip {number}", link))
    return clips


def fixed_latent_frames(prompt: dict, link: tuple[str, int]) -> int | None:
    """Latent frames of a video latent that Prepare Reference makes with a fixed `frames` widget, else None."""
    source = prompt[link[0]]
    frames = source.get("inputs", {}).get("frames")
    if source.get("class_type") != PREPARE or link[1] != 0 or not isinstance(frames, int) or frames <= 0:
        return None
    return (frames - 1) // 4 + 1


def check_temporal_node(prompt: dict, node_id: str, needs: dict[str, FrameNeed]) -> str | None:
    """The problem of a Temporal LoRA Train node's clips that the graph shows now, if any; what only the clips
    can show is added to `needs`, by the id of each FYM node that sees a clip first."""
    inputs = prompt[node_id]["inputs"]
    count = inputs.get("frame_count")
    if not isinstance(count, int) or inputs.get("sparse_sampling") is False:
        return None
    for clip, link in temporal_clips(prompt, node_id):
        need = FrameNeed(count, node_id, clip)
        frames = fixed_latent_frames(prompt, link)
        if frames is not None:
            if problem := need.problem(frames):
                return problem
            continue
        if prompt[link[0]].get("class_type") == PREPARE and link[1] == 0:
            needs.setdefault(link[0], need)
        for other_id, other in prompt.items():  # FYM nodes that get the same latent and run before training
            seen_first = other.get("class_type") in ("FYM_ClassifyHeads", ADD_CLIP)
            if seen_first and _link(prompt, other_id, "video_latent") == link:
                needs.setdefault(other_id, need)
    return None


def check_prompt(json_data: dict) -> dict:
    """On-prompt handler: record the problems and needs of every FYM node of the queued graph (never raises)."""
    try:
        prompt = json_data.get("prompt") or {}
        prompt_id = str(json_data.setdefault("prompt_id", str(uuid.uuid4())))  # validation runs under this id
        needs: dict[str, FrameNeed] = {}
        for node_id, node in prompt.items():
            if isinstance(node, dict) and node.get("class_type") == TEMPORAL:
                if problem := check_temporal_node(prompt, str(node_id), needs):
                    _problems[(prompt_id, str(node_id))] = problem
        if needs:
            _needs[prompt_id] = needs
            while len(_needs) > KEPT_PROMPTS:
                _needs.popitem(last=False)
    except Exception:  # a check must never block a prompt it cannot read
        log.exception("Follow-Your-Motion: the queue-time check failed; the prompt is validated as usual")
    return json_data


def _executing() -> tuple[str, str] | None:
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    return None if context is None else (str(context.prompt_id), str(context.node_id))


def take_problem() -> str | None:
    """The message left for the node being validated now, if any (called from validate_inputs)."""
    where = _executing()
    return None if where is None else _problems.pop(where, None)


def check_clip_frames(node: str, latent_frames: int) -> None:
    """Raise, naming `node` (the FYM node running now), if a Temporal LoRA Train node downstream needs more
    latent frames than this clip has (see the module docstring)."""
    where = _executing()
    need = None if where is None else _needs.get(where[0], {}).get(where[1])
    if need is not None and (problem := need.problem(latent_frames, seen_by=node)):
        raise ValueError(problem)


def register() -> None:
    """Install the handler on the running server (no server, e.g. in scripts: nothing to do)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.add_on_prompt_handler(check_prompt)
