"""Issue 23: a 3-motion MotionBench library through fym.library's Ray runner with 1, then 2 local Ray workers:
the wall time of each, their ratio, and whether every LoRA comes out the same (each job on 1 torch thread).

    python bench/library_ray.py                 # writes bench/results/library_ray_cpu.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import write  # noqa: E402
from bench.motionbench.jobs import train_clip  # noqa: E402
from fym.library import Job, run_jobs, start_ray  # noqa: E402

MOTIONS = ("camera-orbit-zoom", "nonrigid-zigzag-crawl", "multi-swap")


def run(workers: int, steps: int, lr: float, noises: int) -> dict:
    """The library on a fresh local Ray of `workers` CPUs: rows, Ray's start time and the jobs' wall time."""
    import ray

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        start_ray(workers=workers)
        ray_start = time.perf_counter() - started
        jobs = [Job(name, train_clip, (name, os.path.join(out, f"{name}.safetensors"), steps, lr, 0, noises))
                for name in MOTIONS]  # fmt: skip
        started = time.perf_counter()
        rows = run_jobs(jobs, workers=workers)
        wall = time.perf_counter() - started
    ray.shutdown()
    return {"workers": workers, "ray_start_s": ray_start, "jobs_wall_s": wall, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per stage")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--noises", type=int, default=2)
    args = parser.parse_args()
    runs = [run(workers, args.steps, args.lr, args.noises) for workers in (1, 2)]
    compared = ("final_loss", "spatial_final_loss", "motion_fidelity", "floor")
    same = all(runs[0]["rows"][name][key] == runs[1]["rows"][name][key] for name in MOTIONS for key in compared)
    ratio = runs[0]["jobs_wall_s"] / runs[1]["jobs_wall_s"]
    path = write("library_ray_cpu", {"config": vars(args), "motions": list(MOTIONS), "runs": runs,
                                     "time_ratio_1_over_2_workers": ratio, "same_results": same})  # fmt: skip
    print(f"1 worker {runs[0]['jobs_wall_s']:.1f} s, 2 workers {runs[1]['jobs_wall_s']:.1f} s: {ratio:.2f}x; "
          f"same results: {same} -> {os.path.relpath(path)}")  # fmt: skip


if __name__ == "__main__":
    main()
