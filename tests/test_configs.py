"""Every config under configs/ loads, builds its model and its train and val dataloaders
against stand-in datasets in the right format; one segmentation and one detection IPSD config
train an iteration at a reduced image size."""
import glob
import math
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings

from ipsd_mm.testing.digit_configs import point_to
from ipsd_mm.testing.synthetic import for_cpu
from runner_utils import CONFIGS
from standins import write_standins

ALL = sorted(osp.relpath(p, CONFIGS) for p in glob.glob(osp.join(CONFIGS, '*', '*.py'))
             if '_base_' not in p)


@pytest.fixture(scope='module')
def standins(tmp_path_factory):
    return write_standins(str(tmp_path_factory.mktemp('standins')))


def dataset_types(node):
    if isinstance(node, dict):
        if 'data_root' in node and 'type' in node:
            yield node
        for value in node.values():
            yield from dataset_types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from dataset_types(value)


def load(config: str, standins: dict, digit_scenes: str, work_dir: str) -> Config:
    """The config with its datasets pointed at the stand-in of their format."""
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    if config.startswith(('demo/', 'study/')):  # DigitScenes configs
        point_to(cfg._cfg_dict, digit_scenes)
    else:
        for node in dataset_types(cfg._cfg_dict):
            node['data_root'] = osp.join(standins[node['type']], '')
        for evaluator in ('val_evaluator', 'test_evaluator'):
            if cfg[evaluator].get('type') == 'CocoMetric':
                cfg[evaluator].ann_file = osp.join(standins['CocoDataset'],
                                                   'annotations/instances_val2017.json')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    if config.startswith('kd/'):  # no teacher or student weights downloaded
        cfg.model.teacher_ckpt = None
        for member in ('architecture', 'teacher'):
            cfg.model[member].pretrained = False
    cfg.work_dir = work_dir
    return cfg


def shrink(node):
    """Reduced image sizes, and no pretrained weights (nothing is downloaded)."""
    for_cpu(node)
    _small_images(node)


def _small_images(node):
    if isinstance(node, dict):
        if node.get('type') in ('RandomResize', 'Resize', 'RandomChoiceResize') and 'scale' in node:
            node['scale'] = (128, 64)
        if 'crop_size' in node:
            node['crop_size'] = (64, 64)
        if node.get('type') == 'SegDataPreProcessor':
            node['size'] = (64, 64)
        for value in node.values():
            _small_images(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _small_images(value)


@pytest.mark.parametrize('config', ALL)
def test_config_builds_model_and_dataloaders(config, standins, digit_scenes, tmp_path):
    cfg = load(config, standins, digit_scenes, str(tmp_path))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert model is not None
    if config.startswith('kd/'):  # teacher KD: the fair wrapper around MMRazor's recipe
        assert type(model).__name__ == 'FrozenTeacherDistill'
        assert model.distiller.distill_losses and not model.teacher_trainable
    for loader in ('train_dataloader', 'val_dataloader'):
        dataloader = Runner.build_dataloader(cfg[loader], seed=0)
        batch = next(iter(dataloader))
        assert len(batch['inputs']) == len(batch['data_samples']) > 0
        if loader == 'train_dataloader' and config.endswith('_ipsd.py'):
            pairs = min(cfg.train_dataloader.batch_size, len(dataloader.dataset))
            assert len(batch['inputs']) == 2 * pairs
            assert cfg.train_dataloader.collate_fn.type == 'pair_collate'
            assert [h.type for h in cfg.custom_hooks].count('IPSDHook') == 1


@pytest.mark.parametrize('config', ['seg/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024_ipsd.py',
                                    'det/mask-rcnn_r50_fpn_1x_coco_ipsd.py',
                                    'det/rtmdet_tiny_8xb32-300e_coco_ipsd.py',
                                    'seg/mask2former_r50_8xb2-90k_cityscapes-512x1024_ipsd.py'])
def test_ipsd_config_trains_an_iteration(config, standins, digit_scenes, tmp_path):
    cfg = load(config, standins, digit_scenes, str(tmp_path))
    shrink(cfg._cfg_dict)
    cfg.train_dataloader.batch_size = 1
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss_ipsd').current()
    assert math.isfinite(loss)


def test_pair_train_dataloader_wraps_every_kind_of_train_dataset():
    from ipsd_mm.config_utils import pair_train_dataloader
    pack, load = dict(type='PackSegInputs'), dict(type='LoadImageFromFile')
    plain = dict(batch_size=4, dataset=dict(type='A', pipeline=[load, pack]))
    out = pair_train_dataloader(plain, patch_size=16)
    assert out['batch_size'] == 2 and out['collate_fn'] == dict(type='pair_collate')
    assert out['dataset']['dataset']['pipeline'] == [load]
    assert out['dataset']['swap'] == dict(type='IntraClassPatchSwap', patch_size=16)
    assert out['dataset']['pipeline'] == [pack]
    assert plain['dataset']['pipeline'] == [load, pack]  # the baseline is left as it was
    concat = dict(batch_size=1, dataset=dict(type='ConcatDataset', datasets=[
        dict(type='A', pipeline=[load, pack]),
        dict(type='RepeatDataset', times=2, dataset=dict(type='B', pipeline=[load, pack]))]))
    out = pair_train_dataloader(concat)
    assert out['batch_size'] == 1
    inner = out['dataset']['dataset']['datasets']
    assert inner[0]['pipeline'] == [load] and inner[1]['dataset']['pipeline'] == [load]
    with pytest.raises(ValueError, match='packing transform'):
        pair_train_dataloader(dict(batch_size=2, dataset=dict(type='A', pipeline=[load])))
    with pytest.raises(ValueError, match="without 'type'"):
        pair_train_dataloader(plain, type='IntraClassPatchSwap', patch_size=8)


def test_ipsd_config_dumps_and_reloads(tmp_path):
    cfg = Config.fromfile(osp.join(CONFIGS, 'det/mask-rcnn_r50_fpn_1x_coco_ipsd.py'))
    dumped = str(tmp_path / 'dumped.py')
    cfg.dump(dumped)  # what the Runner writes into its work_dir
    again = Config.fromfile(dumped)
    assert again.train_dataloader.dataset.type == 'IntraClassPairDataset'
    assert again.train_dataloader.dataset.dataset.pipeline[-1].type != 'PackDetInputs'


@pytest.mark.parametrize('base', ['_base_/ipsd_seg.py', '_base_/ipsd_det.py'])
def test_base_configs_spell_the_code_defaults(base):
    """The base configs write every hook option out (a config records its experiment), and
    each value is the code's default: the one owner, IPSDHook's or PairedDistillLoss's
    signature. A default changed in code fails here until the base config follows."""
    import inspect

    from ipsd_mm.distill import IPSDHook, PairedDistillLoss
    defaults = {name: p.default for cls in (IPSDHook, PairedDistillLoss)
                for name, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    hook, = Config.fromfile(osp.join(CONFIGS, base)).custom_hooks
    options = {k: v for k, v in hook.items() if k != 'type'}
    assert options, base
    for key, value in options.items():
        assert key in defaults, f'{base}: {key} is no option of IPSDHook'
        assert value == defaults[key], f'{base}: {key}={value!r}, code default {defaults[key]!r}'
    missing = set(defaults) - set(options) - {'use_aux'} - (
        {'mode'} if base.endswith('det.py') else set())  # segmentor-only options
    assert not missing, f'{base} does not spell out {sorted(missing)}'
