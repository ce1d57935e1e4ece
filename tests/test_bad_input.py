"""Bad input, round 4 (issue 35): each input gets a clear error naming the option, key or file
and the fix, or is handled correctly."""
import logging
import math
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from helpers import seg_dataset_cfg
from runner_utils import tiny_cfg
from test_pair_dataset import SEG_LOAD, det_pairs, seg_pairs

SEG_IPSD = 'demo/deeplabv3_r18-d8_digit-scenes_ipsd.py'
DET_IPSD = 'demo/retinanet_r18_fpn_digit-scenes_ipsd.py'


@pytest.mark.parametrize('loop', ['val', 'test'])
def test_evaluating_on_the_pair_dataset_is_refused_without_the_hook(loop, digit_scenes,
                                                                    tmp_path):
    cfg = tiny_cfg(SEG_IPSD, digit_scenes, str(tmp_path / 'work'))
    cfg.custom_hooks = []  # no IPSDHook: the data side must refuse on its own
    cfg[f'{loop}_dataloader'] = dict(cfg[f'{loop}_dataloader'],
                                     dataset=cfg.train_dataloader.dataset,
                                     collate_fn=dict(type='pair_collate'))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=f'IntraClassPairDataset: the {loop} loop reads '
                       f'IntraClassPairDataset.*set {loop}_dataloader.dataset'):
        runner.train() if loop == 'val' else runner.test()


def test_the_pair_dataset_still_serves_training_and_the_browser(digit_scenes):
    ds = seg_pairs(digit_scenes)
    assert ds.metainfo['classes']  # read outside a val/test loop: served


def one_image_root(digit_scenes, tmp_path):
    root = str(tmp_path / 'one')
    shutil.copytree(digit_scenes, root)
    for folder in ('images/train', 'labels/train'):
        names = sorted(__import__('os').listdir(osp.join(root, folder)))
        for name in names[1:]:
            __import__('os').remove(osp.join(root, folder, name))
    return root


def test_a_dataset_of_one_image_is_refused(digit_scenes, tmp_path):
    root = one_image_root(digit_scenes, tmp_path)
    with pytest.raises(ValueError, match='holds one distinct image: a pair needs two images'):
        seg_pairs(root)
    from mmseg.registry import DATASETS
    repeated = dict(type='RepeatDataset', times=5, dataset=seg_dataset_cfg(root, SEG_LOAD))
    with pytest.raises(ValueError, match=r'one distinct image \(5 items, all copies of it '
                       r'through RepeatDataset\)'):
        DATASETS.build(dict(type='IntraClassPairDataset', dataset=repeated,
                            swap=dict(type='IntraClassPatchSwap', patch_size=8),
                            pipeline=[dict(type='PackSegInputs')]))


def run_python(script: str) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter; stdout and stderr together, in the order printed."""
    return subprocess.run([sys.executable, '-c', script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


# mmdet installed but failing on import (as its mmcv version check does)
BROKEN_MMDET = '''
import importlib.abc, importlib.machinery, sys
class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == 'mmdet':
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise AssertionError('MMCV==2.2.0 is used but incompatible. Please install mmcv>=2.0.0rc4, <2.2.0.')
sys.meta_path.insert(0, Broken())
'''


def test_a_broken_mmdet_does_not_stop_the_segmentation_side():
    proc = run_python(BROKEN_MMDET + '''
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    import ipsd_mm.seg, ipsd_mm
print('SIDES', ipsd_mm.SIDES)
print('WARN', [str(w.message) for w in caught if 'ipsd_mm' in str(w.message)])
print('MMDET', [m for m in sys.modules if m.startswith('mmdet.')])
''')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "SIDES ('seg',)" in proc.stdout
    assert 'the mmdet side (ipsd_mm.det) was skipped: mmdet is installed but does not import ' \
           '(AssertionError: MMCV==2.2.0' in proc.stdout
    assert 'MMDET []' in proc.stdout


def test_the_det_side_without_mmdetection_says_what_to_install(tmp_path):
    config = tmp_path / 'det.py'
    config.write_text("custom_imports = dict(imports=['ipsd_mm.det'])\n")
    proc = run_python(f'''
import sys
sys.modules['mmdet'] = None
from mmengine.config import Config
Config.fromfile({str(config)!r})
''')
    assert proc.returncode != 0
    assert 'ipsd_mm.det needs MMDetection (pip install mmdet==3.3.0)' in proc.stdout
    # said before MMEngine's own "Failed to import custom modules ... set PYTHONPATH"
    assert proc.stdout.index('ipsd_mm.det needs MMDetection') < proc.stdout.index(
        'Failed to import custom modules')


def test_the_seg_side_without_mmsegmentation_says_what_to_install():
    proc = run_python("import sys\nsys.modules['mmseg'] = None\nimport ipsd_mm.seg")
    assert proc.returncode != 0
    assert 'ipsd_mm.seg needs MMSegmentation (pip install mmsegmentation' in proc.stdout


@pytest.mark.parametrize('pairs', [seg_pairs, det_pairs])
def test_an_unreadable_image_names_the_file_index_and_member(pairs, digit_scenes, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(digit_scenes, root)
    ds = pairs(root)
    bad = ds.dataset.get_data_info(3)['img_path']
    open(bad, 'wb').close()  # zero bytes
    with pytest.raises(RuntimeError, match=rf'loading the anchor \(index 3: img_path={bad}'):
        ds[3]
    ds.partner_of = lambda idx, rng: 3
    with pytest.raises(RuntimeError, match=rf'loading the partner \(index 3: img_path={bad}'):
        ds[0]


def test_an_empty_image_is_refused_by_name():
    from mmseg.registry import TRANSFORMS as SEG
    from mmdet.registry import TRANSFORMS as DET
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    seg = SEG.build(dict(type='IntraClassPatchSwap', patch_size=8))
    empty = dict(img=np.zeros((0, 0, 3), np.uint8), gt_seg_map=np.zeros((0, 0), np.uint8),
                 img_path='empty.png', seg_fields=['gt_seg_map'])
    full = dict(img=np.zeros((16, 16, 3), np.uint8), gt_seg_map=np.ones((16, 16), np.uint8),
                img_path='full.png', seg_fields=['gt_seg_map'])
    with pytest.raises(ValueError, match=r"the anchor's image empty.png is empty \(shape "
                       r'\(0, 0, 3\)\)'):
        seg(dict(empty, mix_results=[full]))
    with pytest.raises(ValueError, match="the partner's image empty.png is empty"):
        seg(dict(full, mix_results=[empty]))
    init_default_scope('mmdet')
    det = DET.build(dict(type='IntraClassPatchSwap'))
    boxes = dict(gt_bboxes=np.zeros((0, 4), np.float32), gt_bboxes_labels=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="the anchor's image empty.png is empty"):
        det(dict(img=empty['img'], img_path='empty.png', **boxes,
                 mix_results=[dict(img=full['img'], **boxes)]))


def det_results(labels, path):
    from mmdet.structures.bbox import HorizontalBoxes
    n = len(labels)
    return dict(img=np.zeros((64, 64, 3), np.uint8), img_path=path,
                gt_bboxes=HorizontalBoxes(torch.tensor([[4., 4., 40., 40.]] * n)),
                gt_bboxes_labels=np.asarray(labels, np.int64),
                gt_ignore_flags=np.zeros(n, bool))


def test_negative_detection_labels_are_refused_in_the_swap_and_the_term():
    from mmdet.registry import TRANSFORMS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    swap = TRANSFORMS.build(dict(type='IntraClassPatchSwap'))
    with pytest.raises(ValueError, match=r"the partner's gt_bboxes_labels hold the negative "
                       r'label -1 \(b.png\): labels must be class ids'):
        swap(dict(det_results([2], 'a.png'), mix_results=[det_results([-1], 'b.png')]))
    ignored = det_results([2, -1], 'b.png')
    ignored['gt_ignore_flags'] = np.array([False, True])  # an ignored instance may be -1
    swap(dict(det_results([2], 'a.png'), mix_results=[ignored]))
    from ipsd_mm.distill.adapter import check_classes
    with pytest.raises(ValueError, match='negative label -1'):
        check_classes(3, 10, 'RetinaHead', 'fix', smallest=-1)


def test_non_finite_logits_are_said_once_naming_the_head(digit_scenes, tmp_path, caplog):
    cfg = tiny_cfg(SEG_IPSD, digit_scenes, str(tmp_path / 'work'), iters=3)
    cfg.log_level = 'INFO'
    runner = Runner.from_cfg(cfg)
    head = runner.model.decode_head.conv_seg
    head.register_forward_hook(lambda module, args, out: out * float('nan'))
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    runner.logger.addHandler(handler)
    runner.train()
    said = [m for m in messages if 'are not finite' in m]
    assert len(said) == 1, said
    assert 'loss_ipsd=nan at iteration 1' in said[0]
    assert 'decode_head.conv_seg' in said[0] and 'SegmentorAdapter' in said[0]


def test_finite_training_says_nothing_of_it(digit_scenes, tmp_path):
    cfg = tiny_cfg(SEG_IPSD, digit_scenes, str(tmp_path / 'work'), iters=2)
    runner = Runner.from_cfg(cfg)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    runner.logger.addHandler(handler)
    runner.train()
    assert math.isfinite(runner.message_hub.get_scalar('train/loss_ipsd').current())
    assert not [m for m in messages if 'not finite' in m]


def test_dist_train_runs_without_the_environment_activated(digit_scenes, tmp_path):
    """``bash tools/dist_train.sh CONFIG 2`` on CPUs, with a PATH that has no torchrun."""
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    config = str(tmp_path / 'tiny.py')
    cfg = tiny_cfg(SEG_IPSD, digit_scenes, str(tmp_path / 'work'), iters=2)
    cfg.dump(config)
    # no PYTHON, no torchrun on PATH: the script finds the repository's .venv
    env = dict(PATH='/usr/bin:/bin', HOME=str(tmp_path),
               PORT=str(29500 + (abs(hash(str(tmp_path))) % 1000)))
    proc = subprocess.run(['bash', osp.join(root, 'tools', 'dist_train.sh'), config, '2'],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_2.pth'))
