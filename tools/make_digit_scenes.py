"""Write DigitScenes (``ipsd_mm.testing.digit_scenes``): digits in scenes, for mmdet and mmseg.

    python tools/make_digit_scenes.py data/digit_scenes --num-train 200 --num-val 50
"""
import argparse

from ipsd_mm.testing.digit_scenes import GLYPHS, __doc__ as DOC, make_digit_scenes


def parse_args():
    parser = argparse.ArgumentParser(description=DOC.split('\n\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--num-test', type=int, default=0, help='a held-out test split (0: none)')
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--num-digits', type=int, nargs=2, default=(2, 5), metavar=('MIN', 'MAX'))
    parser.add_argument('--scale', type=int, nargs=2, default=(20, 48), metavar=('MIN', 'MAX'),
                        help='digit side in pixels')
    parser.add_argument('--glyphs', choices=GLYPHS, default='printed')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


if __name__ == '__main__':
    args = parse_args()
    make_digit_scenes(args.root, args.num_train, args.num_val, tuple(args.size),
                      tuple(args.num_digits), tuple(args.scale), args.seed, args.glyphs,
                      args.num_test)
