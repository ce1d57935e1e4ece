# Teacher KD for the README's experiment table: Faster R-CNN R50-FPN on COCO distilled from
# Faster R-CNN R101 with FBKD on the FPN (39.1 box AP in MMRazor's model zoo), as MMRazor's own
# config (distill/mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py), run through
# ipsd_mm.kd.FrozenTeacherDistill: the student starts from the weights its own config gives for
# the same seed and the teacher is wholly in eval mode, so that tools/compare.py pairs it fairly
# with the baseline and IPSD of the same seed. MMRazor downloads the teacher's weights
# (teacher_ckpt) when the model is built.
#   python tools/compare.py baseline=BASELINE.py kd=configs/kd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py --derive-ipsd ...
_base_ = ['mmrazor::distill/mmdet/fbkd/fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco.py']
custom_imports = dict(imports=['ipsd_mm.kd', 'ipsd_mm.det'], allow_failed_imports=False)
model = dict(type='FrozenTeacherDistill')
