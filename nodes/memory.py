"""Before a training node loads anything: fym.plan's peak memory for the connected model and settings, shown on
the node and checked against the card ComfyUI reports, with the cheapest change that fits."""

from __future__ import annotations

import logging
from dataclasses import replace

import comfy.model_management

from ..fym.plan import GIB, H100_TFLOP_PER_S, blocks_that_fit, cheapest_fit, describe, least_memory, plan
from .wan_host import plan_setting

log = logging.getLogger(__name__)

# Refuse to start only when the plan is over the card by more than this: the plan is within 15% of every peak
# measured (bench/results/memory_plan_check.json), so 1.5x is out of its reach; below it, warn and try.
REFUSE_OVER = 1.5


def check_memory(node: str, model, stage: str, clip_shape: tuple[int, ...], config, node_id=None) -> int | None:
    """Plan the step of `stage` on the clip (B, C, T, H, W), show it on the node, warn if it does not fit the
    card, and raise a ValueError naming the change to make if it is over by more than REFUSE_OVER.

    Returns the bytes the step needs besides the weights (training_host's reserve for a partial load), or None
    where no plan can be made (diffusers, which fym.plan traces, is not installed).
    """
    try:
        setting = plan_setting(model, stage, clip_shape, config)
        planned = plan(setting)
    except ImportError as error:
        log.info("%s: no memory plan (%s; pip install diffusers to see one)", node, error)
        return None
    device = model.load_device
    card = comfy.model_management.get_total_memory(device)
    lines = [
        f"memory plan: {size(planned.peak)} at peak (weights {size(planned.weights)}, LoRA + AdamW "
        f"{size(planned.lora + planned.optimizer)}, activations {size(planned.activations)}) on {size(card)} "
        f"({device}); {planned.flops / 1e12:.3g} TFLOPs/step, >= {planned.flops / 1e12 / H100_TFLOP_PER_S:.2g} s/step "
        "on an H100"
    ]
    problem = None
    if planned.peak > card:
        blocks = blocks_that_fit(setting, card) if setting.gradient_checkpointing else None
        if blocks is not None:
            lines.append(
                f"fits with {blocks} of {setting.architecture.num_layers} blocks on the card: ComfyUI streams the "
                "rest each step (slower)"
            )
        else:
            change = cheapest_fit(setting, card)
            if change is None:
                least = least_memory(setting)
                fix = (f"nothing the planner tries fits: with all of ({describe(setting, least)}) the step still "
                       f"needs {size(plan(least).peak)}; use a smaller model or a larger card")  # fmt: skip
            else:
                fix = describe(setting, change)
            # what it needs as set: ComfyUI streams blocks only with checkpointing (training_host)
            as_set = plan(replace(setting, blocks_on_card=0)) if setting.gradient_checkpointing else planned
            problem = (
                f"{node}: the planned peak is {size(planned.peak)} but the card has {size(card)}; to fit: {fix} "
                "(python -m fym.plan shows every stage)"
            )
            lines.append("does not fit: " + fix)
            if as_set.peak > REFUSE_OVER * card:
                show(node_id, "\n".join(lines))
                raise ValueError(f"{problem}. Not started: over the card by more than {REFUSE_OVER:g}x")
    text = "\n".join(lines)
    show(node_id, text)
    if problem:
        log.warning("%s", problem)
    else:
        log.info("%s: %s", node, text)
    return planned.peak - planned.weights


def size(nbytes: float) -> str:
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / 2**20:.0f} MiB"


def show(node_id, text: str) -> None:
    """The text on the node (ComfyUI's progress text), when a server runs."""
    from server import PromptServer  # here, not at import: the pack also loads in-process without a server

    server = getattr(PromptServer, "instance", None)
    if server is not None and node_id is not None:
        server.send_progress_text(text, node_id)
