"""The foundation: the compiled stack, registration, library configs, and a real Runner that
trains, checkpoints, resumes and evaluates on the CPU."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import ipsd_mm
from runner_utils import tiny_cfg


def test_mmcv_ops_run():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.arange(64, dtype=torch.float).view(1, 1, 8, 8)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2)(
        feats, torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float))
    assert out.shape == (1, 1, 2, 2) and out[0, 0, 0, 0] < out[0, 0, 1, 1]


def test_import_registers_everything():
    from mmdet.registry import DATASETS as DET_DATASETS
    from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
    from mmengine.registry import FUNCTIONS, HOOKS
    from mmseg.registry import DATASETS as SEG_DATASETS
    from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS
    assert DET_TRANSFORMS.get('IntraClassPatchSwap') is ipsd_mm.det.DetIntraClassPatchSwap
    assert SEG_TRANSFORMS.get('IntraClassPatchSwap') is ipsd_mm.seg.SegIntraClassPatchSwap
    assert DET_DATASETS.get('IntraClassPairDataset') is not None
    assert SEG_DATASETS.get('IntraClassPairDataset') is not None
    assert HOOKS.get('IPSDHook') is ipsd_mm.IPSDHook
    assert FUNCTIONS.get('pair_collate') is ipsd_mm.pair_collate


def test_numpy_arrays_cross_into_the_compiled_stack():
    """The numpy the stack is installed with (2, pinned in requirements) works where numpy's
    ABI matters: mmcv's compiled nms on numpy input, pycocotools' RLE masks, torch views of
    numpy memory and cv2."""
    import cv2
    from mmcv.ops import nms
    from pycocotools import mask as mask_utils
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    _, keep = nms(boxes, np.array([0.9, 0.8, 0.7], dtype=np.float32), iou_threshold=0.5)
    assert isinstance(keep, np.ndarray) and keep.tolist() == [0, 2]
    mask = np.zeros((8, 8), dtype=np.uint8, order='F')
    mask[2:5, 3:7] = 1
    rle = mask_utils.encode(mask)
    assert mask_utils.area(rle) == 12 and (mask_utils.decode(rle) == mask).all()
    shared = torch.from_numpy(mask)
    shared[0, 0] = 7
    assert mask[0, 0] == 7  # one memory
    assert cv2.resize(mask, (4, 4), interpolation=cv2.INTER_NEAREST).shape == (4, 4)


@pytest.mark.parametrize('name', ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                                  'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'])
def test_library_configs_load(name, tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = '{name}'\n")
    cfg = Config.fromfile(str(child))
    assert cfg.model.type in ('FasterRCNN', 'EncoderDecoder') and cfg.train_dataloader


def test_runner_trains_checkpoints_resumes_and_evaluates(digit_scenes, tmp_path):
    work = str(tmp_path / 'work')
    runner = Runner.from_cfg(tiny_cfg('demo/deeplabv3_r18-d8_digit-scenes.py', digit_scenes,
                                      work, iters=2))
    runner.train()
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # The checkpoint loads with torch's default weights_only=True (ipsd_mm.compat).
    state = torch.load(ckpt, map_location='cpu')
    assert state['meta']['iter'] == 2 and 'message_hub' in state

    cfg = tiny_cfg('demo/deeplabv3_r18-d8_digit-scenes.py', digit_scenes, work, iters=4)
    cfg.resume, cfg.load_from = True, ckpt
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 4 and osp.isfile(osp.join(work, 'iter_4.pth'))
    assert math.isfinite(resumed.message_hub.get_scalar('train/loss').current())

    cfg = tiny_cfg('demo/deeplabv3_r18-d8_digit-scenes.py', digit_scenes, str(tmp_path / 't'))
    cfg.load_from = osp.join(work, 'iter_4.pth')
    metrics = Runner.from_cfg(cfg).test()
    assert 0 <= metrics['mIoU'] <= 100


class _Sneaky:
    """Pickles as getattr(HistoryBuffer, '__init__'): a lookup the compat layer must refuse."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_weights_only_still_refuses_other_getattr(tmp_path):
    path = str(tmp_path / 'sneaky.pth')
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(path)


# A fresh interpreter where one library cannot be imported (None in sys.modules: `import` fails
# and importlib finds no spec), training the other library's IPSD demo config for two steps.
ONE_SIDE_ONLY = """
import sys
sys.modules[{blocked!r}] = None
sys.path[:0] = [{tests!r}]
from mmengine.runner import Runner
from runner_utils import tiny_cfg
import ipsd_mm
runner = Runner.from_cfg(tiny_cfg({config!r}, {root!r}, {work!r}, iters=2))
runner.train()
loaded = sorted(m for m, v in sys.modules.items() if m.split('.')[0] == {blocked!r} and v)
print('SIDES', ipsd_mm.SIDES, 'LOADED', loaded,
      'IPSD', runner.message_hub.get_scalar('train/loss_ipsd').current())
"""


@pytest.mark.parametrize('side,blocked,config', [
    ('seg', 'mmdet', 'demo/deeplabv3_r18-d8_digit-scenes_ipsd.py'),
    ('det', 'mmseg', 'demo/retinanet_r18_fpn_digit-scenes_ipsd.py')])
def test_each_side_trains_without_the_other_library(side, blocked, config, digit_scenes,
                                                    tmp_path):
    """A segmentation user needs no MMDetection, a detection user no MMSegmentation: the
    config's ``custom_imports=['ipsd_mm.<side>']`` and ``import ipsd_mm`` work without it."""
    import subprocess
    import sys
    tests = osp.dirname(osp.abspath(__file__))
    script = ONE_SIDE_ONLY.format(blocked=blocked, tests=tests,
                                  config=config,
                                  root=digit_scenes, work=str(tmp_path / 'work'))
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert f"SIDES ('{side}',) LOADED [] IPSD" in line, line
    assert math.isfinite(float(line.split()[-1]))
