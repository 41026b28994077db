"""Issue 4, benchmark 2: head classification cost as the sequence grows, sampled-query scorer vs exact scores.

For each sequence length S (more latent frames at a fixed frame size) it scores random post-RoPE-like Q/K of
`heads` heads with (a) the streamed sampled-query scorer (1024 queries) and (b) the exact S x S attention map, each
in a fresh subprocess so its peak resident memory is its own, and reports time, peak memory above the process's
baseline, and how many head labels (alpha 1.3) agree. Exact is skipped where its S x S map would exceed --exact-max-gb.
Run: python bench/classify_scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(method: str, frames: int, side: int, heads: int, queries: int, seed: int) -> dict:
    """Runs inside the child process."""
    import torch

    from fym.heads import exact_head_scores, head_scores

    generator = torch.Generator().manual_seed(seed)
    seq = frames * side * side
    # Heads with a mix of local and per-position structure, so labels are not all alike.
    position = torch.randn(side * side, heads, 64, generator=generator)
    frame = torch.randn(frames, heads, 64, generator=generator)
    mix = torch.linspace(0, 1, heads).view(1, heads, 1)
    q = position.repeat(frames, 1, 1) * (1 - mix) * 3 + frame.repeat_interleave(side * side, 0) * mix * 3
    q = q + torch.randn(seq, heads, 64, generator=generator)
    k = q + 0.5 * torch.randn(seq, heads, 64, generator=generator)
    base = peak_rss_mb()
    start = time.perf_counter()
    if method == "sampled":
        picked = torch.randperm(seq, generator=generator)[:queries]
        sims = head_scores(q, k, (frames, side, side), 1, picked)
    else:
        sims = exact_head_scores(q, k, (frames, side, side), 1)
    seconds = time.perf_counter() - start
    labels = (sims[0] < 1.3 * sims[1]).tolist()
    return {"seconds": seconds, "peak_mb_above_baseline": peak_rss_mb() - base, "temporal": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=16, help="patches per frame side (16 = 256x256 video)")
    parser.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8, 16, 21])
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--exact-max-gb", type=float, default=8.0)
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "FRAMES", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    args = parser.parse_args()
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        method, frames, seed = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(measure(method, frames, args.side, args.heads, args.queries, seed)))
        return
    from bench.common import write

    rows = []
    for frames in args.frames:
        seq = frames * args.side**2
        row = {"frames": frames, "sequence": seq}
        for method in ("sampled", "exact"):
            exact_gb = 4 * args.heads * seq * seq * 3 / 1e9  # logits, softmax and mask products, float32
            if method == "exact" and exact_gb > args.exact_max_gb:
                row[method] = None
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--side", str(args.side), "--heads", str(args.heads), "--queries",
                 str(args.queries), "--threads", str(args.threads), "--child", method, str(frames), "0"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row[method] = json.loads(out.stdout.strip().splitlines()[-1])
        if row["exact"]:
            agree = sum(a == b for a, b in zip(row["sampled"]["temporal"], row["exact"]["temporal"], strict=True))
            row["label_agreement"] = f"{agree}/{args.heads}"
        rows.append(row)
        sampled, exact = row["sampled"], row["exact"]
        print(f"S={seq:6d}: sampled {sampled['seconds']:.2f} s {sampled['peak_mb_above_baseline']:.0f} MB | "
              + (f"exact {exact['seconds']:.2f} s {exact['peak_mb_above_baseline']:.0f} MB, labels agree "
                 f"{row['label_agreement']}" if exact else "exact skipped (too large)"))
    path = write("classify_scaling", {"config": {k: v for k, v in vars(args).items() if k != "child"}, "rows": rows})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
