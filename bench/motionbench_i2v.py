"""MotionBench-mini, image-to-video: a reference motion onto a given first frame of another object.

    python bench/motionbench_i2v.py --quick          # the CPU run in bench/results (see its .md for the steps)
    python bench/motionbench_i2v.py --seeds 3        # the full recipe (LORA: 1500 + 1500 steps); a GPU job

Uses the image-to-video MotionBench Wan (bench/motionbench/motionbench_wan_i2v.safetensors: the T2V model
fine-tuned with Wan 2.2 A14B I2V's first-frame concat; --weights for another). For every reference clip of
bench.motionbench.world.reference_clips (4 categories x 2) and seed:

- full:  classify_heads -> spatial LoRA -> temporal LoRA (sparse frames + frame 0, adaptive RoPE, motion loss) on
         the reference, its own latent frame 0 given by concat (fym's image-to-video training), motionbench_mini's
         "full" recipe (train_config, LORA); then the temporal LoRA alone, merged at a strength, samples the target:
         its caption and its first frame (the oracle clip's frame 0: the reference motion re-rendered with the
         target's objects), from a seeded noise;
- floor: the same given frame, caption and noise without a LoRA;
- oracle: the reference motion with the target's look (the ceiling of every metric);
- reconstruction: both LoRAs at 1 with the reference's caption and frame 0 (does the LoRA hold the motion?).

Motion fidelity, appearance (the given object's colour), leakage (the reference's colour) ...; mean +- std over
clips x seeds, and the paired difference full - floor with a 95% t confidence interval. Results go to
bench/results/motionbench_i2v.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import RESULTS, environment, write  # noqa: E402
from bench.motionbench import LORA, SHIFT, metrics, model, world  # noqa: E402
from bench.motionbench.sample import merged, sample  # noqa: E402
from bench.motionbench_mini import METRICS, add_recipe_arguments, benchmark_jobs, run_jobs, timed_stage  # noqa: E402
from fym.config import ClassifyConfig  # noqa: E402
from fym.heads import classify_heads, split_if_one_sided  # noqa: E402

ROWS = ("full", "base", "oracle", "reconstruction")
NAMES = {"full": "Full method, temporal LoRA on the target's first frame", "base": "No LoRA, same first frame (floor)",
         "oracle": "Oracle: reference motion, target look (ceiling)",
         "reconstruction": "Reference caption + frame 0, both LoRAs @1 (reconstruction)"}  # fmt: skip
QUICK = dict(spatial_steps=100, temporal_steps=100, seeds=3, workers=2)  # the CPU-sized run (--quick)


def run_i2v_clip(host, name, clip, targets, seed, configs, args) -> dict:
    """The full method, the floor, the oracle and the reconstruction on one (clip, seed): {row: metrics}."""
    reference = world.render(clip)[None].to(args.device)  # (1, 16, T, H, W)
    target_clip = clip.with_appearances(targets)
    target_video = world.render(target_clip)
    given = model.i2v_condition(world.caption(clip), reference).to(args.device)  # training: its own frame 0
    target = model.i2v_condition(world.caption(target_clip), target_video).to(args.device)
    frames = reference[0].transpose(0, 1).unsqueeze(2)  # (T, 16, 1, H, W) single-frame latents
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(10_000 + seed))
    head_map, forced = split_if_one_sided(
        classify_heads(host, reference, given, ClassifyConfig(num_queries=256, seed=seed))
    )
    out = {"heads": {"spatial": head_map.count("spatial"), "temporal": head_map.count("temporal"),
                     "forced_split": forced}}  # fmt: skip
    spatial, spatial_s, spatial_mib = timed_stage(
        host, "spatial", frames, given, head_map, replace(configs["spatial"], seed=seed)
    )
    host.attach("fym_spatial", spatial.adapters)
    try:
        temporal, temporal_s, temporal_mib = timed_stage(
            host, "temporal", reference, given, head_map, replace(configs["full"], seed=seed)
        )
    finally:
        host.detach("fym_spatial")
    out["tune_s"], out["act_mib"] = spatial_s + temporal_s, max(spatial_mib, temporal_mib)

    def generate(loras, condition, looks, row):
        with merged(host, loras):
            video = sample(host, condition, seed, args.sample_steps, args.cfg, noise=noise, shift=args.sample_shift)
        video = video[0].cpu()
        if args.strips:
            metrics.save_strip(video, os.path.join(args.strips, f"{name}_s{seed}_{row}.png"), 6)
        return {**metrics.evaluate(video, clip, looks), "first_frame_error": first_frame_error(video, condition)}

    out["full"] = generate([(temporal.lora, args.strength)], target, targets, "full")
    out["base"] = generate([], target, targets, "base")
    out["oracle"] = {**metrics.evaluate(target_video, clip, targets), "first_frame_error": 0.0}
    out["reconstruction"] = generate([(spatial.lora, 1.0), (temporal.lora, 1.0)], given, clip.appearances, "recon")
    print(f"  {name} seed {seed} tune {out['tune_s']:.0f}s  " + "  ".join(
        f"{row}: MF {out[row]['motion_fidelity']:.3f} app {out[row]['appearance']:.2f} "
        f"leak {out[row]['leakage']:.2f}" for row in ("full", "base", "reconstruction")), flush=True)  # fmt: skip
    return out


def first_frame_error(video: torch.Tensor, condition) -> float:
    """Squared error of the sample's latent frame 0 against the given one, over the given frame's variance."""
    given = condition.per_frame["concat"][0, 4:, 0].cpu()
    return float(((video[:, 0] - given) ** 2).mean() / given.var())


def t_quantile_975(df: int) -> float:
    """Student t's 97.5% quantile (Cornish-Fisher expansion around the normal's: within 0.005 of the exact value
    for df >= 5, 0.03 for df >= 3)."""
    z = statistics.NormalDist().inv_cdf(0.975)
    terms = [(z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384]
    return z + sum(term / df ** (i + 1) for i, term in enumerate(terms))


def paired(a: list[float], b: list[float]) -> dict:
    """Mean of a - b over pairs, its 95% t confidence interval, and on how many pairs a > b."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(diffs)
    half = t_quantile_975(len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    return {"mean": mean, "ci95": [mean - half, mean + half], "higher": sum(d > 0 for d in diffs), "n": len(diffs)}


def summarise(runs: list[dict]) -> dict:
    keys = METRICS + ("first_frame_error",)
    table = {row: {k: {"mean": statistics.fmean(r["result"][row][k] for r in runs),
                       "std": statistics.pstdev([r["result"][row][k] for r in runs])} for k in keys}
             for row in ROWS}  # fmt: skip
    differences = {k: paired([r["result"]["full"][k] for r in runs], [r["result"]["base"][k] for r in runs])
                   for k in ("motion_fidelity", "track_error", "appearance", "leakage", "found")}  # fmt: skip
    per_clip = {}
    for r in runs:
        per_clip.setdefault(r["clip"], {row: [] for row in ROWS})
        for row in ROWS:
            per_clip[r["clip"]][row].append(r["result"][row]["motion_fidelity"])
    per_clip = {clip: {row: statistics.fmean(v) for row, v in rows.items()} for clip, rows in per_clip.items()}
    return {"rows": table, "full_minus_floor": differences, "per_clip_motion_fidelity": per_clip}


def markdown(summary: dict, args, seconds: float, heads: list[str]) -> str:
    keys = METRICS + ("first_frame_error",)
    lines = [
        "# MotionBench-mini, image-to-video: a reference motion onto a given first frame of another object",
        "",
        f"Command: `{' '.join(['python'] + sys.argv)}`; total {seconds / 60:.1f} min on {args.device} "
        f"({args.workers} Ray worker(s) x {args.threads} thread(s)). Weights: {os.path.basename(args.weights)}.",
        f"{args.runs} runs = {args.clip_count} reference clips x {args.seeds} seed(s); spatial {args.spatial_steps} + "
        f"temporal {args.temporal_steps} steps (the recipe: {LORA['spatial_steps']} + {LORA['temporal_steps']}), "
        f"rank {args.rank}, lr {args.lr}, shift {SHIFT}, sparse = frame 0 + {args.count} of 9 latent frames at stride "
        f"{args.stride}, adaptive RoPE, motion loss; temporal LoRA at strength {args.strength}; sampling "
        f"{args.sample_steps} Euler steps, shift {args.sample_shift}, cfg {args.cfg}. Training gives the reference's "
        "own frame 0; sampling gives the target's frame 0 (the oracle's) and the target caption.",
        f"Heads per run (spatial/temporal of 16): {', '.join(heads)}.",
        f"Environment: {json.dumps(environment())}.",
        "",
        "| row | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for row, values in summary["rows"].items():
        lines.append(f"| {NAMES[row]} | " + " | ".join(
            f"{values[k]['mean']:.3f} ± {values[k]['std']:.3f}" for k in keys) + " |")  # fmt: skip
    lines += ["", "Paired difference full - floor over clips x seeds (mean, 95% t confidence interval, runs where "
              "full is higher):", "", "| metric | mean | 95% CI | full higher |", "|---|---|---|---|"]  # fmt: skip
    for k, d in summary["full_minus_floor"].items():
        lines.append(
            f"| {k} | {d['mean']:+.3f} | [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | {d['higher']} of {d['n']} |"
        )
    lines += ["", "Motion fidelity per clip (mean over seeds):", "",
              "| clip | " + " | ".join(ROWS) + " |", "|---|" + "---|" * len(ROWS)]  # fmt: skip
    for clip, rows in summary["per_clip_motion_fidelity"].items():
        lines.append(f"| {clip} | " + " | ".join(f"{rows[r]:.3f}" for r in ROWS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_arguments(parser)
    parser.add_argument("--strength", type=float, default=LORA["strength"], help="temporal LoRA strength")
    parser.add_argument("--quick", action="store_true", help=f"the CPU-sized run: {QUICK} (explicit options win)")
    parser.add_argument("--name", default="motionbench_i2v", help="results file name (bench/results/NAME.md)")
    parser.add_argument("--weights", default=model.I2V_WEIGHTS)
    args = parser.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    if args.strips:
        os.makedirs(args.strips, exist_ok=True)
    jobs = benchmark_jobs(args)
    started = time.perf_counter()
    results = run_jobs(args, jobs, run_i2v_clip)
    seconds = time.perf_counter() - started
    runs = [{"clip": name, "category": clip.category, "seed": seed, "result": result}
            for (name, clip, _, seed), result in zip(jobs, results, strict=True)]  # fmt: skip
    summary = summarise(runs)
    heads = [f"{r['result']['heads']['spatial']}/{r['result']['heads']['temporal']}"
             + ("*" if r["result"]["heads"]["forced_split"] else "") for r in runs]  # fmt: skip
    os.makedirs(RESULTS, exist_ok=True)
    text = markdown(summary, args, seconds, heads)
    with open(os.path.join(RESULTS, f"{args.name}.md"), "w") as handle:
        handle.write(text)
    write(args.name, {"seconds": seconds, "config": vars(args), "summary": summary, "runs": runs})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
