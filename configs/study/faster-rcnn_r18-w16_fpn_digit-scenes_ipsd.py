# Accuracy-study IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./faster-rcnn_r18-w16_fpn_digit-scenes.py', '../_base_/ipsd_det.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

train_dataloader = pair_train_dataloader(
    _base_.train_dataloader, box_grid=3)  # cells sized to the 14-32 pixel digits
