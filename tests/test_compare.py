"""tools/compare.py on any config, and the engine it shares with the accuracy study
(ipsd_mm.comparison)."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from ipsd_mm.comparison import compare_table, diff_cell, read_curve, t_interval
from runner_utils import tiny_cfg

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COMPARE = osp.join(ROOT, 'tools', 'compare.py')


def compare(*args) -> str:
    proc = subprocess.run([sys.executable, COMPARE, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def table_of(output: str) -> str:
    """The report's table (its lines of +, | and the header), without the paths."""
    return '\n'.join(line for line in output.splitlines() if line[:1] in '+|')


def test_compare_runs_resumes_nothing_and_collects_the_same_table(digit_scenes, tmp_path):
    base = str(tmp_path / 'base.py')
    tiny_cfg('study/deeplabv3_r18-d8-w16_digit-scenes.py', digit_scenes, str(tmp_path / 'x'),
             iters=2).dump(base)
    args = [f'baseline={base}', '--derive-ipsd', '--swap-options', 'patch_size=8',
            '--hook-options', 'loss_weight=2', '--seeds', '0', '1']
    out = compare(*args, '--work-dir', str(tmp_path / 'A'))
    records = [json.loads(line) for line in open(tmp_path / 'A' / 'results.jsonl')]
    assert sorted((r['variant'], r['seed']) for r in records) == [
        ('baseline', 0), ('baseline', 1), ('ipsd', 0), ('ipsd', 1)]
    assert all(r['curve'][-1][0] == 2 and 'mIoU' in r['final'] for r in records)
    table = table_of(out)
    assert 'paired diff to baseline [95% CI]' in table and '(n=2)' in table
    ipsd_row = next(line for line in table.splitlines() if line.startswith('| ipsd'))
    diffs = [r['final']['mIoU'] for r in records if r['variant'] == 'ipsd']
    diffs = np.subtract(diffs, [r['final']['mIoU'] for r in records
                                if r['variant'] == 'baseline'])
    assert diff_cell(diffs) in ipsd_row
    assert osp.getsize(tmp_path / 'A' / 'curves_mIoU.png') > 10000
    derived = open(tmp_path / 'A' / 'configs' / 'ipsd.py').read()
    assert "'patch_size': 8" in derived and "'loss_weight': 2" in derived
    # a second call runs nothing and reports the same
    again = compare(*args, '--work-dir', str(tmp_path / 'A'))
    assert 'compare: 0 runs to do, 4 in' in again and table_of(again) == table
    # a cluster: the printed commands, run as a scheduler would, then --collect
    commands = compare(*args, '--work-dir', str(tmp_path / 'B'), '--print-commands')
    commands = [c for c in commands.splitlines() if 'train.py' in c]
    assert len(commands) == 4 and all('--cfg-options randomness.seed=' in c for c in commands)
    for command in commands:
        subprocess.run(command, shell=True, check=True, capture_output=True, cwd=ROOT)
    collected = compare(*args, '--work-dir', str(tmp_path / 'B'), '--collect')
    assert table_of(collected) == table
    # other options in the same work dir: refused, not resumed from the other run's checkpoint
    proc = subprocess.run([sys.executable, COMPARE, *args, '--work-dir', str(tmp_path / 'A'),
                           '--cfg-options', 'train_cfg.max_iters=4'], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "its checkpoints are not this run's" in proc.stderr


def test_compare_names_bad_variants(tmp_path):
    proc = subprocess.run([sys.executable, COMPARE, 'baseline', '--work-dir', str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'give each variant as NAME=CONFIG' in proc.stderr
    config = tmp_path / 'a.py'
    config.write_text('x = 1\n')
    proc = subprocess.run([sys.executable, COMPARE, f'ipsd={config}', '--work-dir',
                           str(tmp_path)], capture_output=True, text=True)
    assert "no variant is named 'baseline'" in proc.stderr
    proc = subprocess.run([sys.executable, COMPARE, f'baseline={config}', '--swap-options',
                           'patch_size=8', '--work-dir', str(tmp_path)],
                          capture_output=True, text=True)
    assert 'add --derive-ipsd' in proc.stderr


def test_paired_table_pairs_by_seed_and_machine():
    here, there = dict(cpu='A', torch='2', threads=1), dict(cpu='B', torch='2', threads=1)

    def run(variant, seed, value, where=here):
        return dict(variant=variant, seed=seed, config=f'{variant}.py', machine=where,
                    final={'coco/bbox_mAP': value}, curve=[[1, {'coco/bbox_mAP': value}]])
    records = [run('baseline', 0, 0.50), run('baseline', 1, 0.52), run('kd', 0, 0.53),
               run('kd', 1, 0.54), run('kd', 2, 0.60), run('kd', 0, 0.40, there)]
    table = compare_table(records, 'coco/bbox_mAP')
    assert 'coco/bbox_mAP (x100) per seed' in table  # fractions read in points
    kd = next(line for line in table.splitlines() if line.startswith('| kd'))
    mean, ci = t_interval(np.array([3.0, 2.0]))
    assert f'{mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] (n=2)' in kd  # seed 2 and B: no pair
    assert diff_cell([1.0]) == '+1.00 (n=1)' and diff_cell([]) == ''


def test_the_study_table_pools_machines_only_when_asked_and_pairs_within_each(tmp_path):
    """A point whose seeds ran on two machines: one row per machine by default; with
    ``--pool-machines`` one row over both, each run still less its own machine's baseline."""
    results = tmp_path / 'results.jsonl'
    runs = []
    for seed, cpu, base, kd in ((0, 'A', 60.0, 61.0), (1, 'A', 61.0, 63.0),
                                (2, 'B', 70.0, 70.5), (3, 'B', 69.0, 70.0)):
        for variant, final, tag in (('baseline', base, ''), ('kd', kd, '_w2')):
            runs.append(dict(model='retinanet', variant=variant, tag=tag, start='pretrained',
                             split='val', seed=seed, iters=10, num_train=600, ipsd_options={},
                             kd_options=dict(loss_weight=2) if tag else {}, teacher_width=32,
                             final=final, curve=[[10, final]], sec_per_iter=0.1,
                             machine=dict(cpu=cpu, torch='2', threads=1)))
    results.write_text(''.join(json.dumps(r) + '\n' for r in runs))

    def kd_rows(*extra):
        proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'accuracy_study.py'),
                               '--table', '--models', 'retinanet', '--results', str(results),
                               *extra], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [line for line in proc.stdout.splitlines() if 'kd_w2' in line]
    apart = kd_rows()
    assert len(apart) == 2 and '+1.50' in apart[0] and '+0.75' in apart[1]
    pooled = kd_rows('--pool-machines')
    mean, ci = t_interval(np.array([1.0, 2.0, 0.5, 1.0]))
    assert len(pooled) == 1 and '0 1 2 3' in pooled[0] and 'M1 M2' in pooled[0]
    assert f'{mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] (n=4)' in pooled[0]


def test_read_curve_takes_the_later_value_of_a_resumed_step(tmp_path):
    for stamp, lines in (('20260101_000000', [{'lr': 0.1, 'loss': 1.0, 'step': 1},
                                              {'mIoU': 10.0, 'time': 1.0, 'step': 2}]),
                         ('20260101_010000', [{'mIoU': 11.0, 'step': 2},
                                              {'mIoU': 12.0, 'step': 4}])):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    assert read_curve(str(tmp_path)) == [(2, {'mIoU': 11.0}), (4, {'mIoU': 12.0})]


def test_the_study_table_is_unchanged_by_the_move_to_the_engine(tmp_path):
    """The first 127 records of the committed results, tabled by the study as it was before
    its records, pairing, intervals and cells moved to ipsd_mm.comparison."""
    results = tmp_path / 'results.jsonl'
    with open(osp.join(ROOT, 'benchmarks', 'accuracy_study.jsonl')) as f:
        results.write_text(''.join(f.readlines()[:127]))
    tables = []
    for markdown in ([], ['--markdown']):
        proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'accuracy_study.py'),
                               '--table', '--models', 'deeplabv3', 'faster-rcnn', 'retinanet',
                               '--results', str(results), *markdown],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        tables.append(proc.stdout)
    with open(osp.join(ROOT, 'tests', 'data', 'study_table_127.txt')) as f:
        assert ''.join(tables) == f.read()


def test_run_pool_starts_a_run_once_what_it_needs_is_there():
    """Two slots: the teacher and a run that needs nothing start together; the kd run waits
    for the teacher's weights, and each result comes back as it finishes."""
    import threading
    import time

    from ipsd_mm.comparison import run_pool
    events, lock = [], threading.Lock()

    def launch(spec):
        with lock:
            events.append(('start', spec['name']))
        time.sleep(spec['seconds'])
        with lock:
            events.append(('end', spec['name']))
        return dict(spec, final=1.0)
    specs = [dict(name='teacher', seconds=0.6), dict(name='kd', seconds=0.05),
             dict(name='baseline', seconds=0.05)]
    done = [r['name'] for r in run_pool(
        specs, 2, launch, after=lambda s: 'w32' if s['name'] == 'kd' else None,
        provides=lambda s: 'w32' if s['name'] == 'teacher' else None)]
    assert events.index(('start', 'kd')) > events.index(('end', 'teacher'))
    assert events.index(('end', 'baseline')) < events.index(('end', 'teacher'))  # filled a slot
    assert done == ['baseline', 'teacher', 'kd']


def test_run_pool_starts_a_run_ahead_of_the_queue_once_its_teacher_is_there():
    """One slot: the kd run waits for the teacher's weights, then goes before the runs that
    need nothing (the teacher and its kd runs are the longer path)."""
    import time

    from ipsd_mm.comparison import run_pool
    started = []

    def launch(spec):
        started.append(spec['name'])
        time.sleep(0.2 if spec['name'] == 'teacher' else 0)  # the others are all queued
        return dict(spec, final=1.0)
    specs = [dict(name=n) for n in ('teacher', 'b0', 'b1', 'kd')]
    done = [r['name'] for r in run_pool(
        specs, 1, launch, after=lambda s: 'w32' if s['name'] == 'kd' else None,
        provides=lambda s: 'w32' if s['name'] == 'teacher' else None)]
    assert started == done == ['teacher', 'kd', 'b0', 'b1']


def test_a_run_failing_is_raised_by_the_pool_after_the_others_came_back():
    """A failed run stops neither the runs beside it nor those after it: their results come
    back (to be recorded) before the failure is raised; the runs that needed what it was to
    make never start."""
    from ipsd_mm.comparison import run_pool
    started, done = [], []

    def launch(spec):
        started.append(spec['name'])
        if spec['name'] in ('t', 'teacher'):
            raise RuntimeError(f"run {spec['name']} failed (exit 1)")
        return dict(spec, final=1.0)
    with pytest.raises(RuntimeError, match='run t failed'):
        list(run_pool([dict(name='t')], 1, launch))
    specs = [dict(name=n) for n in ('teacher', 't', 'b0', 'kd', 'b1')]
    with pytest.raises(RuntimeError) as failed:
        for result in run_pool(specs, 2, launch,
                               after=lambda s: 'w32' if s['name'] == 'kd' else None,
                               provides=lambda s: 'w32' if s['name'] == 'teacher' else None):
            done.append(result['name'])
    assert sorted(str(failed.value).split('; ')) == ['run t failed (exit 1)',
                                                     'run teacher failed (exit 1)']
    assert sorted(done) == ['b0', 'b1'] and 'kd' not in started


def test_a_run_not_launched_holds_back_only_what_needs_it():
    """``launch`` returning None (another runner took the run since the plan was made): no
    result and no error; its kd runs are not started, the others are."""
    from ipsd_mm.comparison import run_pool
    started = []

    def launch(spec):
        started.append(spec['name'])
        return None if spec['name'] == 'teacher' else dict(spec, final=1.0)
    done = [r['name'] for r in run_pool(
        [dict(name=n) for n in ('teacher', 'kd', 'b0')], 2, launch,
        after=lambda s: 'w32' if s['name'] == 'kd' else None,
        provides=lambda s: 'w32' if s['name'] == 'teacher' else None)]
    assert done == ['b0'] and sorted(started) == ['b0', 'teacher']


def test_machines_that_share_a_cpu_name_are_told_apart():
    """A virtual machine's CPU name ("AMD EPYC") covers several CPUs whose kernels give other
    numbers: the CPU's family, model, stepping and torch's instruction set are part of the
    machine; a record from before they were kept keeps the id it had."""
    import torch

    from ipsd_mm.comparison import machine, machine_id
    here = machine()
    assert here['cpu_kind'].endswith(torch.backends.cpu.get_cpu_capability())
    old = {k: v for k, v in here.items() if k != 'cpu_kind'}
    assert machine_id(old) == f"{here['cpu']} | torch {here['torch']} | 1 thread(s)"
    assert machine_id(here) == (f"{here['cpu']} ({here['cpu_kind']}) | torch {here['torch']} | "
                                '1 thread(s)')
    zen4, zen5 = (dict(cpu='AMD EPYC', cpu_kind=f'family {f} model 1 stepping 1, AVX512',
                       torch='2', threads=1) for f in (25, 26))
    assert len({machine_id(zen4), machine_id(zen5), machine_id(dict(zen4, cpu_kind=''))}) == 3


def test_done_elsewhere_names_the_other_machine():
    from ipsd_mm.comparison import done_elsewhere
    here, there = dict(cpu='A', torch='2', threads=1), dict(cpu='B', torch='2', threads=1)
    done = [dict(seed=0, machine=there), dict(seed=0, machine=there), dict(seed=1, machine=here)]
    said = done_elsewhere([dict(seed=0), dict(seed=2)], done, key=lambda r: r['seed'])
    assert said.startswith('1 of them are in the results file from another machine only (B | '
                           'torch 2 | 1 thread(s))')
    assert done_elsewhere([dict(seed=2)], done, key=lambda r: r['seed']) == ''


def load_tool(name):
    """``tools/NAME.py`` as a module (the tools are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOLD = """
import sys, time
from ipsd_mm.comparison import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print('held', flush=True)
    time.sleep(120)
"""


def test_a_run_held_by_another_process_is_not_trained_twice(tmp_path):
    """Two runners of one plan or work dir: a run another live process is training is refused
    by compare (naming it) and left out by the study (with its kd runs when it is their
    teacher); the lock goes with its process, however that ends."""
    from ipsd_mm.comparison import RunDirBusy, hold_run_dir, run_dir_busy
    study = [sys.executable, osp.join(ROOT, 'tools', 'accuracy_study.py'), '--quick',
             '--models', 'retinanet', '--variants', 'teacher', 'kd', '--starts', 'scratch',
             '--seeds', '0', '--work-dir', str(tmp_path / 'study'), '--results',
             str(tmp_path / 'results.jsonl'), '--dry-run']
    def runs_to_do(proc):
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]

    specs = runs_to_do(subprocess.run(study, capture_output=True, text=True, cwd=ROOT))
    assert sorted(s['variant'] for s in specs) == ['baseline', 'kd', 'teacher']
    teacher = next(osp.join(ROOT, s['work_dir']) for s in specs if s['variant'] == 'teacher')
    base = tmp_path / 'compare' / 'baseline_s0'
    holders = [subprocess.Popen([sys.executable, '-c', HOLD, str(d)], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT) for d in (teacher, base)]
    try:
        assert all(h.stdout.readline().strip() == 'held' for h in holders)
        assert f'pid {holders[1].pid} on' in run_dir_busy(str(base))
        with pytest.raises(RunDirBusy, match='being trained now by another process'):
            with hold_run_dir(str(base)):
                pass
        proc = subprocess.run([sys.executable, COMPARE, 'baseline=configs/study/'
                               'deeplabv3_r18-d8-w16_digit-scenes.py', '--seeds', '0',
                               '--work-dir', str(tmp_path / 'compare'), '--print-commands'],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode != 0 and 'train.py' not in proc.stdout
        assert f'compare: baseline_s0: {base} is being trained now by another process' \
            in proc.stderr and 'wait for it to end, or stop it' in proc.stderr
        proc = subprocess.run(study, capture_output=True, text=True, cwd=ROOT)
        assert [s['variant'] for s in runs_to_do(proc)] == ['baseline']
        log = proc.stdout + proc.stderr
        assert 'not started here: retinanet_scratch_val_teacher' in log
        assert 'its teacher is being trained by another process' in log
        # Taken by another runner after this one planned it: left to that one at launch, its
        # log untouched (the race of two runners of one plan).
        tool = load_tool('accuracy_study')
        teacher_spec = next(s for s in specs if s['variant'] == 'teacher')
        logs = tmp_path / 'logs'
        assert tool.launch(teacher_spec, str(logs)) is None
        assert not logs.exists() or not any(logs.iterdir())
    finally:
        for h in holders:
            h.kill()
            h.wait()
    assert run_dir_busy(str(base)) is None and run_dir_busy(teacher) is None
