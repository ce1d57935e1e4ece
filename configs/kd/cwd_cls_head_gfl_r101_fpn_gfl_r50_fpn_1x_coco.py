# Teacher KD for the README's experiment table: GFL R50-FPN on COCO distilled from GFL-R101 (2x)
# with CWD on the classification head (41.9 box AP in MMRazor's model zoo), as MMRazor's own
# config (distill/mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py), run through
# ipsd_mm.kd.FrozenTeacherDistill: the student starts from the weights its own config gives for
# the same seed and the teacher is wholly in eval mode, so that tools/compare.py pairs it fairly
# with the baseline and IPSD of the same seed. MMRazor downloads the teacher's weights
# (teacher_ckpt) when the model is built.
#   python tools/compare.py baseline=BASELINE.py kd=configs/kd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py --derive-ipsd ...
_base_ = ['mmrazor::distill/mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py']
custom_imports = dict(imports=['ipsd_mm.kd', 'ipsd_mm.det'], allow_failed_imports=False)
model = dict(type='FrozenTeacherDistill')
