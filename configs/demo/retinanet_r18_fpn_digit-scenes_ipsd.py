# Demo IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./retinanet_r18_fpn_digit-scenes.py', '../_base_/ipsd_det.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(
    _base_.train_dataloader, box_grid=3)  # cells sized to the 128-pixel scenes
