"""Issue 22: fym.plan's peak memory against every GPU measurement in bench/results.

Each measured case (bench/results/wan_shapes_1.3B_cuda.json: diffusers' Wan 2.1 1.3B in bf16 on an H100, peak
torch.cuda.max_memory_allocated over a few training steps) is planned with the same model, size, stage, rank,
frame sampling and checkpointing, on this machine's CPU (fake tensors). Writes bench/results/memory_plan_check.json.

    python bench/memory_plan_check.py
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import RESULTS, write  # noqa: E402
from fym.config import SPATIAL, TEMPORAL  # noqa: E402
from fym.plan import GIB, Setting, plan  # noqa: E402

MEASURED = {"wan_shapes_1.3B_cuda.json": "wan2.1-1.3b"}  # results file -> the fym.plan model it measured


def measured_cases():
    """(case name, Setting, measured GiB, median step seconds, the file's device) for every measured row with a
    peak memory."""
    for name, model in MEASURED.items():
        with open(os.path.join(RESULTS, name)) as handle:
            result = json.load(handle)
        side = result["config"]["resolution"]
        for row in result["rows"]:
            if "peak_memory_gb" not in row:
                continue
            stage = row["stage"]
            defaults = SPATIAL if stage == "spatial" else TEMPORAL
            setting = Setting(
                model, side, side, row["frames"], stage=stage, rank=defaults.rank, sparse_sampling=False,
                gradient_checkpointing=row["gradient_checkpointing"],
            )  # fmt: skip
            case = f"{model} {stage} {side}x{side}x{row['frames']} checkpointing {'on' if setting.gradient_checkpointing else 'off'}"
            yield (
                case,
                setting,
                row["peak_memory_gb"] * 1e9 / GIB,
                row["step"]["median_s"],
                result["environment"]["device"],
            )


def main() -> None:
    rows = []
    for case, setting, measured, step_s, device in measured_cases():
        planned = plan(setting)
        planned_gib = planned.peak / GIB
        rows.append({"case": case, "device": device, "measured_gib": measured, "planned_gib": planned_gib,
                     "ratio": planned_gib / measured, "planned_tflops": planned.flops / 1e12,
                     "measured_step_s": step_s, "achieved_tflop_per_s": planned.flops / 1e12 / step_s,
                     "setting": vars(setting)})  # fmt: skip
        print(f"{case}: measured {measured:.2f} GiB, planned {planned_gib:.2f} GiB, ratio {planned_gib / measured:.3f}; "
              f"{planned.flops / 1e12:.1f} TFLOPs in {step_s:.3f} s")  # fmt: skip
    ratios = [row["ratio"] for row in rows]
    path = write("memory_plan_check", {"rows": rows, "ratio_min": min(ratios), "ratio_max": max(ratios)})
    print(f"ratios {min(ratios):.3f} .. {max(ratios):.3f} -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
