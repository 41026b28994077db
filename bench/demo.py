"""`python bench/demo.py`: the whole method through the fym API on the MotionBench Wan, on a CPU.

Runs from a checkout of this repository (the model, its world and metrics live in bench/motionbench, beside it;
the fym library never imports bench/). Classifies
the heads of the shipped MotionBench Wan on a reference clip (a worm crawling on a circle while it stretches,
a motion it never saw), trains the spatial then the temporal LoRA, then samples a new caption (another colour)
with and without the temporal LoRA from the same noise. Writes into the output folder: head_map.json,
head_map.png, spatial/temporal LoRA files, loss plots, motion.png (rows: reference, ideal transfer, with the
LoRA, without) and report.md with the motion fidelity of both samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import motionbench  # noqa: E402
from bench.motionbench import metrics, world  # noqa: E402
from bench.motionbench import model as mb_model  # noqa: E402
from bench.motionbench import sample as mb_sample  # noqa: E402
from fym import __version__, lora  # noqa: E402
from fym.config import SPATIAL, TEMPORAL, ClassifyConfig  # noqa: E402
from fym.diffusers_host import DiffusersWan  # noqa: E402
from fym.heads import classify_heads, heat_map, split_if_one_sided  # noqa: E402
from fym.train import train_stage  # noqa: E402


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


def run(out: str, spatial_steps: int, temporal_steps: int, learning_rate: float, seed: int, clip_name: str) -> dict:
    """Run all four stages and sample the transfer; returns the report's facts."""
    settings = motionbench.LORA
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(seed)
    host = DiffusersWan(mb_model.load())
    _, clip, targets = next(e for e in world.reference_clips() if e[0] == clip_name)
    video = world.render(clip)[None]  # (1, 16, 9, 16, 16): 9 latent frames = 33 video frames
    context = world.caption(clip)[None]
    frames = video[0].transpose(0, 1).unsqueeze(2)  # (T, 16, 1, H, W): the spatial stage's single frames

    print(f"[1/4] classifying heads on {clip_name} ({' '.join(world.caption_words(clip))})")
    head_map, _ = split_if_one_sided(classify_heads(host, video, context, ClassifyConfig(num_queries=256, seed=seed)))
    with open(os.path.join(out, "head_map.json"), "w") as handle:
        handle.write(head_map.to_json())
    Image.fromarray((heat_map(head_map) * 255).byte().numpy()).save(os.path.join(out, "head_map.png"))

    stages, loras = {}, {}
    for stage, defaults, steps in (("spatial", SPATIAL, spatial_steps), ("temporal", TEMPORAL, temporal_steps)):
        config = motionbench.train_config(defaults, steps, lr=learning_rate, log_every=max(1, steps // 10), seed=seed)
        latents = frames if stage == "spatial" else video
        print(f"[{2 if stage == 'spatial' else 3}/4] training the {stage} LoRA")
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
        loras[stage] = result.lora
        plot_losses(result.losses, f"{stage} LoRA", os.path.join(out, f"{stage}_loss.png"))
        stages[stage] = {
            "steps": steps, "seconds": round(seconds, 1), "heads": head_map.count(stage),
            "first_loss": round(sum(result.losses[:10]) / len(result.losses[:10]), 4),
            "last_loss": round(sum(result.losses[-10:]) / len(result.losses[-10:]), 4),
            "file": os.path.basename(path),
        }  # fmt: skip
    host.detach("fym_spatial")

    target = clip.with_appearances(targets)
    print(f"[4/4] sampling '{' '.join(world.caption_words(target))}' with and without the temporal LoRA")
    noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(10_000 + seed))
    samples = {}
    for tag, strength in (("with_lora", settings["strength"]), ("without_lora", 0.0)):
        with mb_sample.merged(host, [(loras["temporal"], strength)]):
            samples[tag] = mb_sample.sample(host, world.caption(target), seed, settings["sample_steps"], noise=noise)[0]
    metrics.save_strip([video[0], world.render(target), samples["with_lora"], samples["without_lora"]],
                       os.path.join(out, "motion.png"), 6)  # fmt: skip
    scores = {tag: round(metrics.evaluate(v, clip, targets)["motion_fidelity"], 3) for tag, v in samples.items()}
    report = {"version": __version__, "seconds": round(time.perf_counter() - started, 1), "stages": stages,
              "model": head_map.shape.as_dict(), "learning_rate": learning_rate, "clip": clip_name,
              "caption": " ".join(world.caption_words(clip)), "target": " ".join(world.caption_words(target)),
              "strength": settings["strength"], "motion_fidelity": scores}  # fmt: skip
    _write_report(out, report)
    return report


def _write_report(out: str, report: dict) -> None:
    lines = [
        "# Follow-Your-Motion demo report",
        "",
        f"fym {report['version']}; the MotionBench Wan (Wan 2.1 architecture {report['model']}); reference "
        f"{report['clip']} ('{report['caption']}', 9 latent frames); total {report['seconds']} s.",
        f"Learning rate {report['learning_rate']} (the paper's 1e-5 barely moves a small model in a few thousand steps).",
        "",
        "| stage | heads | steps | seconds | mean loss, first 10 steps | mean loss, last 10 steps | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, s in report["stages"].items():
        lines.append(
            f"| {stage} | {s['heads']} | {s['steps']} | {s['seconds']} | {s['first_loss']} | {s['last_loss']} "
            f"| {s['file']} |"
        )
    fidelity = report["motion_fidelity"]
    lines += ["", f"Sampled '{report['target']}' from one noise: motion fidelity to the reference (1 = the same "
              f"frame-to-frame motion) {fidelity['with_lora']} with the temporal LoRA at {report['strength']}, "
              f"{fidelity['without_lora']} without it. motion.png rows: reference, ideal transfer, with the LoRA, "
              "without.",
              "", "Head map: head_map.json, head_map.png (rows layers, columns heads; red temporal, blue spatial).",
              "Loss curves: spatial_loss.png, temporal_loss.png."]  # fmt: skip
    with open(os.path.join(out, "report.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "report.json"), "w") as handle:
        json.dump(report, handle, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="fym_demo_output", help="output folder (default: %(default)s)")
    parser.add_argument("--spatial-steps", type=int, help="default: bench.motionbench.LORA's")
    parser.add_argument("--temporal-steps", type=int, help="default: bench.motionbench.LORA's")
    parser.add_argument("--learning-rate", type=float, help="default: bench.motionbench.LORA's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip", default="nonrigid-circle-crawl", help="a MotionBench reference clip")
    args = parser.parse_args(argv)
    settings = motionbench.LORA
    report = run(
        args.out, args.spatial_steps or settings["spatial_steps"], args.temporal_steps or settings["temporal_steps"],
        args.learning_rate or settings["lr"], args.seed, args.clip,
    )  # fmt: skip
    fidelity = report["motion_fidelity"]
    print(f"done in {report['seconds']} s; motion fidelity {fidelity['with_lora']} with the LoRA, "
          f"{fidelity['without_lora']} without; see {os.path.join(args.out, 'report.md')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
