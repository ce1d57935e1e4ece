# Demo baseline: DeepLabV3 with a half-width ResNet-18-D8 on DigitScenes, CPU-sized.
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py', '../_base_/datasets/digit_scenes_seg.py',
    'mmseg::_base_/default_runtime.py'
]
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs CUDA
num_classes = 11
model = dict(
    pretrained=None,  # trained from scratch: no download
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(depth=18, base_channels=32, stem_channels=32, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=256, channels=64, dilations=(1, 2, 4, 6),
                     num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=num_classes,
                        norm_cfg=norm_cfg))

max_iters = 400
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', T_max=max_iters - 40, eta_min=1e-5, by_epoch=False,
         begin=40, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
