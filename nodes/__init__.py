"""ComfyUI glue: every node of the pack (imports comfy; the algorithm lives in ../fym)."""

from . import data, heads, lora, queue_checks, train

NODES = data.NODES + heads.NODES + train.NODES + lora.NODES

queue_checks.register()
