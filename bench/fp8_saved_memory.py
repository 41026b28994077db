"""What a training step keeps for backward through ComfyUI's Wan, with bf16 weights and with fp8 weights (code review
25.3): fp8 storage halves the weights, but each linear casts its weight to the compute dtype and autograd keeps
that copy for the backward pass, so without gradient checkpointing a step holds a bf16 copy of every weight.

Run with ComfyUI's venv (CPU is enough: it counts bytes, not time):

    python bench/fp8_saved_memory.py --comfyui /path/to/ComfyUI [--name fp8_saved_memory_comfy064]

One temporal-stage training step (a LoRA on half the heads, the step's latent 1 x 16 x 5 x 8 x 8) at Wan 2.1
1.3B's width (1536, ffn 8960) with 2 of its 30 blocks; bf16 compute in both cases, as on a GPU. "Saved" counts the
distinct tensor storages autograd keeps for backward that are not the model's own weights, divided by the blocks
(each block is the same; the embeddings and head are a small part).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gpu_comfy import BASE, import_pack, random_state_dict, start_comfy  # noqa: E402

CONFIG = dict(BASE, dim=1536, ffn_dim=8960, num_layers=2, num_heads=12)
LATENT = (1, 16, 5, 8, 8)
MIB = 1024**2


def saved_bytes(step, weights: set[int]) -> int:
    """Bytes of the distinct storages saved for backward while `step()` runs, the model's weights left out."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(seen.values())


def measure(wan_host, lora, weight_dtype: str, path: str) -> dict:
    import comfy.sd

    options = {"dtype": torch.float8_e4m3fn} if weight_dtype == "fp8_e4m3fn" else {"dtype": torch.bfloat16}
    model = comfy.sd.load_diffusion_model(path, model_options=options).clone()
    model.set_model_compute_dtype(torch.bfloat16)
    row = {}
    for checkpointing in (False, True):
        with wan_host.training_host(model, LATENT, checkpointing) as host:
            weights = {p.untyped_storage().data_ptr() for p in host.diffusion_model.parameters()}
            block = host.diffusion_model.blocks[0]
            row["block_weights_mib"] = round(sum(p.nbytes for p in block.parameters()) / MIB, 1)
            heads = {layer: list(range(0, host.shape.num_heads, 2)) for layer in range(host.shape.num_layers)}
            host.attach("measure", lora.make_adapters(host.shape, heads, rank=16, alpha=16.0))
            generator = torch.Generator().manual_seed(0)
            x_t = torch.randn(LATENT, generator=generator)
            text = torch.randn(1, 8, CONFIG["text_dim"], generator=generator)

            def step(host=host, x_t=x_t, text=text):
                host.velocity(x_t, torch.tensor([0.7]), text).square().mean().backward()

            with host.checkpointing(checkpointing):
                saved = saved_bytes(step, weights)
        row["checkpointing" if checkpointing else "no_checkpointing"] = {
            "saved_per_block_mib": round(saved / CONFIG["num_layers"] / MIB, 1)
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="a ComfyUI checkout (run in its venv)")
    parser.add_argument("--name", default="fp8_saved_memory", help="results file (bench/results/<name>.json)")
    args = parser.parse_args()
    comfy_dir = os.path.abspath(args.comfyui)
    start_comfy(comfy_dir, "cpu", [])
    import comfyui_version
    import safetensors.torch

    wan_host, _, _, _, _ = import_pack()
    lora = sys.modules["fym_pack.fym.lora"]
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "fym_fp8_saved_memory.safetensors")
    safetensors.torch.save_file(random_state_dict(CONFIG, torch.device("cpu"), torch.bfloat16, False, seed=0), path)
    rows = {dtype: measure(wan_host, lora, dtype, path) for dtype in ("bf16", "fp8_e4m3fn")}
    result = {
        "command": f"python bench/fp8_saved_memory.py --comfyui ComfyUI-{comfyui_version.__version__} --name {args.name}",
        "comfyui": comfyui_version.__version__,
        "torch": torch.__version__,
        "config": {**CONFIG, "latent": list(LATENT), "compute_dtype": "bfloat16"},
        "rows": rows,
        # weights + what a step keeps, per block (blocks dominate; 1.3B has 30 of them, 14B 40 at 3.3x the width)
        "per_block_mib": {
            dtype: {
                mode: round(row["block_weights_mib"] + row[mode]["saved_per_block_mib"], 1)
                for mode in ("no_checkpointing", "checkpointing")
            }
            for dtype, row in rows.items()
        },
    }
    out = Path(__file__).resolve().parent / "results" / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["per_block_mib"], indent=1))


if __name__ == "__main__":
    main()
