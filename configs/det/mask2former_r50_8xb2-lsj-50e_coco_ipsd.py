# IPSD on Mask2Former R50 (instance segmentation), COCO 2017, LSJ 50 epochs, 8 GPUs x 1 pair.
# Baseline: mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py
# The term distils the class logits (with no-object) of the queries the loss's matching gave
# the two instances of a pair on the last decoder layer. (The panoptic configs are refused by
# the swap: it does not move the stuff map.)
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', '../_base_/ipsd_det.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
