# Accuracy-study baseline: the demo DeepLabV3 at quarter width (ResNet-18-D8 with 16 base
# channels) on 64-pixel scenes, so that 3 seeds x 3 variants fit a CPU afternoon
# (tools/accuracy_study.py writes the scenes: 1-3 digits of 14-32 pixels).
# No RandomResize / PhotoMetricDistortion: the scenes are drawn at random scales and colours
# already, and with them the model left the all-background plateau later (measured).
_base_ = ['../demo/deeplabv3_r18-d8_digit-scenes.py']
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=16, stem_channels=16),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
