"""Follow-Your-Motion for Wan (2.1, 2.2): the algorithm, free of ComfyUI (see README "Python API")."""

from .config import APPLY_STRENGTH, SPATIAL, TEMPORAL, VERSION, ClassifyConfig, TrainConfig
from .heads import HeadMap, classify_heads, heat_map
from .host import WanHost, WanShape
from .lora import MotionLoRA, load, save
from .train import NonFiniteLoss, train_stage

__version__ = VERSION

__all__ = [
    "APPLY_STRENGTH", "SPATIAL", "TEMPORAL", "ClassifyConfig", "HeadMap", "MotionLoRA", "NonFiniteLoss",
    "TrainConfig", "WanHost", "WanShape", "classify_heads", "heat_map", "load", "save", "train_stage",
]  # fmt: skip
