"""Apply, save and load motion LoRAs (stock Wan LoRA keys, so core LoraLoaderModelOnly reads them too)."""

from __future__ import annotations

import logging
import os

import comfy.lora
import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from .. import fym
from ..fym.config import APPLY_STRENGTH, LORA_FILE_DTYPE
from ..fym.heads import SPATIAL
from ..fym.lora import FILE_DTYPES, MotionLoRA
from .types import CATEGORY, MotionLoRAType, free_output_path, node_error, output_prefix_problem
from .wan_host import wan_shape

log = logging.getLogger(__name__)


APPLIED = "fym_applied"  # model_options key: what each motion LoRA on this MODEL was (stage, heads, strength)


def applied_loras(model) -> list[dict]:
    """The motion LoRAs applied to `model` through this pack, oldest first."""
    return model.model_options.get(APPLIED, [])


def apply_motion_lora(model, lora: MotionLoRA, strength: float, node: str):
    """A clone of `model` with `lora` added through ComfyUI's own patch path (merged at load, unpatched after).

    The clone remembers the LoRA's stage and heads, so Temporal LoRA Train can check it trains on top of the
    spatial LoRA of the same head map.
    """
    try:
        lora.check_shape(wan_shape(model, node), node)
    except ValueError as error:
        raise node_error(node, error) from None
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    patches = comfy.lora.load_lora(lora.state_dict, key_map, log_missing=False)
    expected = {key.rsplit(".lora_", 1)[0] for key in lora.state_dict if ".lora_" in key}
    if len(patches) != len(expected):
        raise ValueError(f"{node}: only {len(patches)} of {len(expected)} LoRA modules match this model")
    patched = model.clone()
    patched.add_patches(patches, strength)
    patched.model_options[APPLIED] = applied_loras(model) + [
        {"stage": lora.metadata.get("stage"), "heads": lora.metadata.get("heads"), "strength": strength}
    ]
    return patched


class ApplyMotionLoRA(io.ComfyNode):
    NAME = "FYM Apply Motion LoRA"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_ApplyMotionLoRA",
            display_name="Apply Motion LoRA (Follow-Your-Motion)",
            category=f"{CATEGORY}/apply",
            description="Patches a clone of a Wan model with a motion LoRA through ComfyUI's own LoRA path; sample with stock KSampler. With Wan 2.2 A14B, give each expert its own LoRA.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The base Wan model the LoRA was trained on (without the spatial LoRA, so new subjects keep their own look).",
                ),
                MotionLoRAType.Input("motion_lora", tooltip="From Temporal LoRA Train or Load Motion LoRA."),
                io.Float.Input(
                    "strength",
                    default=APPLY_STRENGTH,
                    min=-4.0,
                    max=4.0,
                    step=0.05,
                    tooltip="LoRA strength. Default: the paper's 0.5 (Sec. 4.1), for real Wan; not measured by this pack at that "
                    "size. On MotionBench's small Wan only 1.0 transferred the motion (README: MotionBench). If the "
                    "motion does not show, raise it toward 1; higher follows the reference more closely and may carry "
                    "its look over.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "patched_model", display_name="model", tooltip="A patched clone; the input model is unchanged."
                )
            ],
        )

    @classmethod
    def execute(cls, model, motion_lora, strength):
        if motion_lora.metadata.get("stage") == SPATIAL:
            log.warning(
                "%s: this is a spatial-stage LoRA (the reference's appearance). To move new subjects like the "
                "reference, apply the temporal LoRA; the spatial one belongs only under Temporal LoRA Train.",
                cls.NAME,
            )
        return io.NodeOutput(apply_motion_lora(model, motion_lora, strength, cls.NAME))


class SaveMotionLoRA(io.ComfyNode):
    NAME = "FYM Save Motion LoRA"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_SaveMotionLoRA",
            display_name="Save Motion LoRA (Follow-Your-Motion)",
            category=f"{CATEGORY}/apply",
            description="Writes the LoRA as .safetensors in ComfyUI's Wan LoRA format, with its head map and training "
            "settings as metadata, under output/ with a counter; never overwrites. output/loras shows up in LoRA loaders.",
            is_output_node=True,
            inputs=[
                MotionLoRAType.Input("motion_lora", tooltip="From a training node or Load Motion LoRA."),
                io.String.Input(
                    "filename_prefix",
                    default="loras/FYM_motion",
                    tooltip="Path under output/ and file name start; a counter is added.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(FILE_DTYPES),
                    default=LORA_FILE_DTYPE,
                    optional=True,
                    tooltip="bf16: half the size of fp32 (about 190 MB per stage at 1.3B), the same result within "
                    "bf16 precision; stock LoraLoaderModelOnly loads both. fp32: the factors exactly as trained.",
                ),
            ],
            outputs=[],
        )

    @classmethod
    def validate_inputs(cls, filename_prefix):  # at queue time, before the training it would lose
        return output_prefix_problem(cls.NAME, filename_prefix) or True

    @classmethod
    def execute(cls, motion_lora, filename_prefix, dtype=LORA_FILE_DTYPE):
        path, shown = free_output_path(filename_prefix, "safetensors", cls.NAME)
        fym.save(motion_lora, path, dtype)
        return io.NodeOutput(ui=ui.PreviewText(shown))


class LoadMotionLoRA(io.ComfyNode):
    NAME = "FYM Load Motion LoRA"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_LoadMotionLoRA",
            display_name="Load Motion LoRA (Follow-Your-Motion)",
            category=f"{CATEGORY}/apply",
            description="Reads a motion LoRA saved by Save Motion LoRA (models/loras or output/loras).",
            inputs=[
                io.Combo.Input(
                    "lora_name",
                    options=folder_paths.get_filename_list("loras"),
                    tooltip="A file written by Save Motion LoRA (press R after saving to refresh the list).",
                )
            ],
            outputs=[
                MotionLoRAType.Output("motion_lora", display_name="motion_lora", tooltip="The LoRA and its metadata.")
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, lora_name):
        path = folder_paths.get_full_path("loras", lora_name)
        return (lora_name, os.path.getmtime(path) if path else None)

    @classmethod
    def execute(cls, lora_name):
        path = folder_paths.get_full_path("loras", lora_name)
        if path is None:
            raise ValueError(f"{cls.NAME}: {lora_name} is not in models/loras or output/loras")
        try:
            return io.NodeOutput(fym.load(path))
        except ValueError as error:
            raise node_error(cls.NAME, error) from None


NODES = [ApplyMotionLoRA, SaveMotionLoRA, LoadMotionLoRA]
