"""Resumable training: a stage's full state every N steps, and the checks before resuming from one.

A checkpoint holds the adapters, the AdamW state, the random-number state, the step and the losses so far, so a
run resumed from it continues exactly where it stopped and gives the same LoRA as a run that never stopped
(on a CPU bit for bit; on a GPU up to its non-deterministic kernels). It also holds the run's identity: the
stage, the head map, the settings that change the result, a summary of the reference and caption, and the
caller's summary of the model. A checkpoint whose identity differs is refused with what differs.

Files are written by `torch.save` atomically (temp file + hard link) and never overwrite; `load_state` reads
them with `weights_only=True`, so a checkpoint cannot run code.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .files import write_new

FORMAT = "fym.checkpoint.v1"

MODEL_TOLERANCE = 0.1  # model summaries: fp8 storage of the same weights rounds them by up to 6.25%

# TrainConfig fields that do not change the trained LoRA, so a resumed run may set them differently.
FREE_SETTINGS = ("steps", "log_every", "gradient_checkpointing")


@dataclass
class Checkpoints:
    """When and where a training run writes checkpoints, and the one it resumes from.

    Args:
        every: steps between checkpoints (0 = none); the last step is written too, so a run can be continued
            with more steps.
        write: stores a state (a dict of tensors and plain values) somewhere safe, e.g. `save_state`.
        resume: a state read back (`load_state`) to continue from, or None to start at step 0.
        model: the caller's summary of the model (names and numbers that identify its weights; numbers are
            compared within MODEL_TOLERANCE).
    """

    every: int = 0
    write: Callable[[dict], None] | None = None
    resume: dict | None = None
    model: list = field(default_factory=list)


def summary(tensor: torch.Tensor, dims: tuple[int, ...]) -> list[float]:
    """A small fingerprint of a tensor: its mean over `dims`, flattened (enough to tell clips apart, and
    robust to the last-bit differences of a re-encoded clip)."""
    return tensor.detach().float().mean(dim=dims).flatten().cpu().tolist()


def identity(stage: str, config, head_map_json: str, clips: list, model: list):
    """What must be the same for a run to continue from a checkpoint (a JSON-able dict).

    clips: [(latents, Condition)] of the training clips, latents (F, C, 1, H, W) or (1, C, T, H, W), each
    Condition's text (1, L, D) its caption embedding.
    """
    settings = {name: value for name, value in asdict(config).items() if name not in FREE_SETTINGS}
    settings["noise_range"] = list(settings["noise_range"])
    return {
        "stage": stage,
        "model": list(model),  # before the head map: another model's head map differs too
        "head_map": head_map_json,
        "settings": settings,
        "reference": [value for latents, _ in clips for value in (*latents.shape, *summary(latents, (3, 4)))],
        "caption": [value for _, condition in clips for value in summary(condition.text, (0, 1))[:64]],
    }


_WHAT_DIFFERS = {
    "stage": "it is a {theirs} checkpoint and this node trains the {ours} LoRA",
    "head_map": "it was trained with another head map; connect the Classify Heads (or Load Head Map) output it used",
    "settings": "it was trained with other settings ({detail}); set them back to continue it",
    "reference": "it was trained on other reference clips (their number, frames, size or content differ)",
    "caption": "it was trained with other captions",
    "model": "it was trained on another model (its weights differ); load the model it was trained on",
}


def check_resumable(state: dict, expected: dict) -> None:
    """Raise ValueError saying what differs between the checkpoint `state` and this run's `identity`."""
    if state.get("format") != FORMAT:
        raise ValueError(f"not a Follow-Your-Motion training checkpoint (format {state.get('format')!r})")
    theirs = state["identity"]
    for name, ours in expected.items():
        if not _same(theirs.get(name), ours, MODEL_TOLERANCE if name == "model" else 1e-2):
            detail = ""
            if name == "settings":
                detail = ", ".join(
                    f"{key} {theirs[name].get(key)} here {value}"
                    for key, value in ours.items()
                    if not _same(theirs[name].get(key), value)
                )
            raise ValueError(
                "cannot resume from this checkpoint: "
                + _WHAT_DIFFERS[name].format(theirs=theirs.get("stage"), ours=ours, detail=detail)
            )


def _same(a, b, tolerance: float = 1e-2) -> bool:
    """Equal, with numbers within `tolerance` (relative, or absolute near zero)."""
    if isinstance(a, float) or isinstance(b, float):
        numbers = isinstance(a, int | float) and isinstance(b, int | float)
        return numbers and math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance / 10)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    return a == b


def save_state(state: dict, path: str) -> None:
    """Write `state` to `path` atomically; never overwrites an existing file."""
    write_new(path, lambda temporary: torch.save(state, temporary), "checkpoints")


def load_state(path: str) -> dict:
    """Read a checkpoint written by `save_state` (tensors on the CPU); a clear error if it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle and zip errors have no common public type
        raise ValueError(f"{os.path.basename(path)} is not a readable training checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{os.path.basename(path)} is not a Follow-Your-Motion training checkpoint")
    return state


class RunFiles:
    """`Checkpoints.write` for a folder: a run's states as <folder>/<stage>_<run>_step<step>.pt, the run number
    the first free one when the run writes its first checkpoint. Never overwrites. Keeps the run's newest
    KEEP_PER_RUN files, and in the folder the newest KEEP_RUNS runs of the stage (this one among them) plus the
    run resumed from: older runs' files go when a run writes its first checkpoint (a 14B checkpoint is about
    2 GB). Other files in the folder, whatever their names, are never touched; a file the user deleted is fine.
    """

    KEEP_PER_RUN = 2
    KEEP_RUNS = 3

    def __init__(self, folder: str, stage: str, resumed: str | None = None) -> None:
        self.folder, self.stage, self.resumed = folder, stage, resumed
        self.run, self.written = None, []

    def runs(self) -> dict[int, list[str]]:
        """This stage's checkpoint files in the folder by run number."""
        ours = re.compile(rf"{re.escape(self.stage)}_(\d+)_step\d+\.pt")
        found: dict[int, list[str]] = {}
        for name in sorted(os.listdir(self.folder)) if os.path.isdir(self.folder) else []:
            if match := ours.fullmatch(name):
                found.setdefault(int(match[1]), []).append(name)
        return found

    def __call__(self, state: dict) -> None:
        if self.run is None:
            self._start()
        path = os.path.join(self.folder, f"{self.stage}_{self.run:05}_step{state['step']:06}.pt")
        save_state(state, path)
        self.written.append(path)
        while len(self.written) > self.KEEP_PER_RUN:
            _remove(self.written.pop(0))

    def _start(self) -> None:
        """Take a run number and remove the files of runs beyond the newest KEEP_RUNS - 1 others."""
        runs = self.runs()
        self.run = 1 + max(runs, default=0)
        kept = sorted(runs)[-(self.KEEP_RUNS - 1) :] if self.KEEP_RUNS > 1 else []
        for run, names in runs.items():
            if run not in kept and self.resumed not in names:
                for name in names:
                    _remove(os.path.join(self.folder, name))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # the user may have deleted it
        os.remove(path)
