# IPSD on PSPNet-R18-D8, Cityscapes 512x1024, 80k iterations, 4 GPUs x 1 pair (2 images).
# Baseline: mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', '../_base_/ipsd_seg.py'
]

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
