"""The patch swap itself, on numpy arrays, free of OpenMMLab: the grid and cell choice
(``grid``), the mask-aware swap for segmentation (``semantic``) and the box-aware swap for
detection and instance segmentation (``instance``)."""
from .grid import resize_bilinear, resize_nearest
from .instance import InstanceSwap, InstanceSwapOptions, match_instances, swap_instances
from .semantic import SemanticSwap, SemanticSwapOptions, swap_semantic

__all__ = [
    'InstanceSwap', 'InstanceSwapOptions', 'SemanticSwap', 'SemanticSwapOptions',
    'match_instances', 'resize_bilinear', 'resize_nearest', 'swap_instances', 'swap_semantic'
]
