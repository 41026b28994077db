"""fym.library: a motion library trained as Ray tasks on this CPU (a local Ray started by the runner)."""

import json
import os

import pytest
import torch

ray = pytest.importorskip("ray")

from bench.motionbench import jobs as motionbench_jobs  # noqa: E402
from fym import lora  # noqa: E402
from fym.library import DONE, FAILED, Job, find_motions, read_video, run_jobs  # noqa: E402

# Three motions of the MotionBench world that this short recipe (100 spatial, 600 temporal steps at lr 1e-3)
# imprints on the reference's own look over 3 noises (measured on this CPU: motion fidelity 0.099 vs floor -0.051,
# 0.434 vs 0.244, 0.284 vs 0.183); a new look needs the full recipe (bench/motionbench_mini.py).
MOTIONS = ("camera-orbit-zoom", "nonrigid-zigzag-crawl", "multi-swap")
SPATIAL_STEPS, STEPS, NOISES = 100, 600, 3


@pytest.fixture(scope="module")
def local_ray():
    yield
    ray.shutdown()


def test_a_library_trains_on_ray_each_lora_moves_the_sample_and_a_second_run_skips_them(tmp_path, local_ray):
    index = tmp_path / "index.json"
    jobs = [Job(name, motionbench_jobs.train_clip, (name, str(tmp_path / f"{name}.safetensors"), STEPS, 1e-3, 0,
                                                    NOISES, SPATIAL_STEPS)) for name in MOTIONS]  # fmt: skip
    rows = run_jobs(jobs, str(index), workers=2)
    assert [rows[name]["status"] for name in MOTIONS] == [DONE] * 3, rows
    for name in MOTIONS:
        saved = lora.load(str(tmp_path / rows[name]["file"]))
        assert saved.metadata["stage"] == "temporal" and saved.metadata["steps"] == STEPS
        assert rows[name]["motion_fidelity_reference"] > rows[name]["floor_reference"], (name, rows[name]["per_noise"])
    assert {row["name"] for row in json.loads(index.read_text())["jobs"]} == set(MOTIONS)
    assert all(name in (tmp_path / "index.md").read_text() for name in MOTIONS)

    stamps = {name: os.path.getmtime(tmp_path / rows[name]["file"]) for name in MOTIONS}
    ran = []
    again = run_jobs(jobs, str(index), workers=2, on_done=lambda name, row: ran.append(name))
    assert ran == [] and again == rows
    assert stamps == {name: os.path.getmtime(tmp_path / rows[name]["file"]) for name in MOTIONS}


def quick(value: int) -> dict:
    return {"value": value}


def killed() -> dict:
    os._exit(3)  # the worker process dies, as when a machine is lost or the OOM killer strikes


def broken() -> dict:
    raise ValueError("a clip is unreadable")


def test_a_killed_or_failing_job_fails_alone_and_is_reported(tmp_path, local_ray):
    index = tmp_path / "index.json"
    jobs = [Job("a", quick, (1,)), Job("dies", killed), Job("b", quick, (2,)), Job("raises", broken)]
    rows = run_jobs(jobs, str(index), workers=2)
    assert (rows["a"]["status"], rows["a"]["value"], rows["b"]["status"], rows["b"]["value"]) == (DONE, 1, DONE, 2)
    assert rows["dies"]["status"] == FAILED and "Worker" in rows["dies"]["error"], rows["dies"]
    assert rows["raises"]["status"] == FAILED and "a clip is unreadable" in rows["raises"]["error"]
    table = (tmp_path / "index.md").read_text()
    assert "| dies | failed:" in table and "| raises | failed:" in table

    ran = []  # a second run retries only the failed ones
    again = run_jobs([Job("a", quick, (1,)), Job("raises", quick, (3,))], str(index), workers=2,
                     on_done=lambda name, row: ran.append(name))  # fmt: skip
    assert ran == ["raises"] and again["a"] == rows["a"] and again["raises"]["value"] == 3


def test_find_motions_takes_folders_of_videos_or_videos_with_their_captions(tmp_path):
    (tmp_path / "wave").mkdir()
    for path in ("wave/one.mp4", "wave/two.mov", "spin.mp4", "notes.txt"):
        (tmp_path / path).write_bytes(b"")
    (tmp_path / "wave" / "one.txt").write_text("a hand waves\n")
    (tmp_path / "empty").mkdir()
    motions = find_motions(str(tmp_path))
    assert list(motions) == ["wave", "spin"]
    assert [(os.path.basename(video), caption) for video, caption in motions["wave"]] == [
        ("one.mp4", "a hand waves"),
        ("two.mov", None),
    ]
    with pytest.raises(ValueError, match="holds no videos"):
        find_motions(str(tmp_path / "empty"))


def test_read_video_crops_to_size_and_refuses_a_short_clip(tmp_path):
    av = pytest.importorskip("av")
    path = str(tmp_path / "clip.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for index in range(9):
            picture = torch.zeros(64, 96, 3, dtype=torch.uint8)
            picture[:, index * 8 : index * 8 + 16] = 255  # a bright bar moving right
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture.numpy(), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video = read_video(path, 5, 32, 32)
    assert video.shape == (1, 3, 5, 32, 32) and -1.0 <= video.min() < video.max() <= 1.0
    with pytest.raises(ValueError, match="9 frames, fewer than the 17"):
        read_video(path, 17, 32, 32)


def test_the_diffusers_encoder_gives_wans_normalised_latents():
    from types import SimpleNamespace

    from diffusers import AutoencoderKLWan

    from fym.library import DiffusersEncoder

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1)  # tiny, random
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    latent = DiffusersEncoder(SimpleNamespace(vae=vae)).latents(video)
    assert latent.shape == (1, 16, 3, 4, 4)  # 9 frames -> 3 latent frames, 8x smaller
    raw = vae.encode(video).latent_dist.mean
    mean, std = (
        torch.tensor(values).view(1, -1, 1, 1, 1) for values in (vae.config.latents_mean, vae.config.latents_std)
    )
    torch.testing.assert_close(latent, (raw - mean) / std)
