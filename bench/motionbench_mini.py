"""MotionBench-mini: does Follow-Your-Motion's motion transfer work? Measured in one command.

    python bench/motionbench_mini.py --device cuda --workers 8   # 8 reference clips x 1 seed, 8.3 min on an H100
    python bench/motionbench_mini.py --threads 2                 # the same on a CPU: hours (1500 steps per stage)
    python bench/motionbench_mini.py --seeds 2                   # x 2 seeds

Uses the shipped bench/motionbench/motionbench_wan.safetensors (--weights for another). For every reference
clip of bench.motionbench.world.reference_clips (4 categories x 2, motions the model never saw) and seed, each
variant below tunes LoRAs on the reference with the same step budget, then the temporal LoRA alone is merged
into the base model at a strength and the target caption (same scene, new object colours and shapes) is sampled
from the same noise:

- full:            classify_heads -> spatial LoRA (spatial heads) -> temporal LoRA (temporal heads; sparse
                   frames, adaptive RoPE, motion loss), the method as in fym;
- naive LoRA:      the same two stages with every head trained in both (the paper's "w/o STD LoRA");
- w/o adaptive RoPE: sparse frames at stock positions 0..count-1;
- w/o sparse:      the temporal stage on all frames;
- w/o motion loss: motion_loss_weight 0;
- fixed window:    the full method with release 0.1's sparse frames: `count` frames `stride` apart at a random
                   start, a window that never moves when it spans the clip (5 at stride 2 in 9 frames);
- three clips:     the full method trained on the reference and 2 clips of its motion with other looks
                   (world.other_looks), each with its caption, as a user's several clips of one effect;
- base:            no LoRA (the floor);
- oracle:          the reference motion re-rendered with the target appearance (the ceiling of every metric).

Diagnosis rows (the full method's temporal LoRA, other prompts): "probe: new colour" keeps the reference's shapes
and takes the target's colours, "probe: new shape" the other way round, so a motion that transfers to one and not
the other is tied to that part of the look.

--patterns runs the leak world: every reference object carries a second colour that no caption names
(world.with_patterns), and leakage measures how much of the reference's colours, named or not, the new video shows.

Results (mean, std over clips x seeds, per strength, and paired differences with 95% t intervals) go to
bench/results/NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import RESULTS, write  # noqa: E402
from bench.motionbench import LORA, SHIFT, metrics, model, train_config, world  # noqa: E402
from bench.motionbench.sample import merged, sample  # noqa: E402
from fym import train as fym_train  # noqa: E402
from fym.config import SPATIAL, TEMPORAL, ClassifyConfig  # noqa: E402
from fym.diffusers_host import DiffusersWan  # noqa: E402
from fym.heads import HeadMap, classify_heads, format_overrides, split_if_one_sided  # noqa: E402
from fym.train import train_stage  # noqa: E402

TRAINED = ("full", "naive_lora", "no_adaptive_rope", "no_sparse", "no_motion_loss", "fixed_window", "three_clips")
VARIANTS = TRAINED + ("base", "oracle")
PROBES = ("probe_new_color", "probe_new_shape")  # the full method's LoRA with half of the target's look
ROWS = VARIANTS + PROBES + ("reconstruction",)  # + the full method's LoRAs re-creating the reference itself
EXTRA_CLIPS = 2  # three clips = the reference + 2 other looks
METRICS = ("motion_fidelity", "track_error", "appearance", "leakage", "temporal_consistency", "found")
HIGHER_IS_BETTER = {"motion_fidelity": True, "track_error": False, "appearance": True, "leakage": False,
                    "temporal_consistency": True, "found": True, "tune_s": False, "act_mib": False}  # fmt: skip


class SavedTensors:
    """Peak bytes that autograd keeps for backward within one training step (the activation memory that
    sparse sampling is meant to cut), counted once per storage. Deterministic, unlike CPU RSS."""

    def __init__(self) -> None:
        self.peak = 0
        self._step_bytes = 0
        self._seen: set[int] = set()

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self._step_bytes += storage.nbytes()
        return tensor

    def on_step(self, _step: int) -> None:
        self.peak = max(self.peak, self._step_bytes)
        self._step_bytes, self._seen = 0, set()

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def all_heads(head_map: HeadMap, kind: str) -> HeadMap:
    """The head map with every head forced to `kind` (naive LoRA: all heads in a stage)."""
    shape = head_map.shape
    kinds = {(i, h): kind for i in range(shape.num_layers) for h in range(shape.num_heads)}
    return head_map.with_changes(overrides=format_overrides(kinds))


def stage_configs(args) -> dict:
    """Spatial and per-variant temporal TrainConfigs (the fym defaults, with the bench's steps/lr/rank)."""
    recipe = dict(rank=args.rank, lr=args.lr, stride=args.stride, count=args.count, log_every=10**6)
    spatial = train_config(SPATIAL, args.spatial_steps, **recipe)
    temporal = train_config(TEMPORAL, args.temporal_steps, **recipe)
    return {
        "spatial": spatial,
        "full": temporal,
        "naive_lora": temporal,
        "no_adaptive_rope": replace(temporal, adaptive_rope=False),
        "no_sparse": replace(temporal, sparse_sampling=False),
        "no_motion_loss": replace(temporal, motion_loss_weight=0.0),
        "fixed_window": temporal,
        "three_clips": temporal,
    }


def fixed_window_indices(num_frames: int, stride: int, count: int, rng) -> list[int]:
    """Release 0.1's sparse frames: `count` frames `stride` apart at a random start (one start when they span
    the clip)."""
    span = (count - 1) * stride + 1
    start = rng.randrange(num_frames - span + 1)
    return [start + stride * i for i in range(count)]


def timed_stage(host, stage, latents, context, head_map, config):
    """train_stage (adapters removed afterwards, kept in the result) with its wall time (s) and the peak
    memory autograd saves for backward in one step (MiB)."""
    memory = SavedTensors()
    with torch.autograd.graph.saved_tensors_hooks(memory.pack, lambda tensor: tensor):
        started = time.perf_counter()
        result = train_stage(host, stage, latents, context, head_map, config, on_step=memory.on_step)
        seconds = time.perf_counter() - started
    return result, seconds, memory.mib


def run_clip(host, name, clip, targets, seed, configs, args) -> dict:
    """Every chosen variant on one (clip, seed): {variant: {"tune_s", "act_mib", strength: metrics}}."""
    device = args.device
    looks = [clip, *world.other_looks(clip, targets, EXTRA_CLIPS)]  # the reference first

    def training_data(clips):
        videos = [world.render(c)[None].to(device) for c in clips]  # (1, 16, T, H, W) each
        captions = [world.caption(c)[None].to(device) for c in clips]
        frames = [v[0].transpose(0, 1).unsqueeze(2) for v in videos]  # (T, 16, 1, H, W) single-frame latents
        return videos, captions, frames

    videos, captions, frames = training_data(looks)
    reference, context = videos[0], captions[0]
    target_context = world.caption(clip.with_appearances(targets))[None].to(device)
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(10_000 + seed))
    classify = ClassifyConfig(num_queries=256, seed=seed)
    head_map, forced = split_if_one_sided(classify_heads(host, reference, context, classify))
    spatial_cfg = replace(configs["spatial"], seed=seed)
    out = {"heads": {"spatial": head_map.count("spatial"), "temporal": head_map.count("temporal"),
                     "forced_split": forced}}  # fmt: skip

    def generate(loras, caption=target_context, wanted=targets):
        with merged(host, loras):
            video = sample(host, caption, seed, args.sample_steps, args.cfg, noise=noise, shift=args.sample_shift)[0]
            video = video.cpu()
        return metrics.evaluate(video, clip, wanted), video  # leakage: the reference's own colours

    def strip(video, label):
        if args.strips:
            metrics.save_strip(video, os.path.join(args.strips, f"{name}_s{seed}_{label}.png"), 6)

    spatial_runs = {}
    for variant in args.variants:
        if variant not in TRAINED:
            continue
        naive = variant == "naive_lora"
        maps = (all_heads(head_map, "spatial"), all_heads(head_map, "temporal")) if naive else (head_map, head_map)
        count = 1 + EXTRA_CLIPS if variant == "three_clips" else 1
        key = ("naive" if naive else "decoupled", count)
        data = (videos[:count], captions[:count]) if count > 1 else (reference, context)
        if key not in spatial_runs:  # the decoupled one-clip variants share one spatial LoRA
            spatial_data = (frames[:count], captions[:count]) if count > 1 else (frames[0], context)
            spatial_runs[key] = timed_stage(host, "spatial", *spatial_data, maps[0], spatial_cfg)
        spatial, spatial_s, spatial_mib = spatial_runs[key]
        sampler = fixed_window_indices if variant == "fixed_window" else fym_train.sparse_frame_indices
        host.attach("fym_spatial", spatial.adapters)
        try:
            with mock.patch.object(fym_train, "sparse_frame_indices", sampler):
                temporal, temporal_s, temporal_mib = timed_stage(
                    host, "temporal", *data, maps[1], replace(configs[variant], seed=seed)
                )
        finally:
            host.detach("fym_spatial")
        result = {"tune_s": spatial_s + temporal_s, "temporal_s": temporal_s,
                  "act_mib": max(spatial_mib, temporal_mib)}  # fmt: skip
        for strength in args.strengths:
            result[str(strength)], video = generate([(temporal.lora, strength)])
            strip(video, f"{variant}_at{strength}")
        out[variant] = result
        if variant == "full":
            # sanity: spatial + temporal LoRA at 1 with the reference caption re-create it?
            recon, video = generate([(spatial.lora, 1.0), (temporal.lora, 1.0)], context, clip.appearances)
            out["reconstruction"] = {**{k: result[k] for k in ("tune_s", "temporal_s", "act_mib")},
                                     **{str(s): recon for s in args.strengths}}  # fmt: skip
            strip(video, "reconstruction")
            # diagnosis: the same LoRA with only the colours, or only the shapes, of the target
            half_looks = {
                "probe_new_color": tuple((c, s) for (c, _), (_, s) in zip(targets, clip.appearances, strict=True)),
                "probe_new_shape": tuple((c, s) for (_, s), (c, _) in zip(targets, clip.appearances, strict=True)),
            }
            for probe, look in half_looks.items():
                caption = world.caption(clip.with_appearances(look))[None].to(device)
                out[probe] = {"tune_s": 0.0, "act_mib": 0.0}
                for strength in args.strengths:
                    out[probe][str(strength)], video = generate([(temporal.lora, strength)], caption, look)
                    strip(video, f"{probe}_at{strength}")
        print(f"  {name} seed {seed} {variant:17s} tune {result['tune_s']:6.1f}s  " + "  ".join(
            f"@{s}: MF {result[str(s)]['motion_fidelity']:.3f} err {result[str(s)]['track_error']:.2f} "
            f"app {result[str(s)]['appearance']:.2f} leak {result[str(s)]['leakage']:.2f}" for s in args.strengths
        ), flush=True)  # fmt: skip
    base, video = generate([])
    out["base"] = {"tune_s": 0.0, "act_mib": 0.0, **{str(s): base for s in args.strengths}}
    oracle = metrics.evaluate(world.render(clip.with_appearances(targets)), clip, targets)
    out["oracle"] = {"tune_s": 0.0, "act_mib": 0.0, **{str(s): oracle for s in args.strengths}}
    strip(video, "base")
    strip(reference[0].cpu(), "reference")
    print(f"  {name} seed {seed} base  MF {base['motion_fidelity']:.3f} err {base['track_error']:.2f} "
          f"app {base['appearance']:.2f}", flush=True)  # fmt: skip
    return out


def _run_job(args, run, job) -> dict:
    """One (clip, seed) job on a fym.library worker: the model loaded, then run(host, name, clip, targets, seed,
    configs, args)."""
    name, clip, targets, seed = job
    print(f"[{name} seed {seed}]", flush=True)
    host = DiffusersWan(model.load(args.weights).to(args.device))
    return run(host, name, clip, targets, seed, stage_configs(args), args)


def run_jobs(args, jobs: list, run=run_clip, done=None) -> list[dict]:
    """run(host, name, clip, targets, seed, configs, args) for every job (name, clip, targets, seed) as a task of
    fym.library's Ray runner: a local Ray of args.workers x args.threads CPUs (args.workers jobs side by side on
    one GPU), or the cluster at args.address; results in the jobs' order. done(job, result) is called as each job
    finishes (e.g. to keep it on disk before the whole run ends). A failed job stops the table."""
    from fym.library import Job
    from fym.library import run_jobs as run_on_ray

    named = {f"{job[0]}_seed{job[3]}": job for job in jobs}
    rows = run_on_ray(
        [Job(name, _run_job, (args, run, job)) for name, job in named.items()],
        address=args.address, workers=args.workers * args.threads, threads=args.threads,
        gpus_per_job=1 / args.workers,
        on_done=lambda name, row: done(named[name], _result(row)) if done and row["status"] == "done" else None,
    )  # fmt: skip
    failed = {name: row["error"] for name, row in rows.items() if row["status"] != "done"}
    if failed:
        raise RuntimeError(f"MotionBench jobs failed: {failed}")
    return [_result(rows[name]) for name in named]


def _result(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in ("status", "seconds")}


def keep_jobs(name: str):
    """A run_jobs `done` that appends each finished job to bench/results/NAME.jobs.jsonl, so a run stopped before
    its end keeps what it measured."""
    path = os.path.join(RESULTS, f"{name}.jobs.jsonl")

    def done(job, result) -> None:
        job_name, clip, _, seed = job
        with open(path, "a") as handle:
            handle.write(
                json.dumps({"clip": job_name, "category": clip.category, "seed": seed, "result": result}) + "\n"
            )

    return done


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of a benchmark run: clips, seeds, the LoRA recipe, sampling, Ray workers."""
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--clips", default="", help="comma-separated clip names (default: all 8)")
    parser.add_argument("--spatial-steps", type=int, default=LORA["spatial_steps"])
    parser.add_argument("--temporal-steps", type=int, default=LORA["temporal_steps"])
    parser.add_argument("--lr", type=float, default=LORA["lr"])
    parser.add_argument("--rank", type=int, default=LORA["rank"])
    parser.add_argument("--stride", type=int, default=LORA["stride"])
    parser.add_argument("--count", type=int, default=LORA["count"])
    parser.add_argument("--sample-steps", type=int, default=LORA["sample_steps"])
    parser.add_argument("--cfg", type=float, default=1.0)
    parser.add_argument("--sample-shift", type=float, default=SHIFT)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--workers", type=int, default=1, help="(clip, seed) jobs side by side on a local Ray")
    parser.add_argument("--address", help="run the jobs on this Ray cluster (fym.library) instead of a local one")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--strips", default="", help="folder for PNG strips of every generated video")
    parser.add_argument("--patterns", action="store_true", help="the leak world: reference objects carry an "
                        "unnamed second colour (world.with_patterns)")  # fmt: skip


def benchmark_jobs(args) -> list[tuple]:
    """(name, clip, targets, seed) for args.seeds seeds x the chosen reference clips (all 8 by default); sets
    args.clip_count and args.runs."""
    entries = world.reference_clips(patterns=args.patterns)
    if args.clips:
        wanted = args.clips.split(",")
        entries = [e for e in entries if e[0] in wanted]
    args.clip_count, args.runs = len(entries), len(entries) * args.seeds
    return [(name, clip, targets, seed) for seed in range(args.seeds) for name, clip, targets in entries]


def rows_of(runs: list[dict]) -> list[str]:
    """The ROWS every run has (the chosen variants, base, oracle, probes and reconstruction with the full method)."""
    return [row for row in ROWS if all(row in r["result"] for r in runs)]


def summarise(runs: list[dict], strengths: list[float]) -> dict:
    """{strength: {row: {metric: {"mean", "std"}}}} over every (clip, seed) run."""
    summary = {}
    for strength in strengths:
        table = {}
        for variant in rows_of(runs):
            row = {}
            for metric in METRICS:
                values = [r["result"][variant][str(strength)][metric] for r in runs]
                row[metric] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
            for metric in ("tune_s", "act_mib"):
                values = [r["result"][variant][metric] for r in runs]
                row[metric] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
            table[variant] = row
        summary[str(strength)] = table
    return summary


COMPARISONS = [("full", "base"), ("full", "naive_lora"), ("full", "fixed_window"), ("three_clips", "full"),
               ("no_adaptive_rope", "full"), ("no_sparse", "full"), ("no_motion_loss", "full"),
               ("naive_lora", "base"), ("three_clips", "base"), ("probe_new_color", "base"),
               ("probe_new_shape", "base")]  # fmt: skip


def paired(runs: list[dict], a: str, b: str, strength: float, metric: str) -> dict:
    """Mean of a - b over the runs (same clip, seed and noise), its 95% t interval, and how often a > b."""
    differences = [r["result"][a][str(strength)][metric] - r["result"][b][str(strength)][metric] for r in runs]
    mean, low, high = metrics.mean_interval(differences)
    return {"mean": mean, "low": low, "high": high, "a_higher": sum(d > 0 for d in differences), "n": len(differences)}


def paired_table(runs: list[dict], strengths: list[float]) -> dict:
    """{strength: {"a - b": {metric: paired(...)}}} for the COMPARISONS whose rows every run has."""
    rows = rows_of(runs)
    return {
        str(strength): {
            f"{a} - {b}": {m: paired(runs, a, b, strength, m) for m in ("motion_fidelity", "leakage", "appearance")}
            for a, b in COMPARISONS if a in rows and b in rows
        }
        for strength in strengths
    }  # fmt: skip


def per_category(runs: list[dict], strength: float) -> dict:
    """{category: {row: mean metrics, ...}} at one strength."""
    table = {}
    rows = rows_of(runs)
    for category in world.CATEGORIES:
        chosen = [r for r in runs if r["category"] == category]
        if not chosen:
            continue
        table[category] = {
            v: {m: statistics.fmean(r["result"][v][str(strength)][m] for r in chosen)
                for m in ("motion_fidelity", "track_error", "appearance", "leakage")}
            for v in rows if v != "reconstruction"
        }  # fmt: skip
    return table


NAMES = {"full": "Full method (ours)", "naive_lora": "Naive LoRA (w/o STD LoRA)",
         "no_adaptive_rope": "w/o adaptive RoPE", "no_sparse": "w/o sparse sampling",
         "no_motion_loss": "w/o motion loss", "fixed_window": "Full, release 0.1's fixed window",
         "three_clips": "Full, 3 clips of the motion (2 other looks)", "base": "Base model, no LoRA (floor)",
         "oracle": "Oracle: reference motion, target look (ceiling)",
         "probe_new_color": "Probe: full LoRA, target colours on the reference's shapes",
         "probe_new_shape": "Probe: full LoRA, target shapes in the reference's colours",
         "reconstruction": "Full method, reference caption + both LoRAs @1 (reconstruction)"}  # fmt: skip


def markdown(summary: dict, categories: dict, pairs: dict, args, seconds: float, heads: list) -> str:
    lines = [
        "# MotionBench-mini results" + (" (leak world)" if args.patterns else ""),
        "",
        f"Command: `{' '.join(['python'] + sys.argv)}`; total {seconds / 60:.1f} min on {args.device} "
        f"({args.workers} Ray worker(s) x {args.threads} thread(s)).",
        f"{args.runs} runs = {args.clip_count} reference clips x {args.seeds} seed(s); spatial {args.spatial_steps} + "
        f"temporal {args.temporal_steps} steps, rank {args.rank}, lr {args.lr}, shift {SHIFT}, sparse = "
        f"{args.count} of 9 latent frames (stride {args.stride}, or one per segment where that window cannot move); "
        f"sampling {args.sample_steps} Euler steps, shift {args.sample_shift}, cfg {args.cfg}. Mean +- std over runs. "
        "(+) higher is better, (-) lower is better.",
        f"Heads per clip (spatial/temporal of 16): {', '.join(heads)}.",
    ]
    arrows = {m: "(+)" if HIGHER_IS_BETTER[m] else "(-)" for m in HIGHER_IS_BETTER}  # cp1252-safe source
    columns = list(METRICS) + ["tune_s", "act_mib"]
    for strength, table in summary.items():
        lines += ["", f"## Temporal LoRA strength {strength}", "",
                  "| variant | " + " | ".join(f"{c} {arrows[c]}" for c in columns) + " |",
                  "|---|" + "---|" * len(columns)]  # fmt: skip
        for variant, row in table.items():
            cells = [f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" if c not in ("tune_s", "act_mib")
                     else f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" for c in columns]  # fmt: skip
            lines.append(f"| {NAMES[variant]} | " + " | ".join(cells) + " |")
        lines += ["", f"Paired differences at strength {strength} (same clip, seed and noise; mean [95% t interval], "
                  "runs where the first is higher):", "",
                  "| a - b | motion_fidelity | leakage | appearance |", "|---|---|---|---|"]  # fmt: skip
        for name, row in pairs[strength].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{row[m]['mean']:+.3f} [{row[m]['low']:+.3f}, {row[m]['high']:+.3f}] ({row[m]['a_higher']}/{row[m]['n']})"
                for m in ("motion_fidelity", "leakage", "appearance")) + " |")  # fmt: skip
    strength = str(args.strengths[-1])
    shown = [v for v in next(iter(categories.values()))] if categories else []
    lines += ["", f"## Motion fidelity / leakage per category (strength {strength})", "",
              "| category | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]  # fmt: skip
    for category, table in categories.items():
        lines.append(f"| {category} | " + " | ".join(
            f"{table[v]['motion_fidelity']:.2f} / {table[v]['leakage']:.2f}" for v in shown) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_arguments(parser)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, LORA["strength"]])
    parser.add_argument("--name", default="motionbench_mini", help="results file name (bench/results/NAME.md)")
    parser.add_argument("--weights", default=model.WEIGHTS)
    parser.add_argument("--variants", default=",".join(TRAINED), help=f"comma-separated, of {', '.join(TRAINED)} "
                        "(base and oracle always run)")  # fmt: skip
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    unknown = set(args.variants) - set(TRAINED)
    if unknown:
        parser.error(f"unknown variants {', '.join(sorted(unknown))}; choose from {', '.join(TRAINED)}")
    if args.strips:
        os.makedirs(args.strips, exist_ok=True)
    jobs = benchmark_jobs(args)
    started = time.perf_counter()
    os.makedirs(RESULTS, exist_ok=True)
    results = run_jobs(args, jobs, done=keep_jobs(args.name))
    runs = [{"clip": name, "category": clip.category, "seed": seed, "result": result}
            for (name, clip, _, seed), result in zip(jobs, results, strict=True)]  # fmt: skip
    seconds = time.perf_counter() - started
    summary = summarise(runs, args.strengths)
    categories = per_category(runs, args.strengths[-1])
    pairs = paired_table(runs, args.strengths)
    heads = [f"{r['result']['heads']['spatial']}/{r['result']['heads']['temporal']}"
             + ("*" if r["result"]["heads"]["forced_split"] else "") for r in runs]  # fmt: skip
    os.makedirs(RESULTS, exist_ok=True)
    text = markdown(summary, categories, pairs, args, seconds, heads)
    with open(os.path.join(RESULTS, f"{args.name}.md"), "w") as handle:
        handle.write(text)
    write(args.name, {"seconds": seconds, "config": vars(args), "summary": summary, "paired": pairs,
                      "per_category": categories, "runs": runs})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
