"""Issue 4, benchmark 1: time per temporal training step, sparse frames vs all frames, in one run.

A mid-size Wan 2.1 config (head_dim 128, as real Wan) at 21 latent frames (= 81 video frames); sparse = 5 latent
frames at stride 5 (the paper's 17 of 81). The floor to beat is the token ratio 21/5 = 4.2x; attention, quadratic in
tokens, pushes the real ratio higher. Run: python bench/sparse_vs_full.py [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import train_step_times, write  # noqa: E402
from fym.config import TEMPORAL  # noqa: E402
from fym.diffusers_host import DiffusersWan, tiny_wan  # noqa: E402
from fym.heads import HeadMap  # noqa: E402
from fym.train import train_stage  # noqa: E402


def half_temporal_map(shape):
    s = [[1.0 if h % 2 == 0 else 0.0 for h in range(shape.num_heads)] for _ in range(shape.num_layers)]
    return HeadMap(shape, s, [[0.5] * shape.num_heads] * shape.num_layers, 1.3, [0.5], 1, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--latent-size", type=int, default=32, help="latent H = W (32 = 256x256 video)")
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = tiny_wan(num_layers=args.layers, num_heads=args.heads, head_dim=128, ffn_dim=4 * 128 * args.heads,
                     text_dim=512).to(device)
    host = DiffusersWan(model)
    video = torch.randn(1, 16, args.frames, args.latent_size, args.latent_size, device=device)
    context = torch.randn(1, 64, 512, device=device)
    head_map = half_temporal_map(host.shape)
    results = {}
    for name, sparse in (("sparse", True), ("full", False)):
        config = replace(TEMPORAL, steps=args.repeats + 1, rank=128, alpha=128.0, sparse_sampling=sparse,
                         frame_stride=5, frame_count=5)
        results[name] = train_step_times(
            lambda on_step, config=config: train_stage(host, "temporal", video, context, head_map, config, on_step),
            device,
        )
    tokens_per_frame = (args.latent_size // 2) ** 2
    ratio = results["full"]["median_s"] / results["sparse"]["median_s"]
    summary = {
        "config": vars(args),
        "tokens": {"sparse": 5 * tokens_per_frame, "full": args.frames * tokens_per_frame},
        "token_ratio": args.frames / 5,
        "step": results,
        "speedup_full_over_sparse": ratio,
    }
    path = write("sparse_vs_full", summary)
    print(f"sparse {results['sparse']['median_s'] * 1e3:.0f} ms/step, full {results['full']['median_s'] * 1e3:.0f} ms/step: "
          f"{ratio:.2f}x (token ratio {args.frames / 5:.1f}x) -> {path}")


if __name__ == "__main__":
    main()
