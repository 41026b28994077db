"""Classify Heads and head-map files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import io, ui

from ..fym.config import EXPERTS, ClassifyConfig
from ..fym.files import write_new
from ..fym.heads import SPATIAL, TEMPORAL, HeadMap, classify_heads, heat_map, parse_overrides, split_if_one_sided
from .queue_checks import check_clip_frames
from .types import CATEGORY, HeadMapType, free_output_path, node_error, output_prefix_problem
from .wan_host import scoring_host, wan_condition, wan_noise_range, wan_shape

NODE = "FYM Classify Heads"
log = logging.getLogger(__name__)
_DEFAULTS = ClassifyConfig()
HEAD_MAP_FOLDER = "fym_head_maps"  # under ComfyUI's output folder


def parse_sigmas(text: str, noise_range: tuple[float, float], expert: str) -> tuple[float, ...]:
    """The sigmas widget's numbers, each inside the expert's noise range."""
    try:
        sigmas = tuple(float(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"{NODE}: sigmas must be numbers between 0 and 1 separated by commas; got {text!r}") from None
    low, high = noise_range
    outside = [s for s in sigmas if not low <= s <= high]
    if outside:
        raise ValueError(
            f"{NODE}: the {expert} runs at noise levels {low:g}-{high:g}, but sigmas has {outside}; score it where it "
            f"runs, e.g. sigmas {(low + high) / 2:.3g}"
        )
    return sigmas


# Last and optional on every node that has it, so workflows and API prompts saved before it existed keep working.
EXPERT_INPUT = io.Combo.Input(
    "expert",
    options=list(EXPERTS),
    default=EXPERTS[0],
    optional=True,
    tooltip="Wan 2.2 A14B has two experts, each its own MODEL: the high-noise one runs above sigma 0.875 (T2V) or "
    "0.9 (I2V), the low-noise one below (Wan 2.2's boundaries). Pick the one this MODEL is, so it is scored and "
    "trained only where it runs. Other models: whole range.",
)


class ClassifyHeads(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_ClassifyHeads",
            display_name="Classify Heads (Follow-Your-Motion)",
            category=f"{CATEGORY}/train",
            description="Runs Wan on the reference and sorts every self-attention head into spatial (appearance) "
            "or temporal (motion), paper Alg. 1. The spatial LoRA trains only spatial heads, the temporal LoRA only temporal ones. "
            "If alpha puts every head on one side, the heads are split in half by score instead, and 'summary' says so.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="A Wan model: 2.1 T2V/I2V, a Wan 2.2 A14B T2V/I2V expert, or Wan 2.2 TI2V 5B.",
                ),
                io.Latent.Input(
                    "video_latent",
                    tooltip="The reference clip's video latent from Prepare Reference (at least 2 latent frames).",
                ),
                io.Conditioning.Input(
                    "positive",
                    tooltip="Caption of the reference clip (CLIPTextEncode with the Wan text encoder). For an I2V model: WanImageToVideo's positive with the reference's first frame as start_image.",
                ),
                io.Float.Input(
                    "alpha",
                    default=_DEFAULTS.alpha,
                    min=0.01,
                    max=100.0,
                    step=0.05,
                    tooltip="A head is temporal when Sim_spatial < alpha x Sim_temporal. Paper: 1.3 (set to balance the two kinds). Higher = more temporal heads.",
                ),
                io.String.Input(
                    "sigmas",
                    default=", ".join(str(s) for s in _DEFAULTS.sigmas),
                    tooltip="Noise levels (0 = clean, 1 = pure noise) at which the reference is scored, comma separated; scores are averaged. The paper does not say; 0.5 is a middle step of sampling. Must lie in the expert's range (high-noise expert: e.g. 0.95).",
                ),
                io.Int.Input(
                    "num_queries",
                    default=_DEFAULTS.num_queries,
                    min=16,
                    max=65536,
                    tooltip="Query tokens sampled per head. Memory grows linearly with it; 1024 agrees with exact scores on the heads' type in our tests.",
                ),
                io.Int.Input(
                    "band",
                    default=_DEFAULTS.band,
                    min=0,
                    max=16,
                    tooltip="Half-width in latent patches of the pseudo attention maps: a key counts as 'near' when its row and column are within this many patches of the query's.",
                ),
                io.Int.Input(
                    "seed",
                    default=_DEFAULTS.seed,
                    min=0,
                    max=2**31 - 1,
                    control_after_generate=False,  # re-queueing reuses the cached map instead of re-scoring
                    tooltip="Seed of the query sampling and of the noise added to the reference.",
                ),
                io.String.Input(
                    "overrides",
                    default="",
                    multiline=True,
                    tooltip="Force heads by hand: layer.head=s or =t, separated by commas or lines, e.g. '0.3=t, 12.7=s'. Layers and heads count from 0.",
                ),
                EXPERT_INPUT,
            ],
            outputs=[
                HeadMapType.Output(
                    "head_map",
                    display_name="head_map",
                    tooltip="Type and both scores of every head; connect to the LoRA training nodes.",
                ),
                io.Image.Output(
                    "heat_map",
                    display_name="heat_map",
                    tooltip="Rows = layers, columns = heads; red temporal, blue spatial, brighter = clearer; white dot = overridden.",
                ),
                io.String.Output(
                    "summary",
                    display_name="summary",
                    tooltip="How many heads of each kind, and whether alpha put every head on one side so the heads were split by score instead.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, video_latent, positive, alpha, sigmas, num_queries, band, seed, overrides, expert=EXPERTS[0]
    ):
        try:
            shape = wan_shape(model, NODE)
            noise_range = wan_noise_range(model, expert, NODE)
            config = ClassifyConfig(
                alpha=alpha, sigmas=parse_sigmas(sigmas, noise_range, expert), num_queries=num_queries, band=band,
                seed=seed,
            )  # fmt: skip
            samples = video_latent["samples"]
            if samples.dim() != 5 or samples.shape[0] != 1 or samples.shape[2] < 2:
                raise ValueError(
                    f"expected a video latent (1, C, T >= 2, H, W); got {tuple(samples.shape)}. Use Prepare Reference's video_latent"
                )
            check_clip_frames(NODE, samples.shape[2])  # what Temporal LoRA Train needs of this clip, before scoring
            condition = wan_condition(model, positive, tuple(samples.shape), NODE)
            parse_overrides(overrides, shape)
        except ValueError as error:
            raise node_error(NODE, error) from None
        with scoring_host(model, tuple(samples.shape)) as host, torch.no_grad():
            latent = model.model.process_latent_in(samples).to(host.device)
            head_map = classify_heads(host, latent, condition.to(host.device), config).with_changes(overrides=overrides)
        head_map, split = split_if_one_sided(head_map)
        counts = f"{head_map.count(SPATIAL)} spatial, {head_map.count(TEMPORAL)} temporal heads"
        summary = f"{counts} at alpha {head_map.alpha:g}"
        if split:
            summary = (
                f"alpha {head_map.alpha:g} put every head on one side, so the heads were split in half by "
                f"Sim_s / Sim_t instead (lower half temporal): {counts}. Change alpha or the overrides to choose "
                "another split"
            )
            log.warning("%s: %s", NODE, summary)
        image = heat_map(head_map)[None]
        return io.NodeOutput(head_map, image, summary, ui=ui.PreviewImage(image, cls=cls))


class SaveHeadMap(io.ComfyNode):
    NAME = "FYM Save Head Map"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_SaveHeadMap",
            display_name="Save Head Map (Follow-Your-Motion)",
            category=f"{CATEGORY}/utils",
            description=f"Writes a head map as JSON under output/{HEAD_MAP_FOLDER}/, never overwriting.",
            is_output_node=True,
            inputs=[
                HeadMapType.Input("head_map", tooltip="From Classify Heads or Load Head Map."),
                io.String.Input(
                    "filename_prefix", default="FYM_head_map", tooltip="File name start; a counter is added."
                ),
            ],
            outputs=[],
        )

    @classmethod
    def validate_inputs(cls, filename_prefix):  # at queue time, before the classification it would lose
        return output_prefix_problem(cls.NAME, filename_prefix, HEAD_MAP_FOLDER) or True

    @classmethod
    def execute(cls, head_map, filename_prefix):
        path, shown = free_output_path(filename_prefix, "json", cls.NAME, HEAD_MAP_FOLDER)
        text = head_map.to_json()
        write_new(path, lambda temporary: Path(temporary).write_text(text), "head maps")
        return io.NodeOutput(ui=ui.PreviewText(shown))


def head_map_folder() -> str:
    return os.path.join(folder_paths.get_output_directory(), HEAD_MAP_FOLDER)


def head_map_files() -> list[str]:
    folder = head_map_folder()
    return sorted(f for f in os.listdir(folder) if f.endswith(".json")) if os.path.isdir(folder) else []


def head_map_path(file: str, node: str) -> str:
    """The path of `file`, one of head_map_files(); anything else (a path out of the folder through the API, a
    file that is gone) is refused: ComfyUI does not check V3 combo values against the list."""
    if file not in head_map_files():
        raise ValueError(
            f"{node}: {file!r} is not a head map file in output/{HEAD_MAP_FOLDER}; pick one from the list (press R "
            "to refresh it after saving one with Save Head Map)"
        )
    return os.path.join(head_map_folder(), file)


class LoadHeadMap(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FYM_LoadHeadMap",
            display_name="Load Head Map (Follow-Your-Motion)",
            category=f"{CATEGORY}/utils",
            description=f"Reads a head map saved under output/{HEAD_MAP_FOLDER}/; can change alpha and force heads without re-scoring.",
            inputs=[
                io.Combo.Input(
                    "file",
                    options=head_map_files(),
                    tooltip=f"A JSON file in output/{HEAD_MAP_FOLDER}/ (press R to refresh the list).",
                ),
                io.Float.Input(
                    "alpha",
                    default=0.0,
                    min=0.0,
                    max=100.0,
                    step=0.05,
                    tooltip="New alpha for the saved scores; 0 keeps the saved one.",
                ),
                io.String.Input(
                    "overrides", default="", multiline=True, tooltip="Extra forced heads, e.g. '0.3=t, 12.7=s'."
                ),
            ],
            outputs=[HeadMapType.Output("head_map", display_name="head_map", tooltip="The loaded head map.")],
        )

    @classmethod
    def fingerprint_inputs(cls, file, alpha, overrides):
        listed = file in head_map_files()
        return (file, os.path.getmtime(os.path.join(head_map_folder(), file)) if listed else None, alpha, overrides)

    @classmethod
    def execute(cls, file, alpha, overrides):
        name = "FYM Load Head Map"
        try:
            path = head_map_path(file, name)
            with open(path) as handle:
                head_map = HeadMap.from_json(handle.read())
            return io.NodeOutput(head_map.with_changes(alpha=alpha or None, overrides=overrides))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise node_error(name, error) from None


NODES = [ClassifyHeads, SaveHeadMap, LoadHeadMap]
