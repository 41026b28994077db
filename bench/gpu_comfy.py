"""The pack inside ComfyUI, headless and in-process, at real Wan 2.1 shapes with random weights, on a GPU.

Cases: Wan 2.1 T2V 1.3B at 512x512 (latent 21 x 64 x 64 = 81 frames) as a bf16 checkpoint, an fp16 checkpoint, the
bf16 checkpoint loaded with UNETLoader's weight_dtype fp8_e4m3fn, and an fp8_scaled checkpoint; and 14B with fp8
weights under a 24 GiB cap (temporal stage, gradient checkpointing), as Wan 2.1 T2V and as a Wan 2.2 A14B I2V expert
(36 input channels; its image channels are zeros here, which costs the same). Per case and phase: Classify Heads (the no-grad
scoring pass), spatial steps (1 latent frame), temporal steps (5 of 21 latent frames, stride 5, adaptive RoPE,
motion loss), the export check (velocity change with the adapters attached vs after Apply Motion LoRA through
ComfyUI's patching: cosine, norm ratio) and 2 sampling steps (comfy.sample, cfg 5) with both LoRAs applied. Each
phase records median step time after a warm-up step, peak GPU memory and compute dtype; a failing phase records its
error and the script goes on. Stops starting cases near --time-budget; writes --out after every case.

CPU check (tiny shapes, minutes):
    python bench/gpu_comfy.py --comfyui /work/comfy033 --device cpu --tiny --out /tmp/gpu_comfy_tiny.json
GPU (nvidia-h200 `run`, carry [".whl", ".comfy"]; prepare both here with `bash bench/gpu_comfy.sh`):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site && mkdir -p /tmp/comfy && tar -xzf .comfy/comfyui.tar.gz -C /tmp/comfy &&
    PYTHONUNBUFFERED=1 FYM_COMMIT=<sha> python3 bench/gpu_comfy.py --comfyui /tmp/comfy --out $OUT/comfy_cuda.json
(FYM_COMMIT: the device machine's copy of the repo may have no .git.) Issue 12's run (the training step at the
hardware's pace), the same way with: --cases 1.3B_bf16 --steps 10 --profile --compile-backend inductor
--out $OUT/comfy_speed_cuda.json (kernels, syncs and GPU busy share per step; compiled step times; the paper's
schedule estimated from the measured steps; checked on CPU with --tiny --compile-backend eager on 0.3.64 and 0.33.0). Not carried: PyAV (a stand-in takes its place,
see stand_in_for_av) and comfy-kitchen's compiled CUDA backend (ComfyUI uses its eager backend; the JSON says which).
The wheels carried (what an in-process run imports that the GPU image lacks; bench/gpu_comfy.sh fetches them):
comfy-kitchen (slimmed), comfy-aimdo, torchsde, trampoline, blake3, alembic, mako, sqlalchemy, pydantic, pydantic-core,
annotated-types, typing-inspection. Optional: --dynamic-vram (ComfyUI 0.33's DynamicVRAM, as main.py enables it).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BASE = dict(model_type="t2v", in_dim=16, out_dim=16, text_dim=4096, freq_dim=256, patch_size=(1, 2, 2),
            window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6)  # fmt: skip
SHAPES = {  # (dim, ffn_dim, num_layers, num_heads); Wan 2.1's heads are dim / 128
    "1.3B": dict(BASE, dim=1536, ffn_dim=8960, num_layers=30, num_heads=12),
    "14B": dict(BASE, dim=5120, ffn_dim=13824, num_layers=40, num_heads=40),
    "tiny": dict(BASE, dim=256, ffn_dim=512, num_layers=2, num_heads=2),
}
CASES = ["1.3B_bf16", "1.3B_fp16", "1.3B_fp8_e4m3fn", "1.3B_fp8_scaled", "14B_fp8_24GiB", "14B_i2v_fp8_24GiB"]
# do not start a case with less of the budget left (others: 45 s)
MIN_SECONDS = {"14B_fp8_24GiB": 200, "14B_i2v_fp8_24GiB": 200}
CAP_BYTES = 24 * 1024**3
# CUDA runtime calls that make the host wait for the GPU (profile_steps counts them per step)
SYNC_CALLS = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy"}


def stand_in_for_av() -> bool:
    """Where PyAV is missing (36 MB: too big to carry to the GPU machine with the rest), a stand-in whose every
    attribute is a dummy class: comfy_api imports av at module level, nothing here decodes or encodes video."""
    try:
        import av  # noqa: F401

        return False
    except ImportError:
        sys.modules.pop("av", None)
    import importlib.abc
    import importlib.machinery
    import types

    class Anything(type):
        def __getattr__(cls, name):
            return Anything(name, (), {})

        def __call__(cls, *args, **kwargs):
            return None

    class StandIn(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Anything(name, (), {})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name == "av" or name.startswith("av."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            return StandIn(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    sys.meta_path.insert(0, Finder())
    return True


def start_comfy(comfy_dir: str, device: str, extra: list[str]) -> None:
    """ComfyUI's argument parsing (as main.py does it), before anything imports comfy.model_management."""
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else []) + extra
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.cli_args  # noqa: F401


def enable_dynamic_vram() -> bool:
    """ComfyUI 0.33's DynamicVRAM as main.py turns it on (comfy-aimdo); False where the host or device lacks it."""
    import comfy.cli_args
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy_aimdo.control

    args = comfy.cli_args.args
    for kwargs in (
        {"simple_vram_headroom": None, "nvml_pressure": not args.disable_nvml_pressure},
        {"simple_vram_headroom": None},
        {},
    ):  # (comfy-aimdo 0.4.11+, 0.4.10, 0.4.9)
        try:
            comfy_aimdo.control.init(**kwargs)
            break
        except TypeError:
            continue
    devices = mm.get_all_torch_devices()
    try:
        ok = comfy_aimdo.control.init_devices((d.index, int(args.vram_headroom * 1024**3)) for d in devices)
    except TypeError:
        ok = comfy_aimdo.control.init_devices(d.index for d in devices)
    if ok:
        comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
        comfy.memory_management.aimdo_enabled = True
    return bool(ok)


def kitchen_backends() -> dict | str | None:
    """comfy-kitchen's backends as ComfyUI set them up (the carried wheel has no compiled CUDA backend)."""
    try:
        import comfy_kitchen

        backends = comfy_kitchen.list_backends().items()
        return {name: bool(info.get("available")) if isinstance(info, dict) else str(info) for name, info in backends}
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}"


def summary(result: dict) -> dict:
    """case -> phase -> the headline numbers (what the lead reads first)."""
    keys = ("compute_dtype", "step_median_s", "peak_gib", "cosine", "norm_ratio", "finite", "gradient_checkpointing",
            "spatial", "temporal", "seconds", "error")  # fmt: skip
    out = {}
    for case, record in result["cases"].items():
        out[case] = {k: record[k] for k in ("skipped", "error", "weight_dtype", "fits", "case_s") if k in record}
        phases = record.get("phases", {})
        for phase, entry in phases.items():
            out[case][phase] = {k: entry[k] for k in keys if k in entry}
            if "profile" in entry:
                profile = entry["profile"]
                out[case][phase].update(
                    {k: profile[k] for k in ("kernels_per_step", "syncs_per_step", "gpu_busy_share")}
                )
        steps = [phases.get(stage, {}).get("step_median_s") for stage in ("spatial", "temporal")]
        if all(steps) and "seconds" in phases.get("classify_heads", {}):  # issue 12's target: <= 300 s at 1.3B
            out[case]["paper_schedule_s"] = round(
                3000 * steps[0] + 2000 * steps[1] + phases["classify_heads"]["seconds"]
            )
    return out


def import_pack():
    """The pack as package `fym_pack` (the repo's folder name is no module name); returns its modules."""
    spec = importlib.util.spec_from_file_location(
        "fym_pack", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["fym_pack"] = package
    spec.loader.exec_module(package)
    names = ["nodes.wan_host", "nodes.lora", "fym.config", "fym.heads", "fym.train"]
    return [importlib.import_module(f"fym_pack.{name}") for name in names]


def random_state_dict(config: dict, device: torch.device, dtype: torch.dtype, fp8_blocks: bool, seed: int) -> dict:
    """Random weights of ComfyUI's WanModel at `config`, built per tensor on `device` (no model in memory): matrices
    N(0, 0.5 / sqrt(fan_in)), biases N(0, 0.02), norm scales 1 + N(0, 0.02); block matrices as float8_e4m3fn
    if fp8_blocks (a 14B fp8 file without a bf16 copy anywhere)."""
    import comfy.ldm.wan.model
    import comfy.ops

    meta = comfy.ldm.wan.model.WanModel(**config, operations=comfy.ops.disable_weight_init, device="meta", dtype=dtype)
    generator = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, tensor in meta.state_dict().items():
        value = torch.randn(tensor.shape, generator=generator, device=device, dtype=torch.float32)
        if name.endswith("gamma") or (".norm" in name and name.endswith(".weight")):
            value = 1 + 0.02 * value
        elif tensor.dim() >= 2:
            value *= 0.5 / (tensor[0].numel() ** 0.5)
        else:
            value *= 0.02
        block_matrix = name.startswith("blocks.") and name.endswith(".weight") and tensor.dim() == 2
        state[name] = value.to(torch.float8_e4m3fn if fp8_blocks and block_matrix else dtype).cpu()
    return state


def fp8_scaled(state: dict) -> dict:
    """The fp8_scaled format (wan2.1_t2v_*_fp8_scaled; as tests/integration/conftest.py _build_fp8_scaled)."""
    scaled = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in state.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max().float() / 448.0
            scaled[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            scaled[key.removesuffix("weight") + "scale_weight"] = scale.reshape(())
        else:
            scaled[key] = value
    return scaled


class Bench:
    def __init__(self, args, device: torch.device, modules) -> None:
        self.args, self.device = args, device
        self.wan_host, self.lora_nodes, self.config, self.heads, self.train = modules
        self.cuda = device.type == "cuda"
        self.frames, self.size = 21, (8 if args.tiny else 64)  # latent frames, latent height = width
        generator = torch.Generator().manual_seed(0)
        self.video = torch.randn(1, 16, self.frames, self.size, self.size, generator=generator)  # VAE-space latent
        self.context = 0.1 * torch.randn(1, 512, 4096, generator=generator)
        self.negative = 0.1 * torch.randn(1, 512, 4096, generator=generator)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def phase(self, record: dict, name: str, run) -> object:
        """Runs run(entry) with the peak-memory counter reset; entry gets seconds, peak_gib and an error, if any."""
        entry = record.setdefault("phases", {}).setdefault(name, {})
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            return run(entry)
        except Exception as error:  # noqa: BLE001 - record it and go on with the next phase
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()[-3000:]
            print(f"  {name}: {entry['error']}", flush=True)
            return None
        finally:
            self.sync()
            entry["seconds"] = round(time.perf_counter() - start, 3)
            if self.cuda:
                entry["peak_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 3)
            print(f"  {name}: {json.dumps({k: v for k, v in entry.items() if k != 'traceback'})}", flush=True)

    def train_timed(self, host, stage: str, latents, head_map, config, entry: dict, keep_attached=False):
        """train_stage with one warm-up step more than --steps; entry gets the median of the timed steps."""
        stamps = []

        def on_step(_step: int) -> None:
            self.sync()
            stamps.append(time.perf_counter())

        config = replace(config, steps=self.args.steps + 1, log_every=self.args.steps + 1)
        result = self.train.train_stage(host, stage, latents, self.context.to(host.device), head_map, config,
                                        on_step=on_step, keep_attached=keep_attached)  # fmt: skip
        times = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
        entry.update(
            compute_dtype=str(host.dtype),
            step_median_s=round(statistics.median(times), 4),
            step_times_s=[round(t, 4) for t in times],
            losses=[round(v, 5) for v in result.losses],
        )
        return result

    def profile_steps(self, host, stage: str, latents, head_map, config) -> dict:
        """Issue 12's diagnosis, per training step (torch.profiler over 4 steps, no sync added): GPU kernels, kernel
        launches, host syncs (synchronize calls and blocking copies), GPU busy share of the wall time, and the
        top kernels by GPU time. On a CPU only the operator count is filled in."""
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        steps = 4
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        config = replace(config, steps=steps, log_every=steps + 1)  # the last step logs: one read, at the end
        self.sync()
        with profile(activities=activities) as prof:
            self.train.train_stage(host, stage, latents, self.context.to(host.device), head_map, config)
            self.sync()
        events = prof.events()
        kernels = [e for e in events if e.device_type == DeviceType.CUDA]
        names = [e.name for e in events if e.device_type == DeviceType.CPU]
        spans = sorted((e.time_range.start, e.time_range.end) for e in kernels)
        busy, end = 0.0, float("-inf")
        for a, b in spans:
            if b > end:
                busy, end = busy + b - max(a, end), b
        wall = max((e.time_range.end for e in events), default=0) - min((e.time_range.start for e in events), default=0)
        by_kernel: dict[str, float] = {}
        for e in kernels:
            by_kernel[e.name] = by_kernel.get(e.name, 0.0) + e.time_range.elapsed_us()
        return {
            "steps_profiled": steps,
            "aten_ops_per_step": sum(n.startswith("aten::") for n in names) / steps,
            "kernels_per_step": len(kernels) / steps,
            "launches_per_step": sum(n.startswith(("cudaLaunchKernel", "cuLaunchKernel")) for n in names) / steps,
            "syncs_per_step": sum(n in SYNC_CALLS for n in names) / steps,
            "gpu_busy_share": round(busy / wall, 3) if wall and kernels else None,
            "top_kernels_ms_per_step": {
                k[:80]: round(v / steps / 1e3, 3) for k, v in sorted(by_kernel.items(), key=lambda kv: -kv[1])[:12]
            },  # fmt: skip
        }

    def run_case(self, model, record: dict, temporal_only: bool = False) -> None:
        wan_host, config, heads = self.wan_host, self.config, self.heads
        process_in = model.model.process_latent_in
        shape = wan_host.wan_shape(model, "bench")
        record["shape"] = dict(layers=shape.num_layers, heads=shape.num_heads, head_dim=shape.head_dim)
        loras = {}
        head_map = self.half_map(shape)

        def classify(entry):
            nonlocal head_map
            with wan_host.scoring_host(model, tuple(self.video.shape)) as host, torch.no_grad():
                entry["compute_dtype"] = str(host.dtype)
                latent = process_in(self.video.clone()).to(host.device)
                head_map, split = heads.split_if_one_sided(
                    heads.classify_heads(host, latent, self.context.to(host.device), config.ClassifyConfig())
                )
            entry.update(spatial=head_map.count("spatial"), temporal=head_map.count("temporal"), split=split)

        def spatial(entry):
            frames = self.video[0].transpose(0, 1).unsqueeze(2)  # (21, 16, 1, H, W)
            with wan_host.training_host(model, tuple(frames[:1].shape), False) as host:
                latents = process_in(frames.clone()).to(host.device)
                loras["spatial"] = self.train_timed(host, "spatial", latents, head_map, config.SPATIAL, entry).lora
                if self.args.profile:
                    entry["profile"] = self.profile_steps(host, "spatial", latents, head_map, config.SPATIAL)

        def temporal(entry):
            gc = temporal_only  # 14B: checkpointing, as a 24 GB card needs
            step_shape = (1, 16, config.TEMPORAL.frame_count, self.size, self.size)
            with wan_host.training_host(model, step_shape, gc) as host:
                latents = process_in(self.video.clone()).to(host.device)
                cfg = replace(config.TEMPORAL, gradient_checkpointing=gc)
                entry["gradient_checkpointing"] = gc
                loras["temporal"] = self.train_timed(host, "temporal", latents, head_map, cfg, entry).lora
                if self.args.profile:
                    entry["profile"] = self.profile_steps(host, "temporal", latents, head_map, cfg)

        def compiled(stage: str):
            """Issue 12's lever 2, measured only: each Wan block under torch.compile, adapters attached as hooks.
            Records the step time, the first (compiling) step, unique graphs and graph breaks."""

            def run(entry):
                import torch._dynamo

                torch._dynamo.reset()
                torch._dynamo.utils.counters.clear()
                frames = 1 if stage == "spatial" else config.TEMPORAL.frame_count
                cfg = config.SPATIAL if stage == "spatial" else config.TEMPORAL
                video = self.video[0].transpose(0, 1).unsqueeze(2) if stage == "spatial" else self.video
                with wan_host.training_host(model, (1, 16, frames, self.size, self.size), False) as host:
                    blocks = host.diffusion_model.blocks
                    # each block's adapter hooks are other objects, so dynamo compiles about one graph per block
                    # (measured on CPU: 2 layers 2 graphs, 4 layers 3-4); let it, rather than fall back to eager
                    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 2 * len(blocks))
                    for block in blocks:
                        block.compile(backend=self.args.compile_backend)
                    try:
                        latents = process_in(video.clone()).to(host.device)
                        self.train_timed(host, stage, latents, head_map, cfg, entry)
                    finally:
                        for block in blocks:  # nn.Module.compile wraps the call; undo it on the shared model
                            block._compiled_call_impl = None
                stats = torch._dynamo.utils.counters
                entry.update(backend=self.args.compile_backend, unique_graphs=stats["stats"]["unique_graphs"],
                             graph_breaks=sum(stats["graph_break"].values()))  # fmt: skip

            return run

        if not temporal_only:
            self.phase(record, "classify_heads", classify)
            self.phase(record, "spatial", spatial)
        self.phase(record, "temporal", temporal)
        if self.args.compile_backend and not temporal_only:
            self.phase(record, "spatial_compiled", compiled("spatial"))
            self.phase(record, "temporal_compiled", compiled("temporal"))
        if not temporal_only:
            self.phase(record, "export_check", lambda entry: entry.update(self.export_check(model, head_map)))
            self.phase(record, "sample", lambda entry: entry.update(self.sample(model, loras)))

    def half_map(self, shape):
        """A head map with both kinds (layers' heads split in half), used if Classify Heads fails."""
        sims = [[1.0] * shape.num_heads for _ in range(shape.num_layers)]
        temporal = [[0.1 if h < shape.num_heads // 2 else 10.0 for h in range(shape.num_heads)] for _ in sims]
        return self.heads.HeadMap(shape, sims, temporal, 1.3, [0.5], 1, 64)

    def export_check(self, model, head_map) -> dict:
        """tests/integration/fym_test_nodes HostCheck.export: trained (attached) vs applied (ComfyUI patching)."""
        wan_host = self.wan_host
        cfg = replace(self.config.SPATIAL, steps=3, rank=4, alpha=4.0, learning_rate=5e-2)
        frames = self.video[0].transpose(0, 1).unsqueeze(2)
        x0 = frames[:1]
        sigma = torch.tensor([0.6])
        x_t = sigma * torch.randn(x0.shape, generator=torch.Generator().manual_seed(3)) + (1 - sigma) * x0

        def velocity(host):
            latent = model.model.process_latent_in(x_t.clone()).to(host.device)
            return host.velocity(latent, sigma, self.context.to(host.device)).cpu()

        with wan_host.training_host(model, tuple(x0.shape), False) as host:
            latents = model.model.process_latent_in(frames.clone()).to(host.device)
            result = self.train.train_stage(
                host, "spatial", latents, self.context.to(host.device), head_map, cfg, keep_attached=True
            )
            with torch.no_grad():
                trained = velocity(host)
                host.detach("fym_spatial")
                base = velocity(host)
            dtype = str(host.dtype)
        applied_model = self.lora_nodes.apply_motion_lora(model, result.lora, 1.0, "bench")
        with wan_host.scoring_host(applied_model, tuple(x0.shape)) as host, torch.no_grad():
            applied = velocity(host)
            scoring_dtype = str(host.dtype)
        with wan_host.scoring_host(model, tuple(x0.shape)) as host, torch.no_grad():
            applied_base = velocity(host)
        live, exported = (trained - base).flatten(), (applied - applied_base).flatten()
        return {
            "compute_dtype": dtype,
            "scoring_dtype": scoring_dtype,
            "cosine": round(float(torch.nn.functional.cosine_similarity(live, exported, dim=0)), 5),
            "norm_ratio": round(float(exported.norm() / live.norm()), 5),
            "effect": round(float(live.norm() / base.flatten().norm()), 5),
        }

    def sample(self, model, loras: dict) -> dict:
        """2 steps of comfy.sample (euler, simple, cfg 5) on the full latent with the trained LoRAs applied."""
        import comfy.sample

        for stage, strength in (("spatial", 1.0), ("temporal", 0.5)):  # (0.5: the paper's apply strength)
            if stage in loras:
                model = self.lora_nodes.apply_motion_lora(model, loras[stage], strength, "bench")
        noise = torch.randn(self.video.shape, generator=torch.Generator().manual_seed(5))
        positive, negative = [[self.context, {}]], [[self.negative, {}]]
        out = comfy.sample.sample(model, noise, 2, 5.0, "euler", "simple", positive, negative,
                                  torch.zeros_like(self.video), disable_pbar=True, seed=5)  # fmt: skip
        return {
            "loras": sorted(loras),
            "finite": bool(torch.isfinite(out).all()),
            "out_std": round(float(out.float().std()), 4),
        }


def load_model(bench: Bench, case: str, config: dict, workdir: Path):
    """The ComfyUI MODEL of `case`, from a random checkpoint written to `workdir` (reused across cases)."""
    import comfy.sd
    import safetensors.torch

    def checkpoint(name: str, make) -> str:
        path = workdir / f"{name}.safetensors"
        if not path.exists():
            safetensors.torch.save_file(make(), str(path))
        return str(path)

    build = bench.device if bench.cuda else torch.device("cpu")
    bf16 = lambda: random_state_dict(config, build, torch.bfloat16, False, seed=0)  # noqa: E731
    if case.endswith("_bf16"):
        return comfy.sd.load_diffusion_model(checkpoint("bf16", bf16))
    if case.endswith("_fp16"):
        return comfy.sd.load_diffusion_model(
            checkpoint("fp16", lambda: random_state_dict(config, build, torch.float16, False, seed=0))
        )
    if case.endswith("_fp8_e4m3fn"):  # UNETLoader weight_dtype fp8_e4m3fn
        return comfy.sd.load_diffusion_model(checkpoint("bf16", bf16), model_options={"dtype": torch.float8_e4m3fn})
    if case.endswith("_fp8_scaled"):
        return comfy.sd.load_diffusion_model(
            checkpoint("fp8_scaled", lambda: fp8_scaled(safetensors.torch.load_file(checkpoint("bf16", bf16))))
        )
    if case.endswith("fp8_24GiB"):  # an fp8_e4m3fn file (14 GB at 14B), loaded with weight_dtype fp8_e4m3fn
        name = case.removesuffix("_fp8_24GiB")
        path = checkpoint(f"{name}_fp8", lambda: random_state_dict(config, build, torch.bfloat16, True, seed=1))
        return comfy.sd.load_diffusion_model(path, model_options={"dtype": torch.float8_e4m3fn})
    raise ValueError(f"unknown case {case}")


def write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as handle:
        json.dump(result, handle, indent=1)
    os.replace(handle.name, out)


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("FYM_COMMIT")  # the device machine's copy may have no .git


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="a ComfyUI checkout (0.3.64 .. 0.33)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (dim 256, 2 layers, 64x64 px) for a CPU check")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per phase (one more is warm-up)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/comfy_cuda.json")
    parser.add_argument("--time-budget", type=float, default=540.0, help="seconds; no case starts near its end")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the random checkpoints go (default: a temp dir)"
    )
    parser.add_argument("--comfy-args", default="", help="extra ComfyUI flags, e.g. '--reserve-vram 1'")
    parser.add_argument("--dynamic-vram", action="store_true", help="ComfyUI 0.33+: DynamicVRAM as main.py enables it")
    parser.add_argument("--profile", action="store_true", help="also profile 4 steps per stage (issue 12's counts)")
    parser.add_argument(
        "--compile-backend",
        default="",
        help="also time both stages with every Wan block under torch.compile with "
        "this backend (inductor on a GPU; eager checks the plumbing on a CPU)",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    av_stand_in = stand_in_for_av()
    start_comfy(str(Path(args.comfyui).resolve()), args.device, args.comfy_args.split())
    import comfy.model_management as mm

    dynamic = False
    if args.dynamic_vram:
        try:
            dynamic = enable_dynamic_vram()
        except Exception as error:  # noqa: BLE001
            dynamic = f"{type(error).__name__}: {error}"
    bench = Bench(args, mm.get_torch_device(), import_pack())
    version = re.search(r'__version__ = "([^"]+)"', (Path(args.comfyui) / "comfyui_version.py").read_text())
    result = {
        "command": " ".join(sys.argv),
        "environment": {
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "device": str(bench.device),
            "gpu": torch.cuda.get_device_name() if bench.cuda else None,
            "comfyui": version and version[1],
            "pack_commit": git_commit(),
            "tiny": args.tiny,
            "steps_timed": args.steps,
            "latent": [21, bench.size, bench.size],
            "comfy_args": args.comfy_args,
            "dynamic_vram": dynamic,
            "av_stand_in": av_stand_in,
            "comfy_kitchen": kitchen_backends(),
        },
        "cases": {},
    }
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_comfy_"))
    workdir.mkdir(parents=True, exist_ok=True)
    for case in args.cases:
        record = result["cases"].setdefault(case, {})
        left = args.time_budget - (time.perf_counter() - began)
        if left < MIN_SECONDS.get(case, 45):
            record["skipped"] = f"time budget: {left:.0f} s left"
            write(args.out, result)
            continue
        print(f"{case} ({left:.0f} s of the budget left)", flush=True)
        size = "tiny" if args.tiny else case.split("_")[0]
        config = dict(SHAPES[size], in_dim=36) if "_i2v_" in case else SHAPES[size]  # Wan 2.2 A14B I2V's input
        big = case.endswith("24GiB")
        start, reserved = time.perf_counter(), mm.EXTRA_RESERVED_VRAM
        try:
            if big and bench.cuda:  # a 24 GiB card: torch's allocator capped, ComfyUI told the same
                total = torch.cuda.get_device_properties(bench.device).total_memory
                torch.cuda.set_per_process_memory_fraction(CAP_BYTES / total)
                mm.EXTRA_RESERVED_VRAM = reserved + total - CAP_BYTES
                record["cap_gib"] = CAP_BYTES / 1024**3
            model = load_model(bench, case, config, workdir)
            record["load_s"] = round(time.perf_counter() - start, 2)
            record["weight_dtype"] = str(model.model.get_dtype())
            record["manual_cast_dtype"] = str(model.model.manual_cast_dtype)
            bench.run_case(model, record, temporal_only=big)
            if big:
                record["fits"] = "error" not in record["phases"]["temporal"]
        except Exception as error:  # noqa: BLE001
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = traceback.format_exc()[-3000:]
            print(f"  {record['error']}", flush=True)
        finally:
            mm.unload_all_models()
            mm.EXTRA_RESERVED_VRAM = reserved
            if bench.cuda:
                torch.cuda.set_per_process_memory_fraction(1.0)
                torch.cuda.empty_cache()
            record["case_s"] = round(time.perf_counter() - start, 2)
            model = None
        result["elapsed_s"] = round(time.perf_counter() - began, 1)
        result["summary"] = summary(result)
        write(args.out, result)
    result["summary"] = summary(result)
    write(args.out, result)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {args.out} in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
