"""Issue 4, benchmark 4: real Wan 2.1 shapes (random weights, nothing to download) on a GPU.

For each frame count (video frames; 1 = the spatial stage, 17 = the sparse temporal stage, 81 = all frames) at
512x512: median time per LoRA training step, peak GPU memory with and without gradient checkpointing, and achieved
TFLOP/s two ways (3 x forward FLOPs, and the minimum a frozen-base LoRA step must do; step_flops) and their share of
the card's peak. 14B: peak memory at 17 frames.
Runs unchanged on a CPU at tiny shapes for checking: python bench/gpu_wan_shapes.py --size tiny --device cpu
On a GPU: python bench/gpu_wan_shapes.py --size 1.3B --frames 1 17 81; python bench/gpu_wan_shapes.py --size 14B
--frames 17 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import train_step_times, write  # noqa: E402
from bench.sparse_vs_full import half_temporal_map  # noqa: E402
from fym.config import SPATIAL, TEMPORAL  # noqa: E402
from fym.diffusers_host import DiffusersWan  # noqa: E402
from fym.train import train_stage  # noqa: E402

SIZES = {  # official Wan 2.1 configs (layers, heads, ffn); head_dim 128
    "tiny": (2, 2, 512),
    "1.3B": (30, 12, 8960),
    "14B": (40, 40, 13824),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def step_flops(layers: int, dim: int, ffn: int, tokens: int, text_tokens: int = 512) -> dict[str, float]:
    """FLOPs of one training step, two ways (perf-limits.md section 2; the linears' 12 D^2 + 4 D F are already
    FLOPs per token, multiply-adds counted twice).

    "3x_forward": 3 x the forward, the usual full fine-tuning count. "lora_minimum": what a LoRA step on frozen
    weights must do: the linears' forward and input gradient (no weight gradient: 2 x), attention forward and
    backward (3 x). The LoRA factors themselves are under 1% and left out.
    """
    linears = layers * tokens * (12 * dim * dim + 4 * dim * ffn)
    attention = layers * 4 * tokens * (tokens + text_tokens) * dim  # self-attention + cross-attention
    return {"3x_forward": 3 * (linears + attention), "lora_minimum": 2 * linears + 3 * attention}


def utilisation(row: dict, layers: int, dim: int, ffn: int, peak: float | None) -> None:
    """Add TFLOP/s, both ways, and their share of the card's peak to a result row with a step time."""
    for name, flops in step_flops(layers, dim, ffn, row["tokens"]).items():
        row[f"tflops_{name}"] = flops / row["step"]["median_s"] / 1e12
        if peak:
            row[f"share_of_peak_{name}"] = row[f"tflops_{name}"] / peak
    row.pop("tflops", None), row.pop("share_of_peak", None)  # the old, double-counted figures


def recompute(path: str) -> None:
    """Rewrite a results file's utilisation with step_flops (the step times are as measured)."""
    with open(path) as handle:
        result = json.load(handle)
    layers, heads, ffn = SIZES[result["config"]["size"]]
    name = result["environment"]["device"]
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    for row in result["rows"]:
        if "step" in row:
            utilisation(row, layers, heads * 128, ffn, peak)
            print(
                f"{row['frames']:3d} frames ckpt={row['gradient_checkpointing']}: "
                f"{row['tflops_3x_forward']:.1f} TFLOP/s (3x forward), {row['tflops_lora_minimum']:.1f} (LoRA minimum)"
            )
    result["recomputed"] = "utilisation by step_flops: python " + " ".join(sys.argv)
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="1.3B")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 17, 81])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per case (one more is warm-up)")
    parser.add_argument("--checkpointing", choices=["both", "on", "off"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    parser.add_argument("--recompute", metavar="JSON", help="only rewrite that results file's utilisation figures")
    args = parser.parse_args()
    if args.recompute:
        recompute(args.recompute)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import WanTransformer3DModel

    device = torch.device(args.device)
    layers, heads, ffn = SIZES[args.size]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        model = WanTransformer3DModel(
            num_attention_heads=heads,
            attention_head_dim=128,
            ffn_dim=ffn,
            num_layers=layers,
            text_dim=4096,
            freq_dim=256,
        ).to(dtype)
    host = DiffusersWan(model)
    head_map = half_temporal_map(host.shape)
    context = torch.randn(1, 512, 4096, device=device)
    side = args.resolution // 8
    rows = []
    for frames in args.frames:
        latent_frames = (frames - 1) // 4 + 1
        stage = "spatial" if latent_frames == 1 else "temporal"
        latents = (
            torch.randn(latent_frames, 16, 1, side, side, device=device)
            if stage == "spatial"
            else torch.randn(1, 16, latent_frames, side, side, device=device)
        )
        tokens = latent_frames * (side // 2) ** 2
        for checkpointing in [False, True] if args.checkpointing == "both" else [args.checkpointing == "on"]:
            defaults = SPATIAL if stage == "spatial" else TEMPORAL
            config = replace(
                defaults,
                steps=args.steps + 1,
                sparse_sampling=False,
                gradient_checkpointing=checkpointing,
                log_every=args.steps + 1,
            )
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            row = {
                "frames": frames,
                "latent_frames": latent_frames,
                "tokens": tokens,
                "stage": stage,
                "gradient_checkpointing": checkpointing,
            }
            try:
                timing = train_step_times(
                    lambda on_step, c=config, x=latents, s=stage: train_stage(
                        host, s, x, context, head_map, c, on_step
                    ),
                    device,
                )
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
                rows.append(row)
                print(row)
                continue
            row["step"] = timing
            peak = None
            if device.type == "cuda":
                row["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
                name = torch.cuda.get_device_name()
                peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
            utilisation(row, layers, heads * 128, ffn, peak)
            rows.append(row)
            print(
                f"{args.size} {frames:3d} frames ({tokens} tokens) ckpt={checkpointing}: "
                f"{timing['median_s'] * 1e3:.1f} ms/step, {row['tflops_3x_forward']:.2f} TFLOP/s (3x forward), "
                f"{row['tflops_lora_minimum']:.2f} (LoRA minimum)"
                + (f", peak {row['peak_memory_gb']:.1f} GB" if "peak_memory_gb" in row else "")
            )
    path = write(f"wan_shapes_{args.size}_{device.type}", {"config": vars(args), "rows": rows})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
