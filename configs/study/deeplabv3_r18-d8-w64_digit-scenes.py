# Accuracy-study teacher at four times the student's width (ResNet-18-D8 with 64 base channels,
# heads x4): the wider teacher of the positive control's last regime.
_base_ = ['./deeplabv3_r18-d8-w16_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=64, stem_channels=64),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
