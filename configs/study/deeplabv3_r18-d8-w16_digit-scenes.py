# Accuracy-study baseline: the demo DeepLabV3 at quarter width (ResNet-18-D8 with 16 base
# channels), so that 3 seeds x 3 variants fit a CPU afternoon (tools/accuracy_study.py).
_base_ = ['../demo/deeplabv3_r18-d8_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=16, stem_channels=16),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
