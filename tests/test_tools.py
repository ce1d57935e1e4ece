"""The user's tools: the DigitScenes generator, browse_pairs.py, the demo, mim and train.py."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ipsd_mm.testing.digit_scenes import load_digit_pool, make_digit_scenes
from runner_utils import CONFIGS

ROOT = osp.dirname(CONFIGS)
PY = sys.executable


def test_generator_is_deterministic_and_valid(tmp_path):
    roots = [str(tmp_path / name) for name in ('a', 'b')]
    for root in roots:
        make_digit_scenes(root, num_train=5, num_val=3, size=(64, 80), seed=3)
    for rel in ('annotations/train.json', 'images/val/00002.png', 'labels/train/00004.png'):
        with open(osp.join(roots[0], rel), 'rb') as fa, open(osp.join(roots[1], rel), 'rb') as fb:
            assert fa.read() == fb.read(), rel
    for split in ('train', 'val'):
        coco = COCO(osp.join(roots[0], f'annotations/{split}.json'))  # pycocotools accepts it
        for img_id, info in coco.imgs.items():
            label = cv2.imread(osp.join(roots[0], 'labels', split, info['file_name']),
                               cv2.IMREAD_UNCHANGED)
            assert label.shape == (64, 80)
            rebuilt = np.zeros_like(label)
            for ann in coco.imgToAnns[img_id]:
                mask = mask_utils.decode(ann['segmentation']).astype(bool)
                x, y, w, h = ann['bbox']
                ys, xs = np.nonzero(mask)
                assert (xs.min(), ys.min()) == (x, y) and (xs.max() + 1, ys.max() + 1) == (x + w, y + h)
                assert not rebuilt[mask].any()  # visible masks do not overlap
                rebuilt[mask] = ann['category_id']  # category d + 1 is label d + 1
            np.testing.assert_array_equal(rebuilt, label)  # masks match the label PNGs


def test_generator_writes_either_kind_of_glyph_and_names_a_bad_one(tmp_path):
    import pytest
    for glyphs in ('printed', 'handwritten'):
        root = str(tmp_path / glyphs)
        make_digit_scenes(root, num_train=2, num_val=1, size=(64, 64), seed=1, glyphs=glyphs)
        label = cv2.imread(osp.join(root, 'labels/train/00000.png'), cv2.IMREAD_UNCHANGED)
        assert label.max() > 0  # digits were drawn
    with pytest.raises(ValueError, match="glyphs='typed'"):
        make_digit_scenes(str(tmp_path / 'bad'), glyphs='typed')


def test_train_and_val_share_no_digit_image():
    train, val = load_digit_pool(seed=0)
    as_bytes = lambda pool: {img.tobytes() for img, _ in pool}
    assert len(train) + len(val) == 1797 and not as_bytes(train) & as_bytes(val)


def test_browse_pairs_writes_pictures(digit_scenes, tmp_path):
    for config in ('demo/deeplabv3_r18-d8_digit-scenes_ipsd.py',
                   'demo/retinanet_r18_fpn_digit-scenes_ipsd.py'):
        out = str(tmp_path / osp.basename(config))
        subprocess.run([PY, osp.join(ROOT, 'tools/browse_pairs.py'), osp.join(CONFIGS, config),
                        '--output-dir', out, '--num', '3', '--cfg-options',
                        f'train_dataloader.dataset.dataset.data_root={digit_scenes}/'],
                       check=True, capture_output=True)
        pictures = glob.glob(osp.join(out, '*.png'))
        assert len(pictures) == 3
        for picture in pictures:
            img = cv2.imread(picture)
            assert img.shape[1] > 2 * 64 and img.std() > 0


def _small_run_options(root, iters=1):
    return ['--cfg-options', f'train_dataloader.dataset.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/', f'train_cfg.max_iters={iters}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=1', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', f'train_cfg.val_interval={iters}',
            'default_hooks.logger.interval=1']


def test_mim_train_ipsd_mm_starts_a_demo_config(digit_scenes, tmp_path):
    mim = osp.join(osp.dirname(PY), 'mim')
    work = str(tmp_path / 'mim')
    proc = subprocess.run([mim, 'train', 'ipsd_mm',
                           osp.join(CONFIGS, 'demo/deeplabv3_r18-d8_digit-scenes_ipsd.py'),
                           '--work-dir', work, *_small_run_options(digit_scenes)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(osp.join(work, 'iter_1.pth'))
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'loss_ipsd' in log


def test_train_then_test_from_checkpoint_on_the_command_line(digit_scenes, tmp_path):
    work = str(tmp_path / 'cli')
    config = osp.join(CONFIGS, 'demo/retinanet_r18_fpn_digit-scenes_ipsd.py')
    subprocess.run([PY, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work,
                    *_small_run_options(digit_scenes), 'val_evaluator.ann_file=' +
                    osp.join(digit_scenes, 'annotations/val.json')],
                   check=True, capture_output=True)
    proc = subprocess.run([PY, osp.join(ROOT, 'tools/test.py'), config,
                           osp.join(work, 'iter_1.pth'), '--work-dir', work, '--cfg-options',
                           f'test_dataloader.dataset.data_root={digit_scenes}/',
                           'test_dataloader.num_workers=0',
                           'test_dataloader.persistent_workers=False',
                           'test_evaluator.ann_file=' +
                           osp.join(digit_scenes, 'annotations/val.json')],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Iter(test)' in proc.stdout + proc.stderr


def test_demo_quick_run_shows_progress_and_the_table_not_the_logs(tmp_path):
    """Both tasks, baseline and IPSD, from pretrained backbones; the training logs go to the
    runs' log files, the terminal gets a line per run, the table and the study's figure."""
    proc = subprocess.run([PY, osp.join(ROOT, 'tools/run_demo.py'), '--quick',
                           '--num-pairs', '1', '--data-root', str(tmp_path / 'data'),
                           '--pretrained-dir', str(tmp_path / 'pretrained'),
                           '--work-dir', str(tmp_path / 'work')],
                          capture_output=True, text=True, cwd=osp.join(ROOT, 'tools'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count('done: ') == 4 and 'paired diff' in proc.stdout
    assert 'The accuracy study on printed DigitScenes' in proc.stdout
    assert 'Iter(train)' not in out and 'Average Precision' not in out  # in the logs
    runs = [json.loads(line) for line in open(tmp_path / 'work' / 'results.jsonl')]
    assert sorted((r['model'], r['variant']) for r in runs) == [
        ('deeplabv3', 'baseline'), ('deeplabv3', 'ipsd'), ('retinanet', 'baseline'),
        ('retinanet', 'ipsd')]
    assert all(r['start'] == 'pretrained' for r in runs)
    assert glob.glob(str(tmp_path / 'work' / 'runs' / 'logs' / '*.log'))
    for task in ('seg', 'det'):
        assert glob.glob(str(tmp_path / 'work' / 'pairs' / task / '*.png'))


def test_benchmark_quick_prints_every_table():
    proc = subprocess.run([PY, osp.join(ROOT, 'tools/benchmark.py'), '--quick'],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for row in ('IntraClassPatchSwap', 'mmdet CopyPaste', 'mmdet MixUp', 'floor',
                'IPSD (swap pairs + loss_ipsd)', 'frozen ResNet-101 teacher',
                'operators at twice the batch'):
        assert row in proc.stdout, row
    # The segmentor's term is batched over pairs and classes: as many operators at 4 images.
    row = next(line for line in proc.stdout.splitlines() if 'demo DeepLabV3, 8x128' in line)
    _, _, ops, _, ops_twice, _ = [cell.strip() for cell in row.split('|')]
    assert int(ops) > 0 and ops == ops_twice
    proc = subprocess.run([PY, osp.join(ROOT, 'tools/benchmark.py'), '--amp'],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and '--amp needs --device cuda' in proc.stderr


def test_browse_pairs_names_a_config_without_pairs(digit_scenes, tmp_path):
    proc = subprocess.run([PY, osp.join(ROOT, 'tools/browse_pairs.py'),
                           osp.join(CONFIGS, 'demo/deeplabv3_r18-d8_digit-scenes.py'),
                           '--output-dir', str(tmp_path / 'pairs'), '--cfg-options',
                           f'train_dataloader.dataset.data_root={digit_scenes}/'],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    said = proc.stderr.strip().splitlines()[-1]  # the message, not a traceback
    assert said.startswith('browse_pairs: ') and 'deeplabv3_r18-d8_digit-scenes.py' in said
    assert said.endswith('browse_pairs draws configs whose train dataset is '
                         'IntraClassPairDataset')


def test_accuracy_study_quick_runs_every_path_and_resumes(tmp_path):
    """Each model, variant and start, on the test split: a record per run in the results file
    (machine included), a resume that does nothing, and the paired table. The work dir is
    inside the repository, as the study's is, so records hold it relative to the repository."""
    results = tmp_path / 'results.jsonl'
    work = osp.join(ROOT, 'work_dirs', f'pytest_accuracy_study_{os.getpid()}')
    try:
        _quick_study(tmp_path, results, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _quick_study(tmp_path, results, work):
    command = [PY, osp.join(ROOT, 'tools/accuracy_study.py'), '--quick', '--jobs', '2',
               '--models', 'deeplabv3', 'faster-rcnn', '--starts', 'scratch', 'pretrained',
               '--split', 'test', '--data-root', str(tmp_path / 'data'),
               '--results', str(results), '--work-dir', work,
               '--pretrained-dir', str(tmp_path / 'pretrained')]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [json.loads(line) for line in open(results)]
    assert len(runs) == 2 * 2 * 4
    for r in runs:
        assert [it for it, _ in r['curve']] == [2, 4]  # evaluated every --val-interval
        assert r['split'] == 'test' and r['machine']['cpu'] and r['machine']['threads'] == 1
        name = f"{r['model']}_{r['start']}_test_{r['variant']}_4it_s0"
        assert r['work_dir'] == osp.relpath(osp.join(work, name), ROOT)
    by = {(r['model'], r['start'], r['variant']): r for r in runs}
    assert by[('deeplabv3', 'scratch', 'noswap')]['swap']['prob'] == 0.0
    assert by[('deeplabv3', 'scratch', 'noKD')]['hook']['loss_weight'] == 0.0
    assert by[('faster-rcnn', 'pretrained', 'ipsd')]['swap']['prob'] == 1.0
    assert by[('faster-rcnn', 'pretrained', 'baseline')]['checkpoint'].endswith('-quick.pth')
    # The test split is what the runs evaluated on, and the pretrained checkpoint was loaded.
    log = open(osp.join(work, 'logs', 'faster-rcnn_pretrained_test_baseline_4it_s0.log')).read()
    assert 'annotations/test.json' in log and 'resnet18-w16-quick.pth' in log
    proc = subprocess.run(command + ['--markdown'], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '0 runs to do' in proc.stdout + proc.stderr and '| :---' in proc.stdout
    for variant in ('baseline', 'ipsd', 'noswap', 'noKD'):
        assert f'| {variant} ' in proc.stdout


# Loaded at the start of every Python process of the study (PYTHONPATH): the run's process
# dies (no clean-up, as at a session's end) right after its first evaluation has saved the
# run's checkpoint.
KILL_AFTER_FIRST_EVALUATION = """
import os
from ipsd_mm.comparison.training import RecordEvaluations
evaluated = RecordEvaluations.after_val_epoch
def after_val_epoch(self, runner, metrics=None):
    evaluated(self, runner, metrics)
    os._exit(3)
RecordEvaluations.after_val_epoch = after_val_epoch
"""


def study(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, osp.join(ROOT, 'tools/accuracy_study.py'), *args],
                          capture_output=True, text=True, env=env)


def test_accuracy_study_resumes_a_run_stopped_part_way(tmp_path):
    """A run killed after its first evaluation goes on from there when the study is started
    again: its record has the whole curve and says where it resumed; its checkpoint is removed
    once the result is recorded, and no other run can take it over."""
    results, work = tmp_path / 'results.jsonl', tmp_path / 'work'
    argv = ['--quick', '--models', 'retinanet', '--variants', 'baseline', '--starts', 'scratch',
            '--data-root', str(tmp_path / 'data'), '--results', str(results),
            '--work-dir', str(work)]
    killer = tmp_path / 'killer'
    killer.mkdir()
    (killer / 'sitecustomize.py').write_text(KILL_AFTER_FIRST_EVALUATION)
    proc = study(*argv, env=dict(os.environ, PYTHONPATH=str(killer)))
    assert proc.returncode != 0 and 'failed (exit 3)' in proc.stderr, proc.stderr[-3000:]
    checkpoint = work / 'retinanet_scratch_val_baseline_4it_s0' / 'study_last.pth'
    assert checkpoint.is_file() and not results.exists()

    # Seed 1 finding seed 0's checkpoint in its work_dir refuses it, and says what to do.
    other = work / 'retinanet_scratch_val_baseline_4it_s1'
    other.mkdir()
    shutil.copy(checkpoint, other / 'study_last.pth')
    proc = study(*argv, '--seeds', '1')
    assert proc.returncode != 0 and not results.exists()
    log = (work / 'logs' / 'retinanet_scratch_val_baseline_4it_s1.log').read_text()
    assert 'saved by another run or machine' in log and 'delete it to start this run over' in log

    proc = study(*argv)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run, = [json.loads(line) for line in open(results)]
    assert run['seed'] == 0 and run['resumed_at'] == [2]
    assert [it for it, _ in run['curve']] == [2, 4]  # the evaluation before the kill is kept
    assert not checkpoint.exists()
    log = (work / 'logs' / 'retinanet_scratch_val_baseline_4it_s0.log').read_text()
    assert 'Advance dataloader 2 steps' in log  # trained on from iteration 2, not from 0


KILL_AFTER_FIRST_EPOCH = """
import os
replace = os.replace
def replace_then_exit(src, dst, *args, **kwargs):
    replace(src, dst, *args, **kwargs)
    if str(dst).endswith('.partial'):
        os._exit(3)
os.replace = replace_then_exit
"""


def test_pretraining_stopped_part_way_goes_on_to_the_same_weights(tmp_path):
    """A pretraining killed after its first epoch (a session's end) resumes from that epoch's
    state and ends on the weights of an unbroken run; a state left by other settings is
    refused with what to do."""
    import torch

    def pretrain(out, *more, env=None):
        return subprocess.run(
            [PY, osp.join(ROOT, 'tools/pretrain_backbone.py'), '--arch', 'resnet18-w16',
             '--out', str(out), '--num', '64', '--epochs', '2', '--batch', '32',
             '--threads', '1', *more],  # bit for bit on one thread; on two, not under load
            capture_output=True, text=True, env=env)

    whole = pretrain(tmp_path / 'whole.pth')
    assert whole.returncode == 0, whole.stderr[-3000:]
    killer = tmp_path / 'killer'
    killer.mkdir()
    (killer / 'sitecustomize.py').write_text(KILL_AFTER_FIRST_EPOCH)
    out = tmp_path / 'broken.pth'
    proc = pretrain(out, env=dict(os.environ, PYTHONPATH=str(killer)))
    assert proc.returncode == 3 and not out.exists()
    assert (tmp_path / 'broken.pth.partial').is_file()

    refused = pretrain(out, '--seed', '7')
    assert refused.returncode != 0 and not out.exists()
    assert 'broken.pth.partial is a pretraining with other settings' in refused.stderr
    assert 'delete it to start this one over' in refused.stderr

    proc = pretrain(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed from' in proc.stdout + proc.stderr and 'after epoch 1/2' in proc.stdout + proc.stderr
    assert not (tmp_path / 'broken.pth.partial').exists()
    a, b = (torch.load(p, map_location='cpu', weights_only=True) for p in (tmp_path / 'whole.pth', out))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    assert all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in a['state_dict'])
    assert a['meta']['accuracy'] == b['meta']['accuracy']


def record(run: dict, final: float, where: dict, **more) -> dict:
    """A finished run of the study's own spec (``--dry-run``'s JSON)."""
    return dict(run, machine=where, curve=[[run['iters'] // 2, final - 5], [run['iters'], final]],
                final=final, sec_per_iter=0.5, **more)


def dry_run(*args) -> list:
    proc = study('--dry-run', *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]


def test_accuracy_table_pairs_by_seed_and_machine_with_a_t_interval(tmp_path):
    from ipsd_mm.comparison import machine, machine_id
    results = tmp_path / 'results.jsonl'
    here, there = machine(), dict(cpu='~other', torch='2', threads=1)
    runs = dry_run('--models', 'deeplabv3', '--variants', 'ipsd', 'noKD', '--starts', 'scratch',
                   '--split', 'test', '--seeds', '0', '1', '2', '--iters', '20',
                   '--val-interval', '10', '--results', str(results))
    spec = {(r['variant'], r['seed']): r for r in runs}
    records = [record(spec[('baseline', s)], f, here) for s, f in enumerate((50, 52, 54))]
    records += [record(spec[('ipsd', s)], f, here) for s, f in enumerate((55, 56, 59))]
    records += [record(spec[('baseline', 0)], 40, there), record(spec[('noKD', 0)], 41, there)]
    results.write_text(''.join(json.dumps(r) + '\n' for r in records))
    proc = study('--table', '--models', 'deeplabv3', '--results', str(results))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert '52.00 ± 2.00' in text and '56.67 ± 2.08' in text
    # paired diffs 5, 4, 5: mean 4.67, t(0.975, 2) = 4.303, s = 0.577 -> half width 1.43
    assert '+4.67 [+3.23, +6.10] (n=3)' in text
    assert '+1.00 (n=1)' in text  # noKD against the baseline of its own machine, not 50
    assert '47.0@10 52.0@20' in text  # the baseline's mean curve on this machine
    assert 'M1: ' + machine_id(here) in text and 'M2: ~other | torch 2 | 1 thread(s)' in text


def test_accuracy_study_says_which_runs_it_repeats_from_another_machine(tmp_path):
    """A study started again on a new machine runs the runs the file holds from another machine
    again (a row and its pairs are of one machine), and says so, naming that machine; what this
    machine has done is neither repeated nor mentioned."""
    from ipsd_mm.comparison import machine
    here, there = machine(), dict(cpu='Other CPU', torch='2.0', threads=1)
    results = tmp_path / 'results.jsonl'
    argv = ['--models', 'retinanet', '--variants', 'baseline', '--starts', 'scratch', '--seeds',
            '0', '1', '2', '--iters', '20', '--val-interval', '10', '--data-root', str(tmp_path),
            '--results', str(results)]
    spec = {r['seed']: r for r in dry_run(*argv)}
    done = [record(spec[0], 50.0, there), record(spec[1], 50.0, there),
            record(spec[1], 50.0, here)]
    results.write_text(''.join(json.dumps(r) + '\n' for r in done))
    proc = study('--dry-run', *argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    todo = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
    assert sorted(s['seed'] for s in todo) == [0, 2]  # seed 1 is done here; 0 only there
    said = proc.stdout + proc.stderr
    assert '1 of them are in the results file from another machine only' in said
    assert 'Other CPU | torch 2.0 | 1 thread(s)' in said and 'run again here' in said
    assert not (tmp_path / 'annotations').exists()  # a dry run makes no data
    with open(results, 'a') as f:
        f.write(json.dumps(record(spec[0], 50.0, here)) + '\n')
    proc = study('--dry-run', *argv)
    assert 'another machine' not in proc.stdout + proc.stderr


def test_accuracy_run_names_carry_the_schedule(tmp_path):
    argv = ['--models', 'retinanet', '--variants', 'baseline', '--starts', 'pretrained',
            '--split', 'test', '--seeds', '0', '--results', str(tmp_path / 'none.jsonl'),
            '--pretrained-dir', str(tmp_path)]
    run, = dry_run(*argv, '--iters', '4000')
    assert osp.basename(run['work_dir']) == 'retinanet_pretrained_test_baseline_4000it_s0'
    assert run['checkpoint'] == str(tmp_path / 'resnet18-w16.pth')  # named, not made
    # A longer check of the same seed gets its own work_dir and log, not the 4,000 run's.
    run, = dry_run(*argv, '--iters', '6000')
    assert osp.basename(run['work_dir']) == 'retinanet_pretrained_test_baseline_6000it_s0'
    assert not os.listdir(tmp_path)


def test_accuracy_study_help_names_every_path():
    proc = study('--help')
    assert proc.returncode == 0
    for word in ('deeplabv3', 'retinanet', 'faster-rcnn', 'baseline', 'noswap', 'noKD',
                 'pretrained', 'scratch', '--split', 'test', '--dry-run'):
        assert word in proc.stdout, word


def test_accuracy_study_names_bad_search_options(tmp_path):
    for argv, message in (
            (['--tag', '_x', '--ipsd-options', 'loss_weight=2'], '--ipsd-options loss_weight'),
            (['--tag', '_x', '--ipsd-options', 'hook.=2'], '--ipsd-options hook.'),
            (['--ipsd-options', 'hook.loss_weight=2'], 'need a --tag'),
            (['--models', 'retinanet', '--iters', '1000', '--val-interval', '300'],
             'not a multiple')):
        proc = study(*argv)
        assert proc.returncode == 2 and message in proc.stderr, (argv, proc.stderr[-2000:])
    run, = dry_run('--models', 'deeplabv3', '--variants', 'ipsd', '--starts', 'scratch',
                   '--seeds', '0', '--tag', '_w2', '--results', str(tmp_path / 'none.jsonl'),
                   '--ipsd-options', 'hook.loss_weight=2', 'swap.prob=0.5')[1:]
    assert run['ipsd_options'] == {'hook.loss_weight': 2, 'swap.prob': 0.5}


def test_progress_written_to_a_log_file_is_a_line_per_tenth():
    """Not a terminal (a child's log file): ten lines for 1000 items, no carriage returns."""
    code = ('from ipsd_mm.progress import progress\n'
            'bar = progress(1000, "items")\n'
            'for _ in range(1000):\n    bar.update()\n')
    proc = subprocess.run([PY, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if 'items:' in line]
    assert len(lines) == 10 and lines[-1].endswith('items: 1000/1000') and '\r' not in out


def test_error_metrics_tell_confusion_from_localisation(tmp_path):
    """The premise metrics of the study: a detector that finds every digit but names each
    wrongly scores 0 mAP and full class-agnostic mAP; a segmentor's wrong pixels split into
    digit-digit, digit-background and background-digit shares."""
    import torch
    from mmengine.structures import InstanceData

    from ipsd_mm.comparison import error_metrics
    from mmdet.evaluation import CocoMetric
    from mmdet.structures import DetDataSample
    coco = dict(images=[dict(id=0, file_name='a.png', height=64, width=64)],
                annotations=[dict(id=1, image_id=0, category_id=1, bbox=[4, 4, 20, 20],
                                  area=400, iscrowd=0),
                             dict(id=2, image_id=0, category_id=2, bbox=[30, 30, 20, 20],
                                  area=400, iscrowd=0)],
                categories=[dict(id=1, name='0'), dict(id=2, name='1')])
    ann = tmp_path / 'val.json'
    ann.write_text(json.dumps(coco))
    sample = DetDataSample(metainfo=dict(img_id=0, ori_shape=(64, 64)))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[4., 4., 24., 24.], [30., 30., 50., 50.]]),
        scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([1, 0]))  # both names swapped
    scores = {}
    for metric in (CocoMetric, error_metrics.class_agnostic_coco_metric()):
        built = metric(ann_file=str(ann), metric='bbox')
        built.dataset_meta = dict(classes=('0', '1'))
        built.process({}, [sample.to_dict()])
        scores.update(built.evaluate(1))
    assert scores['coco/bbox_mAP'] == 0 and scores['agnostic/bbox_mAP'] == 1.0

    seg = error_metrics.SegConfusionMetric(num_classes=3)
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]])  # bg->1, 1->2 (confusion), 1->bg
    seg.process({}, [dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))])
    shares = seg.compute_metrics(seg.results)
    third = pytest.approx(100 / 3)
    assert shares['object_object_share'] == third and shares['object_background_share'] == third
    assert shares['background_object_share'] == third
    assert shares['found_object_class_acc'] == pytest.approx(2 / 3 * 100)  # 2 of 3 named right


def test_accuracy_study_keys_runs_by_data_and_footing_with_repository_paths(tmp_path):
    """The data (printed / handwritten) and the footing (same images / same anchors per step)
    are part of a run's key, its name and its pairing; records written before either axis
    existed read as printed, same images. Records hold paths relative to the repository."""
    from ipsd_mm.comparison import machine
    here = machine()
    results = tmp_path / 'results.jsonl'
    argv = ['--models', 'retinanet', '--variants', 'baseline', 'noswap', '--seeds', '0',
            '--iters', '20', '--val-interval', '10', '--starts', 'scratch',
            '--results', str(results)]
    base, ipsd = dry_run(*argv, '--data', 'handwritten')
    assert base['data'] == 'handwritten' and base['footing'] == 'images'
    assert base['data_root'] == osp.join('data', 'digit_scenes_study_handwritten')
    assert base['work_dir'] == osp.join('work_dirs', 'accuracy_study',
                                        'handwritten_retinanet_scratch_val_baseline_20it_s0')
    fewer, _ = dry_run(*argv, '--data', 'handwritten', '--num-train', '150')
    assert fewer['data_root'].endswith('digit_scenes_study_handwritten_n150')

    # A record from before the data and the footing were keys is the printed, same-images run;
    # the handwritten run is another run.
    printed, = dry_run(*argv[:3], 'baseline', *argv[5:])
    old = {k: v for k, v in printed.items() if k not in ('data', 'footing')}
    results.write_text(json.dumps(record(old, 50.0, here)) + '\n')
    assert dry_run(*argv[:3], 'baseline', *argv[5:]) == []
    assert [r['data'] for r in dry_run(*argv[:3], 'baseline', *argv[5:], '--data',
                                       'handwritten')] == ['handwritten']

    # Same anchors per step: its own names, and its own pairs (noswap on anchors against the
    # baseline on anchors, not the one on images).
    anchors = dry_run(*argv, '--footing', 'anchors')
    assert [osp.basename(r['work_dir']) for r in anchors] == [
        'retinanet_scratch_val_baseline_anchors_20it_s0',
        'retinanet_scratch_val_noswap_anchors_20it_s0']
    images = dry_run(*argv)  # the old record is this baseline
    assert [r['variant'] for r in images] == ['noswap']
    with open(results, 'a') as f:
        for run, final in zip(anchors + images, (60.0, 61.5, 52.0)):
            f.write(json.dumps(record(run, final, here)) + '\n')
    proc = study('--table', '--models', 'retinanet', '--results', str(results))
    rows = {line.split('|')[7].strip() + line.split('|')[6].strip(): line
            for line in proc.stdout.splitlines() if line.startswith('| retinanet')}
    assert '+1.50 (n=1)' in rows['noswapanchors'] and '+2.00 (n=1)' in rows['noswapimages']


def test_accuracy_study_footing_sets_the_batch(tmp_path):
    """Same anchors per step: IPSD takes the baseline's images as anchors (8 pairs), the
    baseline doubles its batch (16 images); on the default footing IPSD halves (4 pairs)."""
    import re
    work = tmp_path / 'work'
    argv = ['--quick', '--models', 'deeplabv3', '--variants', 'baseline', 'noswap',
            '--starts', 'scratch', '--data-root', str(tmp_path / 'data'),
            '--results', str(tmp_path / 'results.jsonl'), '--work-dir', str(work)]
    for footing in ('images', 'anchors'):
        proc = study(*argv, '--footing', footing)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def batch(name):  # the train batch in the config the run's log shows
        log = (work / 'logs' / f'deeplabv3_scratch_val_{name}_4it_s0.log').read_text()
        text = log[log.index('train_dataloader = dict('):]
        return int(re.search(r'batch_size=(\d+)', text).group(1))
    assert (batch('baseline'), batch('noswap')) == (8, 4)
    assert (batch('baseline_anchors'), batch('noswap_anchors')) == (16, 8)


def test_accuracy_study_trains_the_teacher_once_then_the_kd_student(tmp_path):
    """--variants kd: the teacher first (its own row, its weights kept), the baseline and the
    kd student paired with it; weights that went missing are made again, without a second
    record, once a kd run still to do needs them, and not before."""
    results = tmp_path / 'results.jsonl'
    work = tmp_path / 'work'
    command = [PY, osp.join(ROOT, 'tools/accuracy_study.py'), '--quick', '--models', 'deeplabv3',
               '--variants', 'kd', '--tag', '_kl', '--kd-options', 'recipe=kl', 'loss_weight=0.5',
               '--data-root', str(tmp_path / 'data'), '--results', str(results),
               '--work-dir', str(work), '--pretrained-dir', str(tmp_path / 'pretrained')]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = {r['variant']: r for r in map(json.loads, open(results))}
    assert sorted(runs) == ['baseline', 'kd', 'teacher']
    teacher, kd = runs['teacher'], runs['kd']
    assert teacher['tag'] == '_w32' and teacher['checkpoint'].endswith('resnet18v1c-w32-quick.pth')
    assert kd['kd_options'] == dict(recipe='kl', loss_weight=0.5, tau=1.0)
    assert kd['teacher'] == teacher['teacher'] and osp.isfile(kd['teacher'])
    assert '{"loss_weight": 0.5, "recipe": "kl", "tau": 1.0, "teacher": "w32"}' in proc.stdout
    log = open(work / 'logs' / 'deeplabv3_pretrained_val_kd_kl_4it_s0.log').read()
    assert 'distill.loss_kl' in log
    os.remove(kd['teacher'])
    proc = subprocess.run(command, capture_output=True, text=True)  # no kd run left to do
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not osp.isfile(kd['teacher']) and len(open(results).readlines()) == 3
    rows = [json.loads(line) for line in open(results)]  # a row from weights unlike these
    rows = [dict(r, final=r['final'] + 1) if r['variant'] == 'teacher' else r for r in rows]
    results.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    proc = subprocess.run(command + ['--seeds', '1'], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    assert '1 teacher(s) done on this machine have no weights here' in said
    assert 'another machine' not in said  # its row is this machine's own
    assert (f"the remade teacher scores {teacher['final']:.2f}, its row "
            f"{teacher['final'] + 1:.2f}") in said
    assert osp.isfile(kd['teacher'])
    assert sorted(json.loads(line)['variant'] for line in open(results)) == [
        'baseline', 'baseline', 'kd', 'kd', 'teacher']
    bad = subprocess.run(command[:-2] + ['--kd-options', 'recipe=fitnet'], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and 'recipe=fitnet: name cwd or kl' in bad.stderr
