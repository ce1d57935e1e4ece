"""The student of a teacher-KD checkpoint, as a checkpoint of the student's own config.

MMRazor's ``tools/model_converters/convert_kd_ckpt_to_student.py`` cannot read the checkpoints
that MMEngine's Runner writes on torch >= 2.6; this reads them (``ipsd_mm.compat``) and keeps
the student's weights only (``architecture.`` prefix stripped), so that the student's config
tests or fine-tunes from it:

    python tools/kd_student_checkpoint.py work_dirs/kd/iter_80000.pth student.pth
    python tools/test.py STUDENT_CONFIG student.pth
"""
import argparse

from ipsd_mm.kd import student_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='a FrozenTeacherDistill / SingleTeacherDistill '
                        'checkpoint')
    parser.add_argument('out', help='the student checkpoint to write')
    args = parser.parse_args()
    out = student_checkpoint(args.checkpoint, args.out)
    print(f'wrote {args.out}: the student, {len(out["state_dict"])} tensors')


if __name__ == '__main__':
    main()
