# Accuracy-study IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./deeplabv3_r18-d8-w16_digit-scenes.py', '../_base_/ipsd_seg.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# Cells sized to the 14-32 pixel digits; class 0 (background) never pairs, swaps or distils.
train_dataloader = pair_train_dataloader(
    _base_.train_dataloader, patch_size=8, exclude_classes=[0])
