"""What IPSD costs, measured: the swap next to the rest of the pipeline and its peers, and a
training step next to the baseline's and a teacher-based KD step. Prints one table per part.

    python tools/benchmark.py [--parts aug step] [--repeats 10] [--quick]

--quick shrinks every size and count, and times one model, for a smoke run (the test suite uses
it); its numbers mean nothing. Timings on a busy machine are noisy: compare ratios within one run.
"""
import argparse
import copy
import json
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial

import cv2
import numpy as np
from prettytable import PrettyTable

import ipsd_mm  # noqa: F401  (registrations, compat)
from ipsd_mm.testing.synthetic import blocky, for_cpu, pair_batch


def parse_args():
    parser = argparse.ArgumentParser(description='Cost of IPSD, measured')
    parser.add_argument('--parts', nargs='+', choices=['aug', 'step', 'term'],
                        default=['aug', 'step', 'term'])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--step-models', nargs='+', metavar='WORD',
                        help='only the step-table models whose name holds one of these words '
                        '(e.g. demo study 512x1024)')
    parser.add_argument('--device', default='cpu', help="where the step table runs: cpu or cuda")
    parser.add_argument('--amp', action='store_true',
                        help='step table: AMP rows too, next to fp32 (a GPU is needed)')
    parser.add_argument('--quick', action='store_true', help='tiny sizes: a smoke run')
    args = parser.parse_args()
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp needs --device cuda: AmpOptimWrapper runs on a GPU')
    return args


def median_ms(fn, make_input, repeats: int) -> float:
    """Median wall time of ``fn(make_input())`` in ms; making the input is not timed."""
    times = []
    for _ in range(repeats):
        args = make_input()
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


# ----------------------------------------------------------------------------------------------
# Part 1: augmentation cost per image pair


def write_image(path, rng, h, w):
    img = cv2.resize(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
    cv2.imwrite(path, img)


def fresh_pair(loaded):
    """Copies of two loaded samples, the partner in the anchor's mix_results (not timed)."""
    a, b = copy.deepcopy(loaded[0]), copy.deepcopy(loaded[1])
    a['mix_results'] = [b]
    return (a,)


def cells_floor(a_img, b_img, cells_a, cells_b):
    """The floor: moving exactly the swapped pixels of both images through a buffer and back
    (the memory traffic of a swap, without choosing, resizing or labels)."""
    for img, cells in ((a_img, cells_a), (b_img, cells_b)):
        for y0, y1, x0, x1 in cells:
            buffer = img[y0:y1, x0:x1].copy()
            img[y0:y1, x0:x1] = buffer


def aug_segmentation(tmp, repeats, quick):
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import TRANSFORMS
    init_default_scope('mmseg')
    h, w, crop = (128, 256, (64, 128)) if quick else (1024, 2048, (512, 1024))
    rng = np.random.default_rng(0)
    files = []
    for k in range(2):
        img, lab = osp.join(tmp, f'seg{k}.png'), osp.join(tmp, f'seg{k}_label.png')
        write_image(img, rng, h, w)
        cv2.imwrite(lab, blocky(rng, h, w, 5, 64))
        files.append(dict(img_path=img, seg_map_path=lab, seg_fields=[], reduce_zero_label=False))
    rest = Compose([TRANSFORMS.build(t) for t in [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(w, h), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop), dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion')]])
    pack = TRANSFORMS.build(dict(type='PackSegInputs'))
    swap = TRANSFORMS.build(dict(type='IntraClassPatchSwap', patch_size=64 if not quick else 16))
    loaded = [rest(copy.deepcopy(f)) for f in files]

    pair = partial(fresh_pair, loaded)

    t_rest = median_ms(lambda: [pack(rest(copy.deepcopy(f))) for f in files], lambda: (),
                       repeats)
    t_swap = median_ms(swap, pair, repeats)
    probe = swap(pair()[0])
    cells = probe['ipsd']['cells']
    t_floor = median_ms(cells_floor, lambda: (loaded[0]['img'].copy(), loaded[1]['img'].copy(),
                                              cells, cells), repeats)
    return [('segmentation', f'{h}x{w}, crop {crop[0]}x{crop[1]}', 'rest of pipeline', t_rest),
            ('', '', f'IntraClassPatchSwap ({len(cells)} cells)', t_swap),
            ('', '', 'floor: copy the swapped pixels', t_floor)]


def coco_instances(rng, h, w, n):
    instances = []
    for _ in range(n):
        bw, bh = rng.uniform(0.1, 0.4) * w, rng.uniform(0.1, 0.4) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        poly = [x, y, x + bw, y, x + bw, y + bh, x + bw / 2, y + bh * 1.2 if y + bh * 1.2 < h
                else y + bh, x, y + bh]
        instances.append(dict(bbox=[x, y, x + bw, y + bh], bbox_label=int(rng.integers(0, 3)),
                              ignore_flag=0, mask=[poly]))
    return instances


def aug_detection(tmp, repeats, quick):
    from mmcv.transforms import Compose
    from mmdet.registry import TRANSFORMS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    h, w, n = (100, 160, 3) if quick else (800, 1333, 7)
    rng = np.random.default_rng(1)
    files = []
    for k in range(2):
        img = osp.join(tmp, f'det{k}.jpg')
        write_image(img, rng, h, w)
        files.append(dict(img_path=img, instances=coco_instances(rng, h, w, n), img_id=k))
    rest = Compose([TRANSFORMS.build(t) for t in [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(w, h), keep_ratio=True), dict(type='RandomFlip', prob=0.5)]])
    pack = TRANSFORMS.build(dict(type='PackDetInputs'))
    loaded = [rest(copy.deepcopy(f)) for f in files]

    pair = partial(fresh_pair, loaded)

    t_rest = median_ms(lambda: [pack(rest(copy.deepcopy(f))) for f in files], lambda: (),
                       repeats)
    rows = [('detection', f'{h}x{w}, {n} boxes with masks', 'rest of pipeline', t_rest)]
    swap = TRANSFORMS.build(dict(type='IntraClassPatchSwap', box_grid=4))
    t_swap = median_ms(swap, pair, repeats)
    probe = swap(pair()[0])
    rows.append(('', '', f"IntraClassPatchSwap ({probe['ipsd']['num_cells']} cells)", t_swap))
    for peer in (dict(type='CopyPaste', max_num_pasted=100),
                 dict(type='MixUp', img_scale=(w, h))):
        rows.append(('', '', f"mmdet {peer['type']}", median_ms(TRANSFORMS.build(peer), pair,
                                                                repeats)))
    cells_a, cells_b = probe['ipsd']['cells'], probe['mix_results'][0]['ipsd']['cells']
    rows.append(('', '', 'floor: copy the swapped pixels',
                 median_ms(cells_floor, lambda: (loaded[0]['img'].copy(),
                                                 loaded[1]['img'].copy(), cells_a, cells_b),
                           repeats)))
    return rows


def augmentation_table(repeats, quick):
    with tempfile.TemporaryDirectory() as tmp:
        rows = aug_segmentation(tmp, repeats, quick) + aug_detection(tmp, repeats, quick)
    table = PrettyTable(['task', 'input', 'per image pair', 'ms', 'vs rest of pipeline'])
    rest = None
    for task, size, what, ms in rows:
        rest = ms if what == 'rest of pipeline' else rest
        table.add_row([task, size, what, f'{ms:.2f}', f'{100 * ms / rest:.1f}%'])
    return table


# ----------------------------------------------------------------------------------------------
# Part 2: training-step cost, one subprocess per variant (its peak RSS is the step's memory)

STEP_MODELS = {
    'demo DeepLabV3 (half R18-D8), 8x128x128': ('demo/deeplabv3_r18-d8_digit-scenes.py', 8,
                                                 (128, 128)),
    'demo RetinaNet (half R18-FPN), 8x128x128': ('demo/retinanet_r18_fpn_digit-scenes.py', 8,
                                                  (128, 128)),
    'study Faster R-CNN (quarter R18-FPN), 8x64x64': (
        'study/faster-rcnn_r18-w16_fpn_digit-scenes.py', 8, (64, 64)),
    'DeepLabV3-R18-D8, 2x512x1024': (
        'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py', 2, (512, 1024)),
}


VARIANTS = ('baseline', 'ipsd', 'kd')
LABELS = dict(baseline='baseline', ipsd='IPSD (swap pairs + loss_ipsd)',
              kd='baseline + frozen ResNet-101 teacher forward')


def step_worker(config: str, images: int, size, variants, iters: int, device: str = 'cpu',
                amp: bool = False) -> None:
    """Runs in a subprocess: ``iters`` rounds of one train step of each of ``variants``
    (baseline, ipsd, kd), interleaved in one process with the order rotated each round, so that
    a busy machine slows every variant alike; a first round warms up. Prints one JSON line:
    per variant the median seconds per step, the median of its per-round ratio to the baseline,
    and the peak memory (``torch.cuda.max_memory_allocated`` of its steps on a GPU; on the CPU
    the process's peak RSS, meaningful only when one variant runs alone)."""
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope

    torch.manual_seed(0)
    configs = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
    path = config if '::' in config else osp.join(configs, config)
    if '::' in path:
        tmp = tempfile.NamedTemporaryFile('w', suffix='.py', delete=False)
        tmp.write(f"_base_ = '{path}'\n")
        tmp.close()
        path = tmp.name
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    for_cpu(cfg.model._cfg_dict if hasattr(cfg.model, '_cfg_dict') else cfg.model)
    model = MODELS.build(cfg.model).to(device)
    model.train()
    optim = build_optim_wrapper(model, dict(
        type='AmpOptimWrapper' if amp else 'OptimWrapper',
        optimizer=dict(type='SGD', lr=1e-4, momentum=0.9)))
    cuda = device.startswith('cuda')
    seg = cfg.model.type == 'EncoderDecoder'
    batch = pair_batch('seg' if seg else 'det', images, size)

    class _Runner:
        logger = MMLogger.get_instance('benchmark')
    _Runner.model = model
    hook = ipsd_mm.IPSDHook()
    teacher = None
    if 'kd' in variants:
        from mmdet.models.backbones import ResNet
        teacher = ResNet(depth=101).to(device)  # a frozen ResNet-101 teacher, forward only
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

    def step(variant: str) -> float:
        if variant == 'ipsd':
            hook.before_run(_Runner)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        if variant == 'kd':
            with torch.no_grad(), optim.optim_context(model):
                teacher(model.data_preprocessor(copy.copy(batch), True)['inputs'])
        model.train_step(copy.copy(batch), optim)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if variant == 'ipsd':
            hook.after_run(_Runner)
        return elapsed

    times = {v: [] for v in variants}
    peaks = {v: 0.0 for v in variants}
    for r in range(iters + 1):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for variant in order:
            elapsed = step(variant)
            if r:  # round 0 warms up
                times[variant].append(elapsed)
            if cuda:
                peaks[variant] = max(peaks[variant], torch.cuda.max_memory_allocated() / 2**20)
    if not cuda:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = {v: rss for v in variants}
    base = np.asarray(times.get('baseline', times[variants[0]]))
    result = {v: dict(sec=float(np.median(t)), ratio=float(np.median(np.asarray(t) / base)),
                      peak=peaks[v]) for v, t in times.items()}
    if cuda:  # where a step makes the host wait for the GPU
        for v in variants:
            try:
                result[v]['waits'] = device_waits(partial(step, v))
            except Exception as err:  # a diagnostic: never lose the timings for it
                result[v]['waits'] = dict(total=-1, ipsd_mm=[repr(err)])
    print(json.dumps(result))


TERM_MODELS = {
    'demo DeepLabV3, 8x128x128': ('demo/deeplabv3_r18-d8_digit-scenes.py', 8, (128, 128)),
    'demo RetinaNet, 8x128x128': ('demo/retinanet_r18_fpn_digit-scenes.py', 8, (128, 128)),
    'study Faster R-CNN, 8x64x64': ('study/faster-rcnn_r18-w16_fpn_digit-scenes.py', 8, (64, 64)),
}


def term_worker(config: str, images: int, size, repeats: int) -> None:
    """Runs in a subprocess: what the term alone costs the host in one training step. After a
    recorded forward of the task loss, ``adapter.terms`` and the term's backward to the
    recorded tensors are profiled (the operators they dispatch: each a kernel launch on a GPU,
    counted at the first level, as Python or autograd calls them) and timed (median host
    time). Prints one JSON line."""
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    configs = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
    cfg = Config.fromfile(osp.join(configs, config))
    init_default_scope(cfg.default_scope)
    for_cpu(cfg.model)
    model = MODELS.build(cfg.model)
    model.train()
    seg = cfg.model.type == 'EncoderDecoder'
    data = model.data_preprocessor(pair_batch('seg' if seg else 'det', images, size), True)
    inputs, samples = data['inputs'], data['data_samples']

    class _Runner:
        logger = MMLogger.get_instance('benchmark')
    _Runner.model = model
    task_loss = type(model).loss.__get__(model)  # the model's own loss, not the hook's
    hook = ipsd_mm.IPSDHook()
    hook.before_run(_Runner)
    adapter = hook.adapter

    def tensors(value) -> list:
        if isinstance(value, torch.Tensor):
            return [value] if value.requires_grad else []
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in tensors(v)]
        return []

    def term(profiled: bool = False):
        with adapter.recording():
            task_loss(inputs, samples)
        recorded = tensors(list(adapter.recorder.calls.values()))
        prof = profile(activities=[ProfilerActivity.CPU]) if profiled else None
        start = time.perf_counter()
        if prof:
            prof.__enter__()
        losses, _ = adapter.terms(samples)
        torch.autograd.grad(sum(losses.values()), recorded, allow_unused=True)
        if prof:
            prof.__exit__(None, None, None)
        elapsed = time.perf_counter() - start
        adapter.recorder.clear()
        return prof or elapsed

    term()  # warm-up
    prof = term(profiled=True)
    ops = [e for e in prof.events() if e.name.startswith('aten::') and (
        e.cpu_parent is None or not e.cpu_parent.name.startswith('aten::'))]
    times = [term() for _ in range(repeats)]
    hook.after_run(_Runner)
    print(json.dumps(dict(ops=len(ops), ms=1000 * float(np.median(times)))))


def term_table(repeats: int, quick: bool) -> str:
    """Per model: the term's operators and host time at its batch, and its operators at twice
    that batch (a term batched over pairs and classes dispatches as many at both)."""
    table = PrettyTable(['model', 'operators (term forward + backward)', 'host ms (median)',
                         'operators at twice the batch'])
    for name, (config, images, size) in list(TERM_MODELS.items())[:1 if quick else None]:
        if quick:
            images, size = 2, (64, 64)
        results = []
        for batch in (images, 2 * images):
            out = subprocess.run([sys.executable, __file__, '--term-worker', config, str(batch),
                                  str(size[0]), str(size[1]), str(repeats)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f'{config}:\n{out.stderr[-3000:]}')
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        table.add_row([name, results[0]['ops'], f"{results[0]['ms']:.2f}", results[1]['ops']])
    return str(table)


def device_waits(run) -> dict:
    """Host-device synchronisations during ``run()``, from torch's sync debug mode: how many in
    all, and the ipsd_mm lines that caused any (the warnings point at the calling line)."""
    import warnings

    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    waits = [w for w in caught if 'synchroniz' in str(w.message)]
    ours = sorted({f'{osp.basename(w.filename)}:{w.lineno}' for w in waits
                   if f'{osp.sep}ipsd_mm{osp.sep}' in w.filename})
    return dict(total=len(waits), ipsd_mm=ours)


def run_worker(config, images, size, variants, iters, device, amp) -> dict:
    out = subprocess.run([sys.executable, __file__, '--step-worker', config, str(images),
                          str(size[0]), str(size[1]), ','.join(variants), str(iters), device,
                          str(int(amp))], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'{config} {variants}:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def step_table(iters, quick, words=None, device='cpu', amp_modes=(False, )):
    """Time: the three variants interleaved in one process (ratios from the same rounds).
    Memory: on a GPU from the same process; on the CPU from one short process per variant."""
    cuda = device.startswith('cuda')
    memory = 'peak GPU memory (MB)' if cuda else 'peak RSS (MB)'
    table = PrettyTable(['model', 'precision', 'variant', 's/iter', memory, 'time vs baseline',
                         'memory vs baseline'])
    notes = []
    models = list(STEP_MODELS.items())[:1] if quick else STEP_MODELS.items()
    if words:
        models = [(name, m) for name, m in models if any(w in name for w in words)]
    for name, (config, images, size) in models:
        if quick:
            images, size = 2, (64, 64)
        for amp in amp_modes:
            timed = run_worker(config, images, size, VARIANTS, iters, device, amp)
            peaks = {v: timed[v]['peak'] for v in VARIANTS}
            if not cuda:  # RSS is per process: one short run per variant
                peaks = {v: run_worker(config, images, size, (v, ), 1, device, amp)[v]['peak']
                         for v in VARIANTS}
            for v in VARIANTS:
                table.add_row([name, 'AMP' if amp else 'fp32', LABELS[v], f"{timed[v]['sec']:.3f}",
                               f'{peaks[v]:.0f}', f"{timed[v]['ratio']:.3f}",
                               f"{peaks[v] / peaks['baseline']:.3f}"])
            if 'waits' in timed.get('ipsd', {}):
                waits = {v: timed[v]['waits'] for v in VARIANTS}
                notes.append(f"{name} {'AMP' if amp else 'fp32'}: the host waits for the GPU "
                             + ', '.join(f"{waits[v]['total']}x in a {v} step" for v in VARIANTS)
                             + f"; in ipsd_mm at {waits['ipsd']['ipsd_mm'] or 'no line'}")
    return '\n'.join([str(table), *notes])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--term-worker':
        config, images, h, w, repeats = sys.argv[2:7]
        term_worker(config, int(images), (int(h), int(w)), int(repeats))
        return
    if len(sys.argv) > 1 and sys.argv[1] == '--step-worker':
        config, images, h, w, variants, iters, device, amp = sys.argv[2:10]
        step_worker(config, int(images), (int(h), int(w)), tuple(variants.split(',')),
                    int(iters), device, bool(int(amp)))
        return
    args = parse_args()
    repeats = 2 if args.quick else args.repeats
    if 'aug' in args.parts:
        print('\nAugmentation cost per image pair (median of', repeats, 'runs)')
        print(augmentation_table(repeats, args.quick))
    if 'step' in args.parts:
        print('\nTraining-step cost, same images per step (median of', repeats,
              'interleaved rounds)')
        amp_modes = (False, True) if args.amp else (False, )
        print(step_table(repeats, args.quick, args.step_models, args.device, amp_modes))
    if 'term' in args.parts:
        print('\nThe term alone, per training step on the host: operators dispatched and time '
              f'(median of {repeats})')
        print(term_table(repeats, args.quick))


if __name__ == '__main__':
    main()
