# Demo IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./deeplabv3_r18-d8_digit-scenes.py', '../_base_/ipsd_seg.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
# Cells sized to the 128-pixel scenes; class 0 (background) never pairs, swaps or distils.
train_dataloader = pair_train_dataloader(
    _base_.train_dataloader, patch_size=16, exclude_classes=[0])
