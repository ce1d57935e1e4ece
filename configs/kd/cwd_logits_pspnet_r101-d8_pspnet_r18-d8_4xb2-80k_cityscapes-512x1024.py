# Teacher KD for the README's experiment table: PSPNet-R18-D8 on Cityscapes distilled from
# PSPNet-R101 with CWD on the logits (75.54 mIoU in MMRazor's model zoo), as MMRazor's own config
# (distill/mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py), run
# through ipsd_mm.kd.FrozenTeacherDistill: the student starts from the weights its own config
# gives for the same seed and the teacher is wholly in eval mode, so that tools/compare.py pairs
# it fairly with the baseline and IPSD of the same seed. MMRazor downloads the teacher's weights
# (teacher_ckpt) when the model is built.
#   python tools/compare.py baseline=BASELINE.py kd=configs/kd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py --derive-ipsd ...
_base_ = ['mmrazor::distill/mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['ipsd_mm.kd', 'ipsd_mm.seg'], allow_failed_imports=False)
model = dict(type='FrozenTeacherDistill')
