"""ComfyUI-FollowYourMotion: registration only. Importing this package without ComfyUI is fine (use `fym`)."""

import logging

WEB_DIRECTORY = "./web"

try:
    from comfy_api.latest import ComfyExtension
except ImportError:  # not inside ComfyUI: `fym` is usable on its own
    ComfyExtension = None

if ComfyExtension is not None:

    class FollowYourMotionExtension(ComfyExtension):
        async def get_node_list(self):
            from .nodes import NODES

            return NODES

    async def comfy_entrypoint():
        return FollowYourMotionExtension()

else:
    logging.getLogger(__name__).debug("ComfyUI not found; only the fym library is available")
