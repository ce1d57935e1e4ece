"""Teacher KD through MMRazor (ipsd_mm.kd): the compatibility step, a fair wrapper (the student's
start and training as without a teacher at weight 0, the teacher frozen), the recipes and the
student checkpoint."""
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ipsd_mm import compat
from ipsd_mm.kd import PixelKLDivergence, distill_config, distill_model, student_checkpoint
from runner_utils import CONFIGS, tiny_cfg

SEG = 'study/deeplabv3_r18-d8-w16_digit-scenes.py'
DET = 'study/retinanet_r18-w16_fpn_digit-scenes.py'
TWO_STAGE = 'study/faster-rcnn_r18-w16_fpn_digit-scenes.py'


def run_python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)


def test_mmrazor_needs_the_step_on_this_torch_and_imports_with_it():
    bare = run_python('import mmrazor.models')
    fixed = run_python('import ipsd_mm, mmrazor.engine, mmrazor.models\n'
                       'from mmrazor.models import SingleTeacherDistill, ChannelWiseDivergence\n'
                       'print("ok")')
    assert bare.returncode != 0  # upstream mmrazor#632: were it fixed, drop the step
    assert fixed.returncode == 0 and fixed.stdout.strip() == 'ok', fixed.stderr[-2000:]


def test_the_step_touches_only_the_missing_names():
    # A torch that still has the names (1.13): the step leaves them as they are.
    script = '''
from torch.ao.quantization import fuser_method_mappings as fuser
from torch.ao.quantization.backend_config import BackendPatternConfig
marks = {}
for name in ('reverse2', 'reverse3', 'reverse_sequential_wrapper2'):
    marks[name] = object(); setattr(fuser, name, marks[name])
for name in ('_set_overwrite_output_fake_quantize', '_set_overwrite_output_observer',
             '_set_input_output_observed'):
    marks[name] = lambda self, *a: 'own'; setattr(BackendPatternConfig, name, marks[name])
import ipsd_mm.compat as compat
assert compat.let_mmrazor_import() == []
assert all(getattr(fuser, n, None) is m or getattr(BackendPatternConfig, n, None) is m
           for n, m in marks.items())
print('untouched')
'''
    proc = run_python(script)
    assert proc.returncode == 0 and 'untouched' in proc.stdout, proc.stderr[-2000:]
    # This torch: exactly the six names, each pointing at torch's renamed helper or a no-op.
    from torch.ao.quantization import fuser_method_mappings as fuser
    from torch.ao.quantization.backend_config import BackendPatternConfig
    assert fuser.reverse2 is fuser._reverse2 and fuser.reverse3 is fuser._reverse3
    assert fuser.reverse_sequential_wrapper2 is fuser._sequential_wrapper2
    config = BackendPatternConfig()
    assert config._set_input_output_observed(True) is config
    assert compat.let_mmrazor_import() == []  # applied once, on import


def test_torch_is_still_the_cpu_build():
    # mmrazor declares only ordered-set: installing it must not have replaced torch
    assert torch.__version__.startswith('2.13.0') and not torch.cuda.is_available()


def kd_cfg(student: str, root: str, work: str, recipe: str, loss_weight: float, **options):
    cfg = tiny_cfg(student, root, work, iters=2)
    cfg.randomness = dict(seed=0)
    teacher = Config.fromfile(osp.join(CONFIGS, student.replace('-w16', '-w32'))).model
    distill_config(cfg, teacher.to_dict(), None, recipe, loss_weight=loss_weight, **options)
    return cfg


def student_after(cfg: Config, train: bool) -> dict:
    runner = Runner.from_cfg(cfg)
    if train:
        runner.train()
    else:
        runner.model.init_weights()
    model = runner.model
    model = getattr(model, 'architecture', model)
    return {k: v.clone() for k, v in model.state_dict().items()}, runner


@pytest.mark.parametrize('student,recipe', [(SEG, 'cwd'), (DET, 'pkd'), (TWO_STAGE, 'pkd')])
def test_kd_student_starts_and_trains_as_the_baseline_at_weight_zero(student, recipe,
                                                                    digit_scenes, tmp_path):
    """The wrapper changes nothing by itself: same initial weights for the same seed (MMRazor's
    SingleTeacherDistill builds the teacher in between and moves them), and at weight 0 the
    same weights after training: the teacher's forward, in eval mode and on a fork of the random
    stream, draws none of the numbers the student's dropout (DeepLabV3) or its RPN and RoI
    samplers (Faster R-CNN, whose teacher samples too in MMRazor's loss-mode forward) take."""
    base = tiny_cfg(student, digit_scenes, str(tmp_path / 'base'), iters=2)
    base.randomness = dict(seed=0)
    start_b, _ = student_after(base, train=False)
    start_k, _ = student_after(kd_cfg(student, digit_scenes, str(tmp_path / 'kd0'), recipe, 0.0),
                               train=False)
    assert start_b.keys() == start_k.keys()
    assert all(torch.equal(start_b[k], start_k[k]) for k in start_b)
    base = tiny_cfg(student, digit_scenes, str(tmp_path / 'base2'), iters=2)
    base.randomness = dict(seed=0)
    end_b, _ = student_after(base, train=True)
    end_k, runner = student_after(kd_cfg(student, digit_scenes, str(tmp_path / 'kd1'), recipe,
                                         0.0), train=True)
    assert all(torch.equal(end_b[k], end_k[k]) for k in end_b)
    logged = [k for k in runner.message_hub.log_scalars if k.startswith('train/distill.')]
    assert logged, 'the distillation term is computed (at weight 0) and logged'


def test_kd_at_weight_zero_clips_as_the_baseline(digit_scenes, tmp_path):
    """A gradient clip that acts at every step (max norm 1e-3): at weight 0 the PKD connectors
    are frozen, so the clip's total norm is taken over the student's gradients alone, as the
    baseline's is (trainable, their zero gradients join the sum and reorder it: on the study's
    RetinaNet that moved a clipped step in the last bit at iteration 148), and the student's
    weights stay equal to the baseline's."""
    def clipped(cfg):
        cfg.optim_wrapper.clip_grad = dict(max_norm=1e-3, norm_type=2)
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 3
        return cfg

    def clipped_grads(runner):  # what OptimWrapper.clip_grads takes the norm of, at a step
        return [p for group in runner.optim_wrapper.optimizer.param_groups
                for p in group['params'] if p.requires_grad]
    base = clipped(tiny_cfg(DET, digit_scenes, str(tmp_path / 'base'), iters=3))
    base.randomness = dict(seed=0)
    end_b, runner_b = student_after(base, train=True)
    kd = clipped(kd_cfg(DET, digit_scenes, str(tmp_path / 'kd'), 'pkd', 0.0))
    end_k, runner_k = student_after(kd, train=True)
    assert runner_k.message_hub.get_scalar('train/grad_norm').current() > 1e-3  # it clipped
    assert len(clipped_grads(runner_k)) == len(clipped_grads(runner_b))
    assert all(torch.equal(end_b[k], end_k[k]) for k in end_b)
    live = kd_cfg(DET, digit_scenes, str(tmp_path / 'live'), 'pkd', 0.5)
    assert all(p.requires_grad for p in Runner.from_cfg(live).model.distiller.parameters())


def test_kd_trains_with_a_live_term_and_a_frozen_teacher(digit_scenes, tmp_path):
    cfg = kd_cfg(SEG, digit_scenes, str(tmp_path / 'kd'), 'kl', 1.0, tau=4.0)
    runner = Runner.from_cfg(cfg)
    teacher_before, modes = {}, []

    def seen(module, args):  # at each teacher forward; its weights as first used
        modes.append(any(m.training for m in module.modules()))
        if not teacher_before:
            teacher_before.update({k: v.clone() for k, v in module.state_dict().items()})
    runner.model.teacher.register_forward_pre_hook(seen)
    runner.train()
    term = runner.message_hub.get_scalar('train/distill.loss_kl').current()
    assert math.isfinite(term) and term > 0
    assert modes and not any(modes), 'the teacher (dropout too) runs in eval mode'
    after = runner.model.teacher.state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in after)  # BN statistics too


def test_pkd_connects_a_narrower_student_fpn_to_the_teacher():
    student = Config.fromfile(osp.join(CONFIGS, DET)).model.to_dict()
    teacher = Config.fromfile(osp.join(CONFIGS, DET.replace('-w16', '-w32'))).model.to_dict()
    model = distill_model(student, teacher, None, 'pkd', loss_weight=2.0, student_scope='mmdet')
    distiller = model['distiller']
    assert sorted(distiller['distill_losses']) == [f'loss_pkd_fpn{i}' for i in range(4)]
    assert distiller['connectors']['fpn0']['in_channel'] == 32
    assert distiller['connectors']['fpn0']['out_channel'] == 64
    same = distill_model(student, student, None, 'pkd', loss_weight=2.0, student_scope='mmdet')
    assert same['distiller']['connectors'] is None
    with pytest.raises(ValueError, match="recipe 'fitnet' is not one of"):
        distill_model(student, teacher, None, 'fitnet', loss_weight=1.0)


def test_pixel_kl_is_the_mean_over_pixels_of_the_kl():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 3, 4, requires_grad=True), torch.randn(2, 5, 3, 4)
    loss = PixelKLDivergence(tau=2.0, loss_weight=0.5)(s, t)
    p, log_q = torch.softmax(t / 2, 1), torch.log_softmax(s / 2, 1)
    expected = 0.5 * 4 * (p * (p.log() - log_q)).sum(1).mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert PixelKLDivergence()(t, t).abs() < 1e-6
    with pytest.raises(ValueError, match='same classes and output size'):
        PixelKLDivergence()(s, t[:, :4])


def test_student_checkpoint_from_a_runner_checkpoint(digit_scenes, tmp_path):
    cfg = kd_cfg(SEG, digit_scenes, str(tmp_path / 'kd'), 'cwd', 1.0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    src = osp.join(cfg.work_dir, 'iter_2.pth')
    dst = str(tmp_path / 'student.pth')
    subprocess.run([sys.executable, osp.join(osp.dirname(CONFIGS), 'tools',
                                             'kd_student_checkpoint.py'), src, dst], check=True,
                   capture_output=True)
    # the student's own config loads it, as `tools/test.py CONFIG CHECKPOINT` does
    student = tiny_cfg(SEG, digit_scenes, str(tmp_path / 'student'))
    student.load_from = dst
    tester = Runner.from_cfg(student)
    metrics = tester.test()
    assert 'mIoU' in metrics
    trained = runner.model.architecture.state_dict()
    loaded = tester.model.state_dict()
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[k], loaded[k]) for k in trained)
    with pytest.raises(ValueError, match='not a distillation checkpoint'):
        student_checkpoint(dst, str(tmp_path / 'again.pth'))
