# IPSD on Mask R-CNN R50-FPN 1x (box- and mask-aware swap), COCO 2017, 8 GPUs x 1 pair (2 images).
# Baseline: mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../_base_/ipsd_det.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
