"""DigitScenes: a small detection / segmentation dataset of digits in scenes.

Scenes of several digits at random scales, positions and colours over textured backgrounds.
The glyphs are either printed (OpenCV's Hershey fonts, upright or italic, random stroke width
and tilt: the default) or real handwriting (``sklearn.datasets.load_digits``, shipped with
scikit-learn, no download). The handwritten glyphs are 8x8 pixels at 16 grey levels: a small
CNN trained from scratch on 1,000 of them (coloured, on textures) reaches about 45% accuracy
where printed glyphs reach about 90% in the same time, so the CPU demo and the accuracy study
use printed ones. Written once, read by both libraries:

    ROOT/images/{train,val,test}/NNNNN.png   the scenes (RGB)
    ROOT/labels/{train,val,test}/NNNNN.png   label maps for mmseg: 0 background, d + 1 digit d
    ROOT/annotations/{train,val,test}.json   COCO json for mmdet: boxes and RLE masks, 10 classes

Each split is drawn from a random stream of its own, so the (optional) test split shares no
scene with train or val: a search can use val and confirm once on test.

Handwritten: train and val are drawn from disjoint digit images, so val measures
generalisation to unseen handwriting. Printed: train and val share the fonts, not the
renderings (stroke width, tilt, scale, colour, background). The output is a function of the
options alone (``--seed`` included).

    python tools/make_digit_scenes.py data/digit_scenes --num-train 200 --num-val 50
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = tuple(str(d) for d in range(10))
SEG_CLASSES = ('background', ) + CLASSES
GLYPHS = ('printed', 'handwritten')
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


def load_digit_pool(seed: int, val_fraction: float = 0.3) -> Tuple[list, list]:
    """The sklearn digits as (image in [0, 1], label) lists for train and val, disjoint."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.images))
    num_val = int(len(order) * val_fraction)
    pool = [(digits.images[i] / 16.0, int(digits.target[i])) for i in order]
    return pool[num_val:], pool[:num_val]


def printed_glyph(rng: np.random.Generator, digit: int) -> np.ndarray:
    """``digit`` in a random Hershey font (italic 30% of the time), stroke width and tilt
    (±15°): a square coverage image in [0, 1], the glyph centred and touching two sides."""
    font = FONTS[int(rng.integers(len(FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    thickness = int(rng.integers(2, 5))
    canvas = np.zeros((64, 64), np.uint8)
    (w, h), _ = cv2.getTextSize(str(digit), font, 1.6, thickness)
    cv2.putText(canvas, str(digit), ((64 - w) // 2, (64 + h) // 2), font, 1.6, 255, thickness,
                cv2.LINE_AA)
    tilt = cv2.getRotationMatrix2D((32, 32), rng.uniform(-15, 15), 1.0)
    canvas = cv2.warpAffine(canvas, tilt, (64, 64)).astype(np.float32) / 255
    ys, xs = np.nonzero(canvas > 0.3)
    glyph = canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    side = max(glyph.shape)
    square = np.zeros((side, side), np.float32)
    top, left = (side - glyph.shape[0]) // 2, (side - glyph.shape[1]) // 2
    square[top:top + glyph.shape[0], left:left + glyph.shape[1]] = glyph
    return square


def glyph_source(glyphs: str, pool: list):
    """A function ``rng -> (glyph image in [0, 1], digit)`` for the chosen kind of glyphs."""
    if glyphs == 'handwritten':
        return lambda rng: pool[int(rng.integers(len(pool)))]
    if glyphs == 'printed':
        def draw(rng):
            digit = int(rng.integers(10))
            return printed_glyph(rng, digit), digit
        return draw
    raise ValueError(f'glyphs={glyphs!r}: choose one of {GLYPHS}')


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random background: blurred noise over a colour gradient."""
    base = rng.uniform(40, 200, 3)
    tilt = rng.uniform(-60, 60, 3)
    ramp = np.linspace(0, 1, w)[None, :, None] * tilt + np.linspace(0, 1, h)[:, None, None] * tilt[::-1]
    noise = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)), (0, 0), rng.uniform(1, 4))
    return np.clip(base + ramp + noise, 0, 255)


def make_scene(rng: np.random.Generator, draw_glyph, size: Tuple[int, int],
               num_digits: Tuple[int, int], scale: Tuple[int, int]):
    """One scene: image (H, W, 3) uint8, label map (H, W) uint8, and instances
    [(class, mask)] with visible masks (later digits cover earlier ones)."""
    h, w = size
    img = texture(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    owner = np.full((h, w), -1, np.int64)
    classes = []
    for k in range(int(rng.integers(num_digits[0], num_digits[1] + 1))):
        digit, cls = draw_glyph(rng)
        side = int(rng.integers(scale[0], min(scale[1], h, w) + 1))
        glyph = cv2.resize(digit, (side, side), interpolation=cv2.INTER_LINEAR)
        mask = glyph > 0.35
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        colour = rng.uniform(0, 255, 3)
        while np.abs(colour - img[y:y + side, x:x + side].mean((0, 1))).sum() < 150:
            colour = rng.uniform(0, 255, 3)  # keep the digit visible against its background
        alpha = np.clip(glyph * 1.5, 0, 1)[..., None]
        region = img[y:y + side, x:x + side]
        img[y:y + side, x:x + side] = alpha * colour + (1 - alpha) * region
        label[y:y + side, x:x + side][mask] = cls + 1
        owner[y:y + side, x:x + side][mask] = k
        classes.append(cls)
    instances = [(cls, owner == k) for k, cls in enumerate(classes)]
    instances = [(cls, m) for cls, m in instances if m.sum() >= 12]  # mostly hidden: dropped
    # Pixels of dropped instances keep no label, so the label map and the masks agree.
    keep = np.zeros((h, w), bool)
    for _, m in instances:
        keep |= m
    label[~keep] = 0
    return np.round(img).astype(np.uint8), label, instances


def coco_annotations(instances: List[tuple], image_id: int, first_ann_id: int) -> List[dict]:
    from pycocotools import mask as mask_utils
    anns = []
    for n, (cls, m) in enumerate(instances):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle['counts'] = rle['counts'].decode('ascii')
        x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
        anns.append(dict(id=first_ann_id + n, image_id=image_id, category_id=cls + 1,
                         bbox=[x, y, bw, bh], area=float(m.sum()), segmentation=rle,
                         iscrowd=0))
    return anns


def write_split(root: str, split: str, draw_glyph, num: int, rng: np.random.Generator,
                size: Tuple[int, int], num_digits: Tuple[int, int],
                scale: Tuple[int, int]) -> None:
    from ..progress import progress
    for sub in ('images', 'labels'):
        os.makedirs(osp.join(root, sub, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    print(f'DigitScenes {split}: {num} scenes')
    bar = progress(num, f'DigitScenes {split}: scenes written')
    for i in range(num):
        img, label, instances = make_scene(rng, draw_glyph, size, num_digits, scale)
        name = f'{i:05d}.png'
        cv2.imwrite(osp.join(root, 'images', split, name), img[..., ::-1])
        cv2.imwrite(osp.join(root, 'labels', split, name), label)
        images.append(dict(id=i, file_name=name, height=size[0], width=size[1]))
        annotations += coco_annotations(instances, i, len(annotations))
        bar.update()
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=d + 1, name=name) for d, name in enumerate(CLASSES)])
    with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(coco, f)


def make_digit_scenes(root: str, num_train: int = 200, num_val: int = 50,
                      size: Tuple[int, int] = (128, 128), num_digits: Tuple[int, int] = (2, 5),
                      scale: Tuple[int, int] = (20, 48), seed: int = 0,
                      glyphs: str = 'printed', num_test: int = 0) -> None:
    """Write DigitScenes under ``root`` (see the module docstring); no test split when
    ``num_test`` is 0."""
    if glyphs not in GLYPHS:
        raise ValueError(f'glyphs={glyphs!r}: choose one of {GLYPHS}')
    train_pool, val_pool = load_digit_pool(seed)
    splits = [('train', train_pool, num_train, 1), ('val', val_pool, num_val, 2)]
    if num_test:
        splits.append(('test', val_pool, num_test, 3))
    for split, pool, num, offset in splits:
        rng = np.random.default_rng([seed, offset])
        write_split(root, split, glyph_source(glyphs, pool), num, rng, size, num_digits, scale)
