"""`python -m fym demo`: the whole method through the fym API, on a small Wan 2.1 model, on a CPU.

Classifies heads, trains the spatial then the temporal LoRA on a built-in synthetic reference clip (a square
moving across a textured background, made directly in Wan's 16-channel latent space), and writes into the
output folder: head_map.json, head_map.png, spatial/temporal LoRA files, loss plots and report.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from . import __version__, lora
from .config import SPATIAL, TEMPORAL, ClassifyConfig
from .diffusers_host import DiffusersWan, tiny_wan
from .heads import classify_heads, heat_map, split_if_one_sided
from .train import train_stage


def synthetic_clip(frames: int = 9, size: int = 16, seed: int = 0) -> torch.Tensor:
    """A bright square moving diagonally over a fixed random background, in latent space: (1, 16, T, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    background = torch.randn(16, 1, size, size, generator=generator) * 0.5
    signature = torch.randn(16, 1, 1, 1, generator=generator).sign() * 1.5
    clip = background.repeat(1, frames, 1, 1).clone()
    side = size // 4
    for t in range(frames):
        offset = round(t * (size - side) / max(frames - 1, 1))
        clip[:, t, offset : offset + side, offset : offset + side] = signature[:, 0]
    return clip[None]


def plot_losses(losses: list[float], title: str, path: str, width: int = 480, height: int = 240) -> None:
    """A PNG line plot of a loss curve (raw in grey, a 10% moving average in black)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = torch.tensor(losses)
    window = max(1, len(losses) // 10)
    smooth = values.unfold(0, window, 1).mean(-1) if len(losses) >= window else values
    low, high = float(values.min()), float(values.max())
    pad = 30

    def points(series, offset):
        span = max(len(losses) - 1, 1)
        return [
            (pad + (i + offset) * (width - 2 * pad) / span,
             height - pad - (float(v) - low) / max(high - low, 1e-12) * (height - 2 * pad))
            for i, v in enumerate(series)
        ]  # fmt: skip

    draw.rectangle([pad, pad, width - pad, height - pad], outline="black")
    if len(losses) > 1:
        draw.line(points(values, 0), fill=(170, 170, 170))
        draw.line(points(smooth, window - 1), fill="black", width=2)
    draw.text((pad, 8), f"{title}: steps 1-{len(losses)}, loss {low:.4f}..{high:.4f}", fill="black")
    image.save(path)


def run(out: str, spatial_steps: int, temporal_steps: int, learning_rate: float, seed: int) -> dict:
    """Run all four stages; returns the report's facts."""
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = tiny_wan(num_layers=4, num_heads=4, head_dim=32, seed=seed)
    host = DiffusersWan(model)
    video = synthetic_clip(frames=9, size=16, seed=seed)  # 9 latent frames = 33 video frames
    context = torch.randn(1, 16, model.config.text_dim, generator=torch.Generator().manual_seed(seed))
    frames = video[0].transpose(0, 1).unsqueeze(2)  # (T, 16, 1, H, W): the spatial stage's single frames

    print("[1/3] classifying heads")
    # A random-weight model can put every head on one side; then split by score so both stages have heads.
    head_map, _ = split_if_one_sided(classify_heads(host, video, context, ClassifyConfig(num_queries=256, seed=seed)))
    with open(os.path.join(out, "head_map.json"), "w") as handle:
        handle.write(head_map.to_json())
    Image.fromarray((heat_map(head_map) * 255).byte().numpy()).save(os.path.join(out, "head_map.png"))

    stages = {}
    for stage, defaults, steps in (("spatial", SPATIAL, spatial_steps), ("temporal", TEMPORAL, temporal_steps)):
        config = replace(
            defaults, steps=steps, rank=16, alpha=16.0, learning_rate=learning_rate, frame_stride=2, frame_count=5,
            log_every=max(1, steps // 10), seed=seed,
        )  # fmt: skip
        latents = frames if stage == "spatial" else video
        print(f"[{2 if stage == 'spatial' else 3}/3] training the {stage} LoRA")
        stage_started = time.perf_counter()
        with tqdm(total=steps, desc=f"{stage} LoRA", unit="step") as bar:
            result = train_stage(
                host, stage, latents, context, head_map, config,
                on_step=lambda _: bar.update(1), keep_attached=stage == "spatial",
            )  # fmt: skip
        seconds = time.perf_counter() - stage_started
        path = os.path.join(out, f"{stage}_lora.safetensors")
        if os.path.exists(path):
            os.remove(path)  # the demo's own output folder is rewritten on every run
        lora.save(result.lora, path)
        plot_losses(result.losses, f"{stage} LoRA", os.path.join(out, f"{stage}_loss.png"))
        stages[stage] = {
            "steps": steps, "seconds": round(seconds, 1), "heads": head_map.count(stage),
            "first_loss": round(sum(result.losses[:10]) / len(result.losses[:10]), 4),
            "last_loss": round(sum(result.losses[-10:]) / len(result.losses[-10:]), 4),
            "file": os.path.basename(path),
        }  # fmt: skip
    host.detach("fym_spatial")
    report = {"version": __version__, "seconds": round(time.perf_counter() - started, 1), "stages": stages,
              "model": head_map.shape.as_dict(), "learning_rate": learning_rate}  # fmt: skip
    _write_report(out, report)
    return report


def _write_report(out: str, report: dict) -> None:
    lines = [
        "# Follow-Your-Motion demo report",
        "",
        f"fym {report['version']}; tiny random-weight Wan 2.1 architecture {report['model']}; "
        f"synthetic clip of 9 latent frames; total {report['seconds']} s.",
        f"Learning rate {report['learning_rate']} (the paper's 1e-5 barely moves a tiny model in a few hundred steps).",
        "",
        "| stage | heads | steps | seconds | mean loss, first 10 steps | mean loss, last 10 steps | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, s in report["stages"].items():
        lines.append(
            f"| {stage} | {s['heads']} | {s['steps']} | {s['seconds']} | {s['first_loss']} | {s['last_loss']} "
            f"| {s['file']} |"
        )
    lines += ["", "Head map: head_map.json, head_map.png (rows layers, columns heads; red temporal, blue spatial).",
              "Loss curves: spatial_loss.png, temporal_loss.png."]  # fmt: skip
    with open(os.path.join(out, "report.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fym", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the whole method on a small model and a synthetic clip")
    demo.add_argument("--out", default="fym_demo_output", help="output folder (default: %(default)s)")
    demo.add_argument("--spatial-steps", type=int, default=1000)
    demo.add_argument("--temporal-steps", type=int, default=500)
    demo.add_argument("--learning-rate", type=float, default=1e-3)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = run(args.out, args.spatial_steps, args.temporal_steps, args.learning_rate, args.seed)
    print(f"done in {report['seconds']} s; see {os.path.join(args.out, 'report.md')}")
    return 0
