"""Shared bits of the benchmarks: environment facts, timing, and writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def environment() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": "cpu",
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(step: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> dict:
    """Median and spread of `repeats` timed calls after `warmup` untimed ones, in seconds."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "steps_timed": repeats}


def train_step_times(train: Callable[[Callable[[int], None]], object], device: torch.device, skip: int = 1) -> dict:
    """Per-step wall times of one training run: `train(on_step)` runs it; the first `skip` steps are warm-up."""
    stamps = []

    def on_step(_):
        sync(device)
        stamps.append(time.perf_counter())

    sync(device)
    stamps.append(time.perf_counter())
    train(on_step)
    times = [b - a for a, b in zip(stamps[skip:], stamps[skip + 1 :], strict=False)]
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "steps_timed": len(times)}


def write(name: str, result: dict) -> str:
    """Write bench/results/<name>.json with the environment and the command line; returns the path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    payload = {"command": " ".join(["python"] + sys.argv), "environment": environment(), **result}
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path
