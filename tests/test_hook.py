"""IPSDHook with real small models: training, gradients, bad input, resume and DDP."""
import copy
import gc
import math
import os
import os.path as osp
import socket

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner

from ipsd_mm import IPSDHook
from runner_utils import tiny_cfg

SEG = 'demo/deeplabv3_r18-d8_digit-scenes_ipsd.py'
RETINA = 'demo/retinanet_r18_fpn_digit-scenes_ipsd.py'


def faster_rcnn_cfg(root, work_dir, iters=2):
    """The demo detector config with a small two-stage model in place of RetinaNet."""
    cfg = tiny_cfg(RETINA, root, work_dir, iters)
    model = Config.fromfile(_mmdet_base('models/faster-rcnn_r50_fpn.py')).model
    model.backbone.update(depth=18, base_channels=32, frozen_stages=-1, norm_eval=False,
                          init_cfg=None)
    model.neck.update(in_channels=[32, 64, 128, 256], out_channels=64)
    model.rpn_head.update(in_channels=64, feat_channels=64)
    model.roi_head.bbox_roi_extractor.out_channels = 64
    model.roi_head.bbox_head.update(in_channels=64, fc_out_channels=128, num_classes=10)
    cfg.model = model
    return cfg


def _mmdet_base(rel):
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', rel)


def scalars(runner, key):
    return runner.message_hub.get_scalar(f'train/{key}').data[0]


@pytest.mark.parametrize('make', [
    lambda root, work: tiny_cfg(SEG, root, work, iters=3),
    lambda root, work: tiny_cfg(RETINA, root, work, iters=3),
    lambda root, work: faster_rcnn_cfg(root, work, iters=3),
], ids=['deeplabv3', 'retinanet', 'faster-rcnn'])
def test_runner_logs_finite_nonzero_ipsd(make, digit_scenes, tmp_path):
    runner = Runner.from_cfg(make(digit_scenes, str(tmp_path)))
    runner.train()
    losses = scalars(runner, 'loss_ipsd')
    pairs = scalars(runner, 'ipsd_pairs')
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert (pairs == 2).all()  # batch_size=2 pairs per step
    assert max(losses) > 0


@pytest.mark.parametrize('config,make', [(SEG, None), (RETINA, None), (None, faster_rcnn_cfg)],
                         ids=['deeplabv3', 'retinanet', 'faster-rcnn'])
def test_parameters_get_gradients_from_loss_ipsd(config, make, digit_scenes, tmp_path):
    cfg = make(digit_scenes, str(tmp_path)) if make else tiny_cfg(config, digit_scenes,
                                                                   str(tmp_path))
    cfg.custom_hooks = []  # the hook is attached by hand below
    runner = Runner.from_cfg(cfg)
    hook = IPSDHook(temperature=1.0)
    hook.before_run(runner)
    model = runner.model
    model.train()
    for batch in runner.build_dataloader(cfg.train_dataloader):
        data = model.data_preprocessor(batch, True)
        losses = model.loss(data['inputs'], data['data_samples'])
        if losses['loss_ipsd'].item() > 0:
            break
    assert losses['loss_ipsd'].item() > 0
    model.zero_grad()
    losses['loss_ipsd'].backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    hook.after_run(runner)
    assert 'loss' not in vars(model)  # the class's own loss again
    assert 'loss_ipsd' not in model.loss(data['inputs'], data['data_samples'])


class Unsupported(BaseModel):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.layer(inputs)


class _FakeRunner:
    def __init__(self, model):
        from mmengine.logging import MMLogger
        self.model, self.logger = model, MMLogger.get_instance('ipsd_test')


def test_unsupported_model_is_named():
    with pytest.raises(TypeError, match='Unsupported.*Supported: mmseg EncoderDecoder'):
        IPSDHook().before_run(_FakeRunner(Unsupported()))


def test_options_are_checked():
    for kwargs, key in ((dict(mode='pixels'), 'mode'), (dict(temperature=0), 'temperature'),
                        (dict(loss_weight=-1), 'loss_weight'), (dict(warmup_iters=-2),
                                                                 'warmup_iters')):
        with pytest.raises(ValueError, match=key):
            IPSDHook(**kwargs)


def test_batch_without_pair_metadata_says_what_to_do(digit_scenes, tmp_path):
    cfg = tiny_cfg('demo/deeplabv3_r18-d8_digit-scenes.py', digit_scenes, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    IPSDHook().before_run(runner)
    batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    data = runner.model.data_preprocessor(batch, True)
    with pytest.raises(KeyError, match='IntraClassPairDataset.*pair_collate'):
        runner.model.loss(data['inputs'], data['data_samples'])


def test_warmup_and_weight_scale_the_term(digit_scenes, tmp_path):
    hook = IPSDHook(loss_weight=2.0, warmup_iters=4)
    hook._iter = 0
    assert hook.weight() == pytest.approx(0.5)
    hook._iter = 10
    assert hook.weight() == pytest.approx(2.0)


def test_pixel_mode_and_aux_head(digit_scenes, tmp_path):
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path), iters=2)
    cfg.custom_hooks = [dict(type='IPSDHook', mode='pixel', use_aux=True)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    for key in ('loss_ipsd', 'loss_ipsd_aux0'):
        assert all(math.isfinite(v) for v in scalars(runner, key))


def test_resume_continues_with_the_hook_active(digit_scenes, tmp_path):
    work = str(tmp_path / 'work')
    Runner.from_cfg(tiny_cfg(RETINA, digit_scenes, work, iters=2)).train()
    cfg = tiny_cfg(RETINA, digit_scenes, work, iters=4)
    cfg.resume, cfg.load_from = True, osp.join(work, 'iter_2.pth')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4
    assert len(scalars(runner, 'loss_ipsd')) >= 2  # logged again after the resume


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, root, work, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    import ipsd_mm  # noqa: F401
    from ipsd_mm.compat import setup_cpu_distributed
    from runner_utils import tiny_cfg as make
    cfg = make(SEG, root, work, iters=2)
    cfg.launcher = 'pytorch'
    setup_cpu_distributed(cfg, 'pytorch')
    runner = Runner.from_cfg(cfg)
    assert runner.distributed and torch.distributed.get_world_size() == world
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss_ipsd').data[0]
    torch.save(torch.as_tensor(losses), osp.join(out, f'rank{rank}.pt'))
    # Tear down in order: DDP's reducer holds the gloo group, whose threads must not outlive
    # the interpreter (a gloo thread alive at exit aborts the process: SIGABRT, "terminate
    # called without an active exception", seen once in CI); both ranks finish first.
    del runner
    gc.collect()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes(digit_scenes, tmp_path):
    import sys
    sys.path.insert(0, osp.dirname(__file__))
    ctx = mp.start_processes(_ddp_worker, args=(2, _free_port(), digit_scenes,
                                                str(tmp_path / 'work'), str(tmp_path)),
                             nprocs=2, join=False, start_method='spawn')
    while not ctx.join(timeout=300):
        pass
    for rank in range(2):
        losses = torch.load(osp.join(tmp_path, f'rank{rank}.pt'))
        assert len(losses) == 2 and torch.isfinite(losses).all()


def test_a_batch_collated_without_pair_collate_is_named_before_the_preprocessor(digit_scenes,
                                                                                tmp_path):
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path))
    cfg.train_dataloader.collate_fn = dict(type='pseudo_collate')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='pair_collate'):
        runner.train()


@pytest.mark.parametrize('config,key,value,attribute', [
    (SEG, 'train_dataloader.dataset.swap.patch_size', 32, ('swap', 'patch_size', (32, 32))),
    (SEG, 'train_dataloader.dataset.swap.exclude_classes', [0],
     ('swap', 'exclude_classes', (0, ))),
    (RETINA, 'train_dataloader.dataset.swap.one_way', True, ('swap', 'one_way', True)),
    (RETINA, 'custom_hooks.0.gate', 'argmax', ('hook', 'gate', 'argmax')),
    (SEG, 'custom_hooks.0.loss_weight', 0.5, ('hook', 'loss_weight', 0.5)),
])
def test_every_option_is_overridden_the_openmmlab_way(config, key, value, attribute, digit_scenes,
                                                      tmp_path):
    """--cfg-options (merge_from_dict) reaches the built transform and hook: no dead copy."""
    cfg = tiny_cfg(config, digit_scenes, str(tmp_path))
    cfg.merge_from_dict({key: value})
    runner = Runner.from_cfg(cfg)
    where, name, expected = attribute
    if where == 'swap':
        got = getattr(runner.train_dataloader.dataset.swap.options, name)
    else:
        hook = next(h for h in runner.hooks if isinstance(h, IPSDHook))
        got = getattr(hook.loss if name == 'gate' else hook, name)
    assert got == expected


def test_a_child_config_overrides_the_swap(digit_scenes, tmp_path):
    from runner_utils import CONFIGS
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{osp.join(CONFIGS, SEG)}']\n"
                     "train_dataloader = dict(dataset=dict(swap=dict(patch_size=24, prob=0.5)))\n")
    runner = Runner.from_cfg(tiny_cfg(str(child), digit_scenes, str(tmp_path / 'work')))
    options = runner.train_dataloader.dataset.swap.options  # what the built transform uses
    assert options.patch_size == (24, 24) and options.prob == 0.5


def test_a_second_ipsd_hook_on_the_model_is_refused_by_name(digit_scenes, tmp_path):
    """Two IPSDHooks (a child config adding one to its base's) would wrap model.loss twice and
    keep only the last term; the second is refused, and the run names it."""
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path))
    cfg.custom_hooks = [dict(type='IPSDHook'), dict(type='IPSDHook', loss_weight=2.0)]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='a second IPSDHook on the same model'):
        runner.train()


def test_unknown_options_are_named_with_the_ones_that_exist():
    from mmseg.registry import TRANSFORMS
    with pytest.raises(TypeError, match=r'no option tempreature; its options: loss_weight.*'
                                         r'temperature, gate, gate_threshold'):
        IPSDHook(tempreature=2.0)
    with pytest.raises(TypeError, match=r'no option box_grid; its options: patch_size'):
        TRANSFORMS.build(dict(type='IntraClassPatchSwap', box_grid=2))


def test_pairs_collated_by_another_function_name_pair_collate_without_the_hook(digit_scenes,
                                                                                tmp_path):
    """Without IPSDHook nothing else checks the batch: the pair item itself refuses to be
    rebuilt by pseudo_collate, naming pair_collate, before mmseg's preprocessor fails."""
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path))
    cfg.train_dataloader.collate_fn = dict(type='pseudo_collate')
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match=r"collate_fn=dict\(type='pair_collate'\)"):
        runner.train()


def test_evaluating_on_the_pair_dataset_is_refused_naming_the_loop(digit_scenes, tmp_path):
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path))
    cfg.val_dataloader = copy.deepcopy(cfg.train_dataloader)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='the val loop reads IntraClassPairDataset'):
        runner.train()


def test_a_decode_head_with_fewer_classes_than_the_dataset_is_named(digit_scenes, tmp_path):
    cfg = tiny_cfg(SEG, digit_scenes, str(tmp_path))
    cfg.model.decode_head.num_classes = 5
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'num_classes=5 but the train dataset has 11 classes'):
        runner.train()
