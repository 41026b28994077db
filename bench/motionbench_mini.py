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
- base:            no LoRA (the floor);
- oracle:          the reference motion re-rendered with the target appearance (the ceiling of every metric).

Results (mean, std over clips x seeds, per strength) go to bench/results/motionbench_mini.{md,json}.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import RESULTS, write  # noqa: E402
from bench.motionbench import LORA, SHIFT, metrics, model, train_config, world  # noqa: E402
from bench.motionbench.sample import merged, sample  # noqa: E402
from fym.config import SPATIAL, TEMPORAL, ClassifyConfig  # noqa: E402
from fym.diffusers_host import DiffusersWan  # noqa: E402
from fym.heads import HeadMap, classify_heads, format_overrides, split_if_one_sided  # noqa: E402
from fym.train import train_stage  # noqa: E402

VARIANTS = ("full", "naive_lora", "no_adaptive_rope", "no_sparse", "no_motion_loss", "base", "oracle")
ROWS = VARIANTS + ("reconstruction",)  # + the full method's LoRAs re-creating the reference itself
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
    }


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
    """Every variant on one (clip, seed): {variant: {"tune_s", "act_mib", strength: metrics}}."""
    reference = world.render(clip)[None].to(args.device)  # (1, 16, T, H, W)
    context = world.caption(clip)[None].to(args.device)
    target_context = world.caption(clip.with_appearances(targets))[None].to(args.device)
    frames = reference[0].transpose(0, 1).unsqueeze(2)  # (T, 16, 1, H, W) single-frame latents
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(10_000 + seed))
    classify = ClassifyConfig(num_queries=256, seed=seed)
    head_map, forced = split_if_one_sided(classify_heads(host, reference, context, classify))
    spatial_cfg = replace(configs["spatial"], seed=seed)
    out = {"heads": {"spatial": head_map.count("spatial"), "temporal": head_map.count("temporal"),
                     "forced_split": forced}}  # fmt: skip

    def generate(loras, caption=target_context, looks=targets):
        with merged(host, loras):
            video = sample(host, caption, seed, args.sample_steps, args.cfg, noise=noise, shift=args.sample_shift)[0]
            video = video.cpu()
        return metrics.evaluate(video, clip, looks), video

    spatial_runs = {}
    for variant in VARIANTS[:5]:
        maps = (all_heads(head_map, "spatial"), all_heads(head_map, "temporal")) if variant == "naive_lora" else (
            head_map, head_map)  # fmt: skip
        key = "naive" if variant == "naive_lora" else "decoupled"
        if key not in spatial_runs:  # the four decoupled variants share one spatial LoRA
            spatial_runs[key] = timed_stage(host, "spatial", frames, context, maps[0], spatial_cfg)
        spatial, spatial_s, spatial_mib = spatial_runs[key]
        host.attach("fym_spatial", spatial.adapters)
        try:
            temporal, temporal_s, temporal_mib = timed_stage(
                host, "temporal", reference, context, maps[1], replace(configs[variant], seed=seed)
            )
        finally:
            host.detach("fym_spatial")
        result = {"tune_s": spatial_s + temporal_s, "temporal_s": temporal_s,
                  "act_mib": max(spatial_mib, temporal_mib)}  # fmt: skip
        for strength in args.strengths:
            result[str(strength)], video = generate([(temporal.lora, strength)])
            if args.strips:
                metrics.save_strip(video, os.path.join(args.strips, f"{name}_s{seed}_{variant}_at{strength}.png"), 6)
        out[variant] = result
        if variant == "full":  # sanity: spatial + temporal LoRA at 1 with the reference caption re-create it?
            recon, video = generate([(spatial.lora, 1.0), (temporal.lora, 1.0)], context, clip.appearances)
            out["reconstruction"] = {**{k: result[k] for k in ("tune_s", "temporal_s", "act_mib")},
                                     **{str(s): recon for s in args.strengths}}  # fmt: skip
            if args.strips:
                metrics.save_strip(video, os.path.join(args.strips, f"{name}_s{seed}_reconstruction.png"), 6)
        print(f"  {name} seed {seed} {variant:17s} tune {result['tune_s']:6.1f}s  " + "  ".join(
            f"@{s}: MF {result[str(s)]['motion_fidelity']:.3f} err {result[str(s)]['track_error']:.2f} "
            f"app {result[str(s)]['appearance']:.2f} leak {result[str(s)]['leakage']:.2f}" for s in args.strengths
        ), flush=True)  # fmt: skip
    base, video = generate([])
    out["base"] = {"tune_s": 0.0, "act_mib": 0.0, **{str(s): base for s in args.strengths}}
    target_video = world.render(clip.with_appearances(targets))
    oracle = metrics.evaluate(target_video, clip, targets)
    out["oracle"] = {"tune_s": 0.0, "act_mib": 0.0, **{str(s): oracle for s in args.strengths}}
    if args.strips:
        metrics.save_strip(video, os.path.join(args.strips, f"{name}_s{seed}_base.png"), 6)
        metrics.save_strip(reference[0].cpu(), os.path.join(args.strips, f"{name}_reference.png"), 6)
    print(f"  {name} seed {seed} base  MF {base['motion_fidelity']:.3f} err {base['track_error']:.2f} "
          f"app {base['appearance']:.2f}", flush=True)  # fmt: skip
    return out


_WORKER: dict = {}


def _start_worker(args, run=run_clip) -> None:
    """Load the model once per process (the benchmark's worker processes, or the main one); `run` runs a job."""
    torch.set_num_threads(args.threads)
    host = DiffusersWan(model.load(args.weights).to(args.device))
    _WORKER.update(args=args, configs=stage_configs(args), host=host, run=run)


def _run_job(job) -> dict:
    name, clip, targets, seed = job
    print(f"[{name} seed {seed}]", flush=True)
    return _WORKER["run"](_WORKER["host"], name, clip, targets, seed, _WORKER["configs"], _WORKER["args"])


def run_jobs(args, jobs: list, run=run_clip) -> list[dict]:
    """run(host, name, clip, targets, seed, configs, args) for every job (name, clip, targets, seed), in
    args.workers processes (one model each) or in this one; results in the jobs' order."""
    if args.workers > 1:  # one model per process; on a GPU they share the device (this small model cannot fill it)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, spawn, initializer=_start_worker, initargs=(args, run)) as pool:
            return list(pool.map(_run_job, jobs))
    _start_worker(args, run)
    return [_run_job(job) for job in jobs]


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of a benchmark run: clips, seeds, the LoRA recipe, sampling, processes."""
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
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--workers", type=int, default=1, help="processes running (clip, seed) jobs side by side")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--strips", default="", help="folder for PNG strips of every generated video")


def benchmark_jobs(args) -> list[tuple]:
    """(name, clip, targets, seed) for args.seeds seeds x the chosen reference clips (all 8 by default); sets
    args.clip_count and args.runs."""
    entries = world.reference_clips()
    if args.clips:
        wanted = args.clips.split(",")
        entries = [e for e in entries if e[0] in wanted]
    args.clip_count, args.runs = len(entries), len(entries) * args.seeds
    return [(name, clip, targets, seed) for seed in range(args.seeds) for name, clip, targets in entries]


def summarise(runs: list[dict], strengths: list[float]) -> dict:
    """{strength: {variant: {metric: {"mean", "std"}}}} over every (clip, seed) run."""
    summary = {}
    for strength in strengths:
        table = {}
        for variant in ROWS:
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


def per_category(runs: list[dict], strength: float) -> dict:
    """{category: {variant: mean motion fidelity, ...}} at one strength."""
    table = {}
    for category in world.CATEGORIES:
        chosen = [r for r in runs if r["category"] == category]
        if not chosen:
            continue
        table[category] = {
            v: {m: statistics.fmean(r["result"][v][str(strength)][m] for r in chosen)
                for m in ("motion_fidelity", "track_error", "appearance", "leakage")}
            for v in VARIANTS
        }  # fmt: skip
    return table


def markdown(summary: dict, categories: dict, args, seconds: float, heads: list) -> str:
    names = {"full": "Full method (ours)", "naive_lora": "Naive LoRA (w/o STD LoRA)",
             "no_adaptive_rope": "w/o adaptive RoPE", "no_sparse": "w/o sparse sampling",
             "no_motion_loss": "w/o motion loss", "base": "Base model, no LoRA (floor)",
             "oracle": "Oracle: reference motion, target look (ceiling)",
             "reconstruction": "Full method, reference caption + both LoRAs @1 (reconstruction)"}  # fmt: skip
    lines = [
        "# MotionBench-mini results",
        "",
        f"Command: `{' '.join(['python'] + sys.argv)}`; total {seconds / 60:.1f} min on {args.device} "
        f"({args.workers} process(es) x {args.threads} thread(s)).",
        f"{args.runs} runs = {args.clip_count} reference clips x {args.seeds} seed(s); spatial {args.spatial_steps} + "
        f"temporal {args.temporal_steps} steps, rank {args.rank}, lr {args.lr}, shift {SHIFT}, sparse = "
        f"{args.count} of 9 latent frames at stride {args.stride}; sampling {args.sample_steps} Euler steps, "
        f"shift {args.sample_shift}, cfg {args.cfg}. Mean +- std over runs. (+) higher is better, (-) lower is better.",
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
            lines.append(f"| {names[variant]} | " + " | ".join(cells) + " |")
    strength = str(args.strengths[0])
    lines += ["", f"## Motion fidelity / track error per category (strength {strength})", "",
              "| category | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]  # fmt: skip
    for category, table in categories.items():
        lines.append(f"| {category} | " + " | ".join(
            f"{table[v]['motion_fidelity']:.2f} / {table[v]['track_error']:.1f}" for v in VARIANTS) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_arguments(parser)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, LORA["strength"]])
    parser.add_argument("--name", default="motionbench_mini", help="results file name (bench/results/NAME.md)")
    parser.add_argument("--weights", default=model.WEIGHTS)
    args = parser.parse_args(argv)
    if args.strips:
        os.makedirs(args.strips, exist_ok=True)
    jobs = benchmark_jobs(args)
    started = time.perf_counter()
    results = run_jobs(args, jobs)
    runs = [{"clip": name, "category": clip.category, "seed": seed, "result": result}
            for (name, clip, _, seed), result in zip(jobs, results, strict=True)]  # fmt: skip
    seconds = time.perf_counter() - started
    summary = summarise(runs, args.strengths)
    categories = per_category(runs, args.strengths[0])
    heads = [f"{r['result']['heads']['spatial']}/{r['result']['heads']['temporal']}"
             + ("*" if r["result"]["heads"]["forced_split"] else "") for r in runs]  # fmt: skip
    os.makedirs(RESULTS, exist_ok=True)
    text = markdown(summary, categories, args, seconds, heads)
    with open(os.path.join(RESULTS, f"{args.name}.md"), "w") as handle:
        handle.write(text)
    write(args.name, {"seconds": seconds, "config": vars(args), "summary": summary, "per_category": categories,
                      "runs": runs})  # fmt: skip
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
