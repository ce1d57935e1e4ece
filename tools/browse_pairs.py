"""Draw intra-class pairs of an IPSD config: both members side by side, ground truth overlaid
with the mmdet/mmseg visualizer, the swapped cells outlined in yellow. Small images are
enlarged (nearest neighbour, by a whole factor) to at least ``--min-height`` pixels, so that a
swapped cell of a 64-pixel scene can be seen.

    python tools/browse_pairs.py CONFIG --output-dir DIR [--num 8] [--seed 0]
                                        [--cfg-options k=v ...]
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, VISUALIZERS, init_default_scope
from mmengine.structures import PixelData
from mmengine.utils import import_modules_from_strings

from ipsd_mm.progress import progress


def parse_args():
    parser = argparse.ArgumentParser(description='Draw the intra-class pairs of a config')
    parser.add_argument('config', help='an IPSD config (train dataset IntraClassPairDataset)')
    parser.add_argument('--output-dir', required=True, help='where the PNGs go')
    parser.add_argument('--num', type=int, default=8, help='how many pairs')
    parser.add_argument('--seed', type=int, default=0, help='draws the pairs')
    parser.add_argument('--min-height', type=int, default=256,
                        help='enlarge smaller images to at least this height (default 256)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args()


def enlarge(image: np.ndarray, sample, factor: int):
    """``image`` and the ground truth of ``sample`` ``factor`` times larger, nearest
    neighbour (labels stay labels)."""
    if factor == 1:
        return image, sample
    image = image.repeat(factor, 0).repeat(factor, 1)
    if 'gt_sem_seg' in sample:  # a new PixelData: its size is fixed once set
        seg = sample.gt_sem_seg.data
        sample.gt_sem_seg = PixelData(
            data=seg.repeat_interleave(factor, -2).repeat_interleave(factor, -1))
    if 'gt_instances' in sample:
        instances = sample.gt_instances
        instances.bboxes = instances.bboxes * factor
        if 'masks' in instances:
            masks = instances.masks
            instances.masks = masks.resize((masks.height * factor, masks.width * factor))
    return image, sample


def draw_member(visualizer, results: dict, packed: dict, name: str,
                min_height: int = 256) -> np.ndarray:
    """One member: its packed image with ground truth, its swapped cells outlined, enlarged to
    at least ``min_height`` pixels."""
    image = packed['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()  # BGR CHW -> RGB HWC
    sample = packed['data_samples']
    boxes = sample.get('gt_instances', {}).get('bboxes')
    if boxes is not None and hasattr(boxes, 'tensor'):  # the mmdet visualizer wants a tensor
        sample.gt_instances.bboxes = boxes.tensor
    factor = max(1, -(-min_height // image.shape[0]))
    image, sample = enlarge(image, sample, factor)
    visualizer.add_datasample(name, image, sample, draw_gt=True, draw_pred=False, show=False)
    drawn = visualizer.get_image()
    cells = results['ipsd'].get('cells', [])
    if cells:
        visualizer.set_image(drawn)
        boxes = factor * torch.tensor([[x0, y0, x1, y1] for y0, y1, x0, x1 in cells],
                                      dtype=torch.float)
        visualizer.draw_bboxes(boxes, edge_colors='yellow', line_widths=2)
        drawn = visualizer.get_image()
    return drawn


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    height = max(left.shape[0], right.shape[0])
    pad = lambda im: np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255)
    return np.concatenate([pad(left), np.full((height, gap, 3), 255, np.uint8), pad(right)], 1)


class NoPairs(ValueError):
    """The config's train dataset is not IntraClassPairDataset."""


def browse(cfg: Config, output_dir: str, num: int, seed: int, min_height: int = 256) -> list:
    """Write ``num`` pair pictures under ``output_dir``, each member at least ``min_height``
    pixels tall; returns their paths."""
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if not hasattr(dataset, 'swapped_pair'):
        raise NoPairs(f'{cfg.filename}: the train dataset is {type(dataset).__name__}; '
                         'browse_pairs draws configs whose train dataset is IntraClassPairDataset')
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='browse_pairs', vis_backends=None))
    visualizer.dataset_meta = dataset.metainfo
    os.makedirs(output_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, bar = [], progress(num, 'pairs drawn')
    for idx in rng.permutation(len(dataset))[:num]:
        pair = dataset.swapped_pair(int(idx), rng)
        if pair is None:
            continue
        members = [draw_member(visualizer, results, dataset.member_pipeline(dict(results)),
                               f'{idx}_{role}', min_height) for role, results in enumerate(pair)]
        path = osp.join(output_dir, f'pair_{int(idx):05d}.png')
        mmcv.imwrite(side_by_side(*members)[..., ::-1], path)
        paths.append(path)
        bar.update()
    return paths


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        paths = browse(cfg, args.output_dir, args.num, args.seed, args.min_height)
    except NoPairs as error:  # say so, without a traceback
        raise SystemExit(f'browse_pairs: {error}')
    print(f'\nwrote {len(paths)} pair pictures to {args.output_dir}')


if __name__ == '__main__':
    main()
