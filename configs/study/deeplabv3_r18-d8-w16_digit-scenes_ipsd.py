# Accuracy-study IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./deeplabv3_r18-d8-w16_digit-scenes.py', '../_base_/ipsd_seg.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

ipsd_swap = dict(_base_.ipsd_swap, patch_size=8)  # cells sized to the 14-32 pixel digits
train_dataloader = pair_train_dataloader(_base_.train_dataloader, ipsd_swap)
