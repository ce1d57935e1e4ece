"""Pretrain the accuracy study's backbones on a classification task, once: the CPU stand-in for
the ImageNet-pretrained start every paper-scale config uses (no ImageNet weights can be
downloaded here).

The task: 32x32 crops holding one printed digit (10 classes) or only background texture (an
11th class), drawn with DigitScenes' own glyph and texture generators from random streams of
their own (``--seed``), so no crop is a piece of a study scene. The backbone (the study
configs' ResNet-18 at 16 base channels, plain for the detectors, V1c for the segmentor, or
their teachers' at 32 or 64) gets a global pool and a linear classifier; only the backbone's weights are saved, in the form
mmengine's ``Pretrained`` init reads.

    python tools/pretrain_backbone.py --arch resnet18-w16 --out work_dirs/pretrained/resnet18-w16.pth
    python tools/pretrain_backbone.py --arch resnet18v1c-w16 --out work_dirs/pretrained/resnet18v1c-w16.pth
"""
import argparse
import os
import os.path as osp
import time

import cv2
import numpy as np



def _archs() -> dict:
    """The study configs' backbones (configs/study/): the students' at 16 base channels, their
    teachers' at 32 (``-w32``) and 64 (``-w64``); name: (registry scope, config)."""
    archs = {}
    for width in (16, 32, 64):
        archs[f'resnet18-w{width}'] = ('mmdet', dict(
            type='ResNet', depth=18, base_channels=width, out_indices=(3, ), norm_eval=False,
            style='pytorch'))
        archs[f'resnet18v1c-w{width}'] = ('mmseg', dict(
            type='ResNetV1c', depth=18, base_channels=width, stem_channels=width,
            out_indices=(3, ), norm_eval=False, norm_cfg=dict(type='BN', requires_grad=True)))
    return archs


ARCHS = _archs()
SIZE = 32


def make_crops(num: int, seed: int):
    """``num`` (crop uint8 HxWx3, class) pairs; class 10 is background only."""
    from ipsd_mm.testing.digit_scenes import printed_glyph, texture
    rng = np.random.default_rng([seed, 7])
    crops, labels = np.zeros((num, SIZE, SIZE, 3), np.uint8), np.zeros(num, np.int64)
    for k in range(num):
        img = texture(rng, SIZE, SIZE)
        cls = int(rng.integers(11))
        if cls < 10:
            side = int(rng.integers(14, SIZE + 1))
            glyph = cv2.resize(printed_glyph(rng, cls), (side, side), interpolation=cv2.INTER_LINEAR)
            y, x = (int(rng.integers(0, SIZE - side + 1)) for _ in range(2))
            colour = rng.uniform(0, 255, 3)
            while np.abs(colour - img[y:y + side, x:x + side].mean((0, 1))).sum() < 150:
                colour = rng.uniform(0, 255, 3)
            alpha = np.clip(glyph * 1.5, 0, 1)[..., None]
            img[y:y + side, x:x + side] = alpha * colour + (1 - alpha) * img[y:y + side, x:x + side]
        crops[k], labels[k] = np.round(img), cls
    return crops, labels


def build(arch: str):
    import torch
    from mmengine.registry import MODELS, init_default_scope
    scope, cfg = ARCHS[arch]
    init_default_scope(scope)
    backbone = MODELS.build(dict(cfg))
    backbone.init_weights()
    channels = cfg['base_channels'] * 8  # the last stage's, for ResNet-18
    head = torch.nn.Linear(channels, 11)
    return backbone, head


def pretrain(arch: str, out: str, num: int = 20000, epochs: int = 6, seed: int = 1000,
             batch: int = 128, threads: int = 0) -> dict:
    """Train and save; returns the held-out accuracy and the time taken.

    Every epoch leaves its state in ``<out>.partial`` (weights, optimizer, schedule and the
    shuffling generator), so a pretraining stopped part way (a session's end) goes on from its
    last whole epoch when started again, to the weights an unbroken run gives (bit for bit on
    one thread; on several, torch's CPU kernels can change the last bits while other work loads
    the cores); the file is removed once ``out`` is written."""
    import torch
    import torch.nn.functional as F
    from mmengine.logging import print_log
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    start = time.time()
    held_out = 2000 if num >= 8000 else max(num // 4, 16)
    crops, labels = make_crops(num + held_out, seed)
    mean = np.array([123.675, 116.28, 103.53], np.float32)  # the study configs' normalisation
    std = np.array([58.395, 57.12, 57.375], np.float32)
    x = torch.from_numpy(((crops - mean) / std).transpose(0, 3, 1, 2).astype(np.float32))
    y = torch.from_numpy(labels)
    x_train, y_train, x_test, y_test = x[:num], y[:num], x[num:], y[num:]
    backbone, head = build(arch)
    params = list(backbone.parameters()) + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    steps = epochs * (num // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    settings = dict(arch=arch, num=num, epochs=epochs, seed=seed, batch=batch)
    partial, first, spent = out + '.partial', 0, 0.0
    if osp.isfile(partial):
        state = torch.load(partial, map_location='cpu', weights_only=False)
        if state['settings'] != settings:
            raise SystemExit(
                f'pretrain_backbone: {partial} is a pretraining with other settings '
                f"({state['settings']}, not {settings}): delete it to start this one over")
        backbone.load_state_dict(state['backbone'])
        head.load_state_dict(state['head'])
        optim.load_state_dict(state['optim'])
        sched.load_state_dict(state['sched'])
        gen.set_state(state['generator'])
        first, spent = state['epoch'], state['seconds']
        print_log(f'pretrain {arch}: resumed from {partial} after epoch {first}/{epochs}',
                  logger='current')

    def logits(inputs):
        return head(backbone(inputs)[-1].mean((2, 3)))

    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    for epoch in range(first, epochs):
        backbone.train()
        order = torch.randperm(num, generator=gen)
        for k in range(num // batch):
            idx = order[k * batch:(k + 1) * batch]
            loss = F.cross_entropy(logits(x_train[idx]), y_train[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
        backbone.eval()
        with torch.no_grad():
            acc = float((logits(x_test).argmax(1) == y_test).float().mean())
        print_log(f'pretrain {arch}: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}, '
                  f'held-out accuracy {100 * acc:.1f}%', logger='current')
        if epoch + 1 < epochs:
            torch.save(dict(settings=settings, epoch=epoch + 1, backbone=backbone.state_dict(),
                            head=head.state_dict(), optim=optim.state_dict(),
                            sched=sched.state_dict(), generator=gen.get_state(),
                            seconds=spent + time.time() - start), partial + '.tmp')
            os.replace(partial + '.tmp', partial)
    meta = dict(settings, accuracy=acc, seconds=spent + time.time() - start)
    torch.save(dict(state_dict=backbone.state_dict(), meta=meta), out)
    if osp.isfile(partial):
        os.remove(partial)
    print_log(f'pretrain {arch}: saved {out} ({meta})', logger='current')
    return meta


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', choices=sorted(ARCHS), required=True)
    parser.add_argument('--out', required=True, help='the checkpoint to write')
    parser.add_argument('--num', type=int, default=20000, help='training crops')
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: default; 1 for weights that are the same bits '
                        'on a loaded machine)')
    return parser.parse_args()


if __name__ == '__main__':
    import sys
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import ipsd_mm  # noqa: F401  (compat)
    args = parse_args()
    pretrain(args.arch, args.out, args.num, args.epochs, args.seed, args.batch, args.threads)
