"""Issue 12, the CPU-measurable part: operators dispatched and host reads of tensor values per training step.

A GPU step is host-bound when it issues many small operators, and it stalls whenever the host reads a value the
GPU computed (`.item()`, `int()`, `.tolist()`, `.cpu()`, a nonzero or an equal): the host waits for the queue to
drain. Both are counted here on the CPU at tiny shapes, through the same training loop (fym.train.train_stage),
on diffusers' Wan and, with --comfyui, on ComfyUI's WanModel in-process (the product path):

- ops: every aten operator dispatched in the step, forward, backward and optimizer (a TorchDispatchMode); on a
  GPU each is about one kernel launch.
- reads: the operators that hand a tensor's value to the host (_local_scalar_dense, nonzero, equal, is_nonzero)
  plus Python-level `.tolist()`, `.cpu()`, `.numpy()` calls (they dispatch nothing for a CPU tensor). On a GPU
  each read of a device tensor is a sync; on this CPU run every read is counted, so the figure is an upper bound.
  Left out: AdamW's per-parameter step counters, which the CPU implementation reads (CUDA's fused AdamW does not).

Steps between log points are counted (the first, a warm-up, and the last, which logs, are left out); the
median per step is reported.
    python bench/step_ops.py                                   # diffusers host
    python bench/step_ops.py --comfyui /work/comfy064          # and ComfyUI's WanModel (run in its venv)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import write  # noqa: E402

aten = torch.ops.aten
READ_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.equal.default, aten.is_nonzero.default}
READ_METHODS = ("tolist", "cpu", "numpy")


def _callers(frame):
    """The file names of `frame` and its callers."""
    while frame:
        yield frame.f_code.co_filename
        frame = frame.f_back


class StepCounter(TorchDispatchMode):
    """Counts dispatched operators and host reads; `mark()` closes a step."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.reads = 0
        self.steps: list[tuple[int, int]] = []
        self.sites: dict[str, int] = {}
        self._saved = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if func in READ_OPS:
            self._read(func.__name__)
        return func(*args, **(kwargs or {}))

    def _read(self, what: str) -> None:
        frame = sys._getframe(2)
        if any("torch/optim/" in name for name in _callers(frame)):
            return  # AdamW's step counters: CPU tensors read by the CPU implementation; fused CUDA AdamW reads none
        self.reads += 1
        while frame and ("torch/" in frame.f_code.co_filename or frame.f_code.co_filename == __file__):
            frame = frame.f_back
        site = f"{what} at {os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}" if frame else what
        self.sites[site] = self.sites.get(site, 0) + 1

    def __enter__(self):
        for name in READ_METHODS:
            method = getattr(torch.Tensor, name)
            self._saved[name] = method

            def counted(tensor, *args, _method=method, _name=name, **kwargs):
                self._read(_name)
                return _method(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, method in self._saved.items():
            setattr(torch.Tensor, name, method)
        return super().__exit__(*exc)

    def mark(self, _step: int) -> None:
        self.steps.append((self.ops, self.reads))
        self.ops = self.reads = 0
        self.sites_per_step = dict(self.sites) if len(self.steps) == 2 else getattr(self, "sites_per_step", {})
        self.sites = {}


def count(train) -> dict:
    """train(on_step) runs a training stage; returns median ops and reads per step between log points."""
    counter = StepCounter()
    with counter:
        train(counter.mark)
    middle = counter.steps[1:-1]  # the first step warms caches up, the last one logs
    return {
        "ops_per_step": statistics.median(ops for ops, _ in middle),
        "reads_per_step": statistics.median(reads for _, reads in middle),
        "steps_counted": len(middle),
        "read_sites_step_2": counter.sites_per_step,
    }


def stages(host, device, text, config, heads, train):
    """(name, train(on_step)) for the spatial stage and the sparse temporal stage (5 of 9 latent frames); `config`,
    `heads` and `train` are the fym modules the host was built with (in-process ComfyUI: the pack's own copy)."""
    train_stage, SPATIAL, TEMPORAL = train.train_stage, config.SPATIAL, config.TEMPORAL  # noqa: N806
    shape = host.shape
    spatial_scores = [[1.0 if h % 2 == 0 else 0.0 for h in range(shape.num_heads)]] * shape.num_layers  # half each
    head_map = heads.HeadMap(shape, spatial_scores, [[0.5] * shape.num_heads] * shape.num_layers, 1.3, [0.5], 1, 64)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(4, 16, 1, 8, 8, generator=generator).to(device)
    video = torch.randn(1, 16, 9, 8, 8, generator=generator).to(device)
    settings = dict(steps=6, rank=8, alpha=8.0, log_every=6)
    spatial = replace(SPATIAL, **settings)
    temporal = replace(TEMPORAL, frame_stride=2, frame_count=5, **settings)
    return [
        ("spatial", lambda on_step: train_stage(host, "spatial", frames, text, head_map, spatial, on_step)),
        ("temporal_sparse", lambda on_step: train_stage(host, "temporal", video, text, head_map, temporal, on_step)),
    ]


def diffusers_rows() -> dict:
    import fym.config
    import fym.heads
    import fym.train
    from fym.diffusers_host import DiffusersWan, tiny_wan

    host = DiffusersWan(tiny_wan(num_layers=2, num_heads=4, head_dim=32))
    text = torch.randn(1, 8, host.model.config.text_dim, generator=torch.Generator().manual_seed(1))
    cases = stages(host, torch.device("cpu"), text, fym.config, fym.heads, fym.train)
    return {name: count(train) for name, train in cases}


def comfy_rows(comfy_dir: str) -> dict:
    from bench.gpu_comfy import SHAPES, import_pack, random_state_dict, start_comfy

    start_comfy(comfy_dir, "cpu", [])
    import comfy.sd
    import safetensors.torch

    wan_host, _, config_module, heads, train_module = import_pack()
    config = SHAPES["tiny"]
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "fym_step_ops_tiny.safetensors")
    safetensors.torch.save_file(random_state_dict(config, torch.device("cpu"), torch.float32, False, seed=0), path)
    model = comfy.sd.load_diffusion_model(path)
    text = torch.randn(1, 8, config["text_dim"], generator=torch.Generator().manual_seed(1))
    rows = {}
    with wan_host.training_host(model, (1, 16, 5, 8, 8), False) as host:
        for name, train in stages(host, host.device, text, config_module, heads, train_module):
            rows[name] = count(train)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", help="a ComfyUI checkout: also count on its WanModel (run in its venv)")
    parser.add_argument("--name", default="step_ops_tiny_cpu", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"diffusers": diffusers_rows()}
    if args.comfyui:
        result["comfyui"] = comfy_rows(os.path.abspath(args.comfyui))
    for host, rows in result.items():
        for stage, row in rows.items():
            print(f"{host:9s} {stage:16s} {row['ops_per_step']:6.0f} ops/step {row['reads_per_step']:3.0f} reads/step")
            for site, calls in row["read_sites_step_2"].items():
                print(f"{'':28s}{calls} x {site}")
    print("->", write(args.name, result))


if __name__ == "__main__":
    main()
