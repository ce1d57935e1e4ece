# IPSD on SegFormer MiT-B0, Cityscapes 1024x1024 crops, 160k iterations, 8 GPUs x 1 pair.
# Baseline: mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py (1 image per
# GPU; a pair is 2 images, so this compares at the same anchors per step, not the same images).
_base_ = [
    'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
    '../_base_/ipsd_seg.py'
]

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# SegformerHead classifies with conv_seg at 1/4 resolution: the term reads those logits.
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
