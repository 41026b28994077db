"""Start a real ComfyUI server in a subprocess and talk to it over loopback HTTP.

Standard library only, so that importing this module never needs ComfyUI.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

# File names of the test assets built by conftest.py (ComfyUI combo values).
UNET_NAME = "fym_tiny_wan21_t2v.safetensors"
UNET_3LAYER_NAME = "fym_tiny_wan21_t2v_3layer.safetensors"
UNET_TI2V_NAME = "fym_tiny_wan22_ti2v.safetensors"  # the Wan 2.2 TI2V 5B architecture, tiny
UNET_I2V_HIGH_NAME = "fym_tiny_wan22_i2v_high_noise.safetensors"  # Wan 2.2 A14B I2V experts' architecture, tiny
UNET_I2V_LOW_NAME = "fym_tiny_wan22_i2v_low_noise.safetensors"
UNET_T2V_LOW_NAME = "fym_tiny_wan22_t2v_low_noise.safetensors"  # a second T2V expert (UNET_NAME is the high one)
UNET_WAN21_I2V_NAME = "fym_tiny_wan21_i2v.safetensors"  # Wan 2.1 I2V: image channels and a CLIP-vision img_emb
UNET_VACE_NAME = "fym_tiny_wan21_vace.safetensors"  # a variant the pack refuses by name
UNET_FP8_SCALED_NAME = "fym_tiny_wan21_t2v_fp8_scaled.safetensors"  # the tiny model as an fp8_scaled checkpoint
VAE_NAME = "fym_random_wan21_vae.safetensors"
VAE22_NAME = "fym_random_wan22_vae.safetensors"  # full size (ComfyUI fixes its config), built only when needed
TEST_IMAGE_NAME = "fym_test_image.png"  # the 'your image' of the image-to-video workflows
TEST_CLIP_NAME = "fym_test_clip.mp4"
TEST_DATASET_FOLDER = "fym_test_dataset"  # in input/: two clips with .txt captions, for core dataset nodes
MOTIONBENCH_UNET_NAME = "fym_motionbench_wan21_t2v.safetensors"  # built from bench/motionbench when present
MOTIONBENCH_I2V_UNET_NAME = "fym_motionbench_wan_i2v.safetensors"  # its image-to-video variant (in_dim 36)


class ComfyServerError(RuntimeError):
    """The server died, timed out, or a prompt failed while executing."""


class PromptRejected(ComfyServerError):
    """POST /prompt answered 400; `body` is the decoded JSON (error, node_errors)."""

    def __init__(self, body):
        super().__init__(f"prompt rejected: {json.dumps(body, indent=1)}")
        self.body = body


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """A ComfyUI `main.py --cpu` subprocess, used as a context manager.

    `custom_nodes`, when given, loads only those folder names from the
    custom_nodes paths (--disable-all-custom-nodes + --whitelist-custom-nodes),
    so packs installed in the ComfyUI checkout itself stay out of the tests.
    """

    def __init__(
        self,
        comfy_dir,
        extra_model_paths,
        input_dir,
        output_dir,
        temp_dir,
        port=None,
        custom_nodes=None,
        startup_timeout=180.0,
    ):
        self.comfy_dir = Path(comfy_dir)
        self.extra_model_paths = Path(extra_model_paths)
        self.input_dir = Path(input_dir)
        self.output_dir = Path(output_dir)
        self.temp_dir = Path(temp_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # ComfyUI wipes and uses <temp_dir>/temp, so the log is safe next to it.
        self.log_path = self.temp_dir / f"comfyui-{self.port}.log"
        self.custom_nodes = list(custom_nodes or [])
        self.startup_timeout = startup_timeout
        self.process = None

    def command(self) -> list:
        cmd = [
            sys.executable,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--extra-model-paths-config",
            str(self.extra_model_paths),
            "--input-directory",
            str(self.input_dir),
            "--output-directory",
            str(self.output_dir),
            "--temp-directory",
            str(self.temp_dir),
            "--disable-api-nodes",
            "--database-url",
            "sqlite:///:memory:",
        ]
        if self.custom_nodes:
            cmd += ["--disable-all-custom-nodes", "--whitelist-custom-nodes", *self.custom_nodes]
        return cmd

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        for d in (self.input_dir, self.output_dir, self.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.comfy_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self._request("GET", "/system_stats", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise ComfyServerError(f"ComfyUI did not answer within {self.startup_timeout:.0f}s\n" + self.log_tail())

    def stop(self):
        """Terminate the server process (by PID), killing it if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    def log_tail(self, lines=60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "--- ComfyUI log tail ---\n" + "\n".join(text.splitlines()[-lines:])

    def _check_alive(self):
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ComfyServerError(f"ComfyUI process exited (code {code})\n" + self.log_tail())

    # -- HTTP API ------------------------------------------------------------

    def _request(self, method, path, payload=None, timeout=30):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    def object_info(self) -> dict:
        """GET /object_info: node definitions keyed by node id."""
        return self._request("GET", "/object_info", timeout=60)

    def queue(self, api_graph: dict) -> str:
        """POST an API-format graph; returns its prompt_id. Raises PromptRejected on 400."""
        payload = {"prompt": api_graph, "client_id": uuid.uuid4().hex}
        try:
            return self._request("POST", "/prompt", payload)["prompt_id"]
        except urllib.error.HTTPError as err:
            if err.code == 400:
                raise PromptRejected(json.loads(err.read() or b"null")) from None
            raise

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """Poll GET /history/{id} until the prompt finished (success or error).

        Returns the history entry: {"prompt", "outputs", "status": {"status_str",
        "completed", "messages"}, "meta"}.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            entry = self._request("GET", f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.25)
        raise ComfyServerError(f"prompt {prompt_id} not finished after {timeout:.0f}s\n" + self.log_tail())

    def run(self, api_graph: dict, timeout: float = 300.0) -> dict:
        """queue + wait; raises ComfyServerError (with the execution_error
        message and the log tail) unless the prompt succeeded."""
        entry = self.wait(self.queue(api_graph), timeout)
        if entry["status"]["status_str"] != "success":
            errors = [
                f"{e['node_type']} (node {e['node_id']}): {e['exception_type']}: "
                f"{e['exception_message']}\n" + "".join(e.get("traceback", []))
                for event, e in entry["status"]["messages"]
                if event == "execution_error"
            ]
            raise ComfyServerError(
                "prompt failed:\n" + "\n".join(errors or ["(no execution_error)"]) + "\n" + self.log_tail()
            )
        return entry
