"""A motion library: many motions in, one motion LoRA each out, as Ray tasks (`python -m fym.library`).

    python -m fym.library clips/ --out loras/ --model Wan-AI/Wan2.1-T2V-1.3B-Diffusers   # a local Ray
    python -m fym.library clips/ --out loras/ --model ... --address ray://head:10001      # an existing cluster

`clips/` holds one folder per motion (its videos, each with an optional same-name .txt caption), or videos
directly (one motion per video). Each motion is one job running the whole method (classify heads on its first
clip, spatial LoRA, temporal LoRA on top, save) as a Ray task asking for one GPU, or one CPU where the cluster has
none. The command starts a local Ray itself (`ray.init()`), so one machine needs no set-up. Finished jobs are
kept in `out/index.json` (and `index.md`): a second run skips them, a failed job is reported and the others go
on. Ray is an optional extra (`pip install follow-your-motion[library]`); the ComfyUI nodes never import it.

`run_jobs` is the runner on its own: any named picklable jobs (MotionBench's tables run on it too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from .config import SPATIAL, TEMPORAL, ClassifyConfig, TrainConfig

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class Job:
    """A named unit of work: run(*args) on a Ray worker returns its result (a JSON-able dict)."""

    name: str
    run: Callable[..., dict]
    args: tuple = ()


def _call(job: Job, threads: int) -> dict:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    result = job.run(*job.args)
    return {**result, "seconds": round(time.perf_counter() - started, 2)}


def start_ray(address: str | None = None, workers: int | None = None):
    """Ray, started here as a local cluster of `workers` CPUs (None: all) unless `address` names one to join.
    A local cluster's workers get this process's import path, so they import the same code."""
    try:
        import ray
    except ImportError:
        raise ImportError("the motion library runs on Ray: pip install 'follow-your-motion[library]'") from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    return ray


def run_jobs(
    jobs: list[Job],
    index_path: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    threads: int = 1,
    on_done: Callable[[str, dict], None] | None = None,
    gpus_per_job: float = 1.0,
) -> dict[str, dict]:
    """Run every job as a Ray task (gpus_per_job GPUs each where the cluster has GPUs, else `threads` CPUs with as
    many torch threads); returns {name: row}, a row being the job's result with "status" "done" and "seconds", or
    "status" "failed" and "error". A job that fails (an exception, or its worker dies) fails alone.

    index_path: a JSON file of the rows; jobs it holds as done are skipped (their rows returned as they are),
    and it is rewritten (atomically) as each job ends, so a stopped run loses no finished job.
    on_done(name, row) is called as each job ends.
    """
    rows = _read_index(index_path)
    todo = [job for job in jobs if rows.get(job.name, {}).get("status") != DONE]
    if len({job.name for job in jobs}) != len(jobs):
        raise ValueError("job names must be unique")
    if todo:
        ray = start_ray(address, workers)
        gpus = gpus_per_job if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(_call).options(num_cpus=0 if gpus else threads, num_gpus=gpus, max_retries=0)
        pending = {task.remote(job, threads): job.name for job in todo}
        progress = _progress(len(todo))
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready)
            try:
                row = {**ray.get(ready), "status": DONE}
            except Exception as error:  # noqa: BLE001 - the task's own error, or its worker's death
                row = {"status": FAILED, "error": f"{type(error).__name__}: {_last_line(error)}"}
            rows[name] = row
            if index_path:
                _write_index(index_path, rows)
            if on_done is not None:
                on_done(name, row)
            progress(name, row)
    return {job.name: rows[job.name] for job in jobs}


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else repr(error)


def _progress(total: int):
    """Per finished job: a tqdm bar where tqdm is installed, a line on stderr otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    bar = tqdm(total=total, desc="motions", unit="job") if tqdm else None

    def update(name: str, row: dict) -> None:
        message = f"{name}: {row['status']}" + (f" ({row['error']})" if row["status"] == FAILED else "")
        if bar is None:
            print(message, file=sys.stderr)  # noqa: T201 (the command's progress)
        else:
            bar.update(1)
            bar.write(message)

    return update


def _read_index(path: str | None) -> dict[str, dict]:
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        return {row.pop("name"): row for row in json.load(handle)["jobs"]}


def _write_index(path: str, rows: dict[str, dict]) -> None:
    """index.json and index.md beside it, each written to a temporary file and renamed over the old one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    table = [{"name": name, **row} for name, row in sorted(rows.items())]
    _replace(path, json.dumps({"jobs": table}, indent=2))
    lines = ["| motion | status | file | final loss | seconds | motion fidelity |", "|---|---|---|---|---|---|"]
    for row in table:
        fidelity = row.get("motion_fidelity")
        lines.append(
            f"| {row['name']} | {row['status']}{': ' + row['error'] if row['status'] == FAILED else ''} | "
            f"{row.get('file', '')} | {_number(row.get('final_loss'))} | {_number(row.get('seconds'))} | "
            f"{'n/a' if fidelity is None else _number(fidelity)} |"
        )
    _replace(os.path.splitext(path)[0] + ".md", "\n".join(lines) + "\n")


def _number(value) -> str:
    return "" if value is None else f"{value:.4g}"


def _replace(path: str, text: str) -> None:
    temporary = path + ".part"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


# -- one motion: the whole method ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """The settings of every motion of a library (fym.config's defaults unless changed)."""

    spatial: TrainConfig = SPATIAL
    temporal: TrainConfig = TEMPORAL
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    split_one_sided: bool = True  # as Classify Heads: split by score if alpha puts every head on one side


def train_motion(host, clips: list, path: str, recipe: Recipe = Recipe()) -> dict:
    """The whole method on one motion's clips [(video latent (1, C, T, H, W), Condition or caption embedding)]:
    heads classified on the first clip, the spatial LoRA on every clip's frames, the temporal LoRA on top;
    the temporal LoRA saved to `path` (never over an existing file). Returns its row: file, final_loss, heads."""
    from .heads import classify_heads, split_if_one_sided
    from .lora import save
    from .train import train_stage

    videos = [video for video, _ in clips]
    conditions = [condition for _, condition in clips]
    head_map = classify_heads(host, videos[0], conditions[0], recipe.classify)
    if recipe.split_one_sided:
        head_map, _ = split_if_one_sided(head_map)
    frames = [video[0].transpose(0, 1).unsqueeze(2) for video in videos]  # (T, C, 1, H, W) single frames each
    spatial = train_stage(host, "spatial", frames, conditions, head_map, recipe.spatial, keep_attached=True)
    try:
        temporal = train_stage(host, "temporal", videos, conditions, head_map, recipe.temporal)
    finally:
        host.detach("fym_spatial")
    save(temporal.lora, path)
    return {
        "file": os.path.basename(path), "final_loss": temporal.losses[-1], "spatial_final_loss": spatial.losses[-1],
        "heads": {"spatial": head_map.count("spatial"), "temporal": head_map.count("temporal")}, "clips": len(clips),
    }  # fmt: skip


# -- the command: folders of videos through diffusers' Wan -----------------------------------------------------


def find_motions(folder: str) -> dict[str, list[tuple[str, str | None]]]:
    """{motion name: [(video path, caption or None)]}: one per sub-folder of videos, or one per video at the top."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is not a folder")

    def videos_in(path: str) -> list[tuple[str, str | None]]:
        found = []
        for name in sorted(os.listdir(path)):
            if name.lower().endswith(VIDEO_EXTENSIONS):
                caption = os.path.join(path, os.path.splitext(name)[0] + ".txt")
                text = open(caption).read().strip() if os.path.isfile(caption) else None
                found.append((os.path.join(path, name), text))
        return found

    motions = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and videos_in(path):
            motions[name] = videos_in(path)
    for video, caption in videos_in(folder):
        motions.setdefault(os.path.splitext(os.path.basename(video))[0], [(video, caption)])
    if not motions:
        raise ValueError(f"{folder} holds no videos ({', '.join(VIDEO_EXTENSIONS)}) nor folders of them")
    return motions


def read_video(path: str, frames: int, width: int, height: int) -> torch.Tensor:
    """The first `frames` frames of a video, resized (centre crop) to width x height: (1, 3, F, H, W) in [-1, 1]."""
    import av
    import torch.nn.functional as F

    with av.open(path) as container:
        pictures = []
        for frame in container.decode(video=0):
            pictures.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if len(pictures) == frames:
                break
    if len(pictures) < frames:
        raise ValueError(f"{path}: {len(pictures)} frames, fewer than the {frames} asked for")
    video = torch.stack(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1  # (F, 3, h, w)
    scale = max(width / video.shape[3], height / video.shape[2])
    size = (max(height, round(video.shape[2] * scale)), max(width, round(video.shape[3] * scale)))
    video = F.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return video[:, :, top : top + height, left : left + width].transpose(0, 1)[None]


class DiffusersEncoder:
    """Videos and captions into Wan's latent and text space with a diffusers Wan pipeline's VAE and umT5."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        vae = pipeline.vae
        self.mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def latents(self, video: torch.Tensor) -> torch.Tensor:
        """(1, 3, F, H, W) in [-1, 1] -> the normalised latent (1, C, (F - 1) // 4 + 1, H / 8, W / 8)."""
        vae = self.pipeline.vae
        latent = vae.encode(video.to(vae.device, vae.dtype)).latent_dist.mean.float().cpu()
        return (latent - self.mean) / self.std

    @torch.no_grad()
    def caption(self, text: str) -> torch.Tensor:
        embeds, _ = self.pipeline.encode_prompt(text, do_classifier_free_guidance=False, device=self.pipeline.device)
        return embeds.float().cpu()  # (1, 512, 4096)


def train_video_motion(model: str, videos: list, path: str, settings: dict, recipe: Recipe) -> dict:
    """A Ray job: one motion of the command (its [(video path, caption)]) on the diffusers Wan at `model`."""
    from diffusers import WanPipeline

    from .diffusers_host import DiffusersWan

    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline = WanPipeline.from_pretrained(model, torch_dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    pipeline.to(device)
    encoder = DiffusersEncoder(pipeline)
    clips = []
    for video, caption in videos:
        pixels = read_video(video, settings["frames"], settings["width"], settings["height"])
        text = caption if caption is not None else settings["caption"]
        clips.append((encoder.latents(pixels).to(device), encoder.caption(text).to(device)))
    return train_motion(DiffusersWan(pipeline.transformer), clips, path, recipe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fym.library", description=__doc__.splitlines()[0])
    parser.add_argument("clips", help="a folder of motion folders (videos + optional .txt captions) or of videos")
    parser.add_argument("--out", required=True, help="folder for <motion>.safetensors and index.json / index.md")
    parser.add_argument("--model", required=True, help="a diffusers Wan pipeline (folder or Hugging Face id)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--workers", type=int, help="local Ray: CPUs to use (default: all)")
    parser.add_argument("--frames", type=int, default=81, help="video frames per clip (4k + 1)")
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--caption", default="", help="the caption of a clip without a .txt")
    parser.add_argument("--spatial-steps", type=int, default=SPATIAL.steps)
    parser.add_argument("--temporal-steps", type=int, default=TEMPORAL.steps)
    args = parser.parse_args(argv)
    motions = find_motions(args.clips)
    recipe = Recipe(replace(SPATIAL, steps=args.spatial_steps), replace(TEMPORAL, steps=args.temporal_steps))
    settings = {"frames": args.frames, "width": args.width, "height": args.height, "caption": args.caption}
    jobs = [
        Job(name, train_video_motion, (args.model, videos, os.path.join(args.out, f"{name}.safetensors"), settings,
                                        recipe))
        for name, videos in motions.items()
    ]  # fmt: skip
    rows = run_jobs(jobs, os.path.join(args.out, "index.json"), args.address, args.workers)
    failed = [name for name, row in rows.items() if row["status"] == FAILED]
    print(f"{len(rows) - len(failed)} of {len(rows)} motions done -> {os.path.join(args.out, 'index.md')}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
