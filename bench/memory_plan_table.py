"""Issue 22: the README's table of planned peak memory per Wan model and size, and what fits 24 and 80 GiB cards.

Each row plans the default training (the paper's rank 128, the temporal stage's 5 sparse latent frames, bf16
weights, checkpointing off) with fym.plan, and for each card the cheapest change that fits
(fym.plan.cheapest_fit). Writes bench/results/memory_plan_table.md and .json.

    python bench/memory_plan_table.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import RESULTS, write  # noqa: E402
from fym.plan import GIB, Setting, cheapest_fit, describe, plan  # noqa: E402

MODELS = ["wan2.1-1.3b", "wan2.1-14b", "wan2.2-a14b", "wan2.2-a14b-i2v", "wan2.2-ti2v-5b"]
SIZES = {"480p": (832, 480, 81), "720p": (1280, 720, 81)}
FIVE_B_720P = (1280, 704, 81)  # TI2V 5B's own 720p size (its VAE needs multiples of 32)
CARDS_GIB = (24, 80)


def main() -> None:
    rows = []
    for model in MODELS:
        for name, size in SIZES.items():
            width, height, frames = FIVE_B_720P if model == "wan2.2-ti2v-5b" and name == "720p" else size
            row = {"model": model, "size": f"{width}x{height}x{frames}"}
            for stage in ("spatial", "temporal"):
                setting = Setting(model, width, height, frames, stage=stage)
                row[f"{stage}_gib"] = plan(setting).peak / GIB
                for card in CARDS_GIB:
                    change = cheapest_fit(setting, card * GIB)
                    row[f"{stage}_on_{card}"] = (
                        "no" if change is None else "fits" if change == setting else describe(setting, change)
                    )
            rows.append(row)
            print(row)
    lines = [
        "| model | size | spatial GiB | temporal GiB | on 24 GiB | on 80 GiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cards = []
        for card in CARDS_GIB:
            spatial, temporal = row[f"spatial_on_{card}"], row[f"temporal_on_{card}"]
            cards.append(spatial if spatial == temporal else f"spatial: {spatial}; temporal: {temporal}")
        lines.append(
            f"| {row['model']} | {row['size']} | {row['spatial_gib']:.1f} | {row['temporal_gib']:.1f} | "
            f"{cards[0]} | {cards[1]} |"
        )
    table = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "memory_plan_table.md"), "w") as handle:
        handle.write(f"`python bench/memory_plan_table.py` (fym.plan; defaults, checkpointing off)\n\n{table}")
    write("memory_plan_table", {"rows": rows})
    print(table)


if __name__ == "__main__":
    main()
