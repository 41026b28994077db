"""Custom socket types of the pack (created once, shared by every node module)."""

from comfy_api.latest import io

HeadMapType = io.Custom("FYM_HEAD_MAP")  # fym.heads.HeadMap
MotionLoRAType = io.Custom("FYM_MOTION_LORA")  # fym.lora.MotionLoRA

CATEGORY = "FollowYourMotion"


def node_error(node: str, error: Exception) -> ValueError:
    """A ValueError whose message starts with the node's display name (unless it already does)."""
    message = str(error)
    return ValueError(message if message.startswith(node) else f"{node}: {message}")


def context_of(positive, node: str):
    """The text embedding (1, L, D) of a CONDITIONING; errors name the node."""
    try:
        context = positive[0][0]
    except (IndexError, TypeError, KeyError):
        raise ValueError(f"{node}: 'positive' is not a CONDITIONING; connect a CLIPTextEncode output") from None
    if context.dim() != 3 or context.shape[0] != 1:
        raise ValueError(f"{node}: expected one caption embedding (1, tokens, 4096); got {tuple(context.shape)}")
    return context
