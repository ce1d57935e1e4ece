"""Properties of the box-aware swap (docs/method.md) over random images, boxes and masks."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsd_mm.swap import InstanceSwapOptions, match_instances, swap_instances


def random_instances(rng, h, w, n, num_classes=2):
    x0 = rng.uniform(0, w - 8, n)
    y0 = rng.uniform(0, h - 8, n)
    boxes = np.stack([x0, y0, np.minimum(x0 + rng.uniform(4, w / 1.5, n), w),
                      np.minimum(y0 + rng.uniform(4, h / 1.5, n), h)], 1).astype(np.float32)
    labels = rng.integers(0, num_classes, n).astype(np.int64)
    ignore = rng.random(n) < 0.2
    masks = np.zeros((n, h, w), np.uint8)
    for k, (bx0, by0, bx1, by1) in enumerate(boxes.astype(int)):
        masks[k, by0:by1, bx0:bx1] = rng.random((by1 - by0, bx1 - bx0)) < 0.7
    return boxes, labels, ignore, masks


def member(rng, h, w, n):
    return dict(img=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                **dict(zip(('boxes', 'labels', 'ignore', 'masks'), random_instances(rng, h, w, n))))


def run(a, b, seed, grid=(3, 3), ratio=(0.3, 1.0), prob=1.0, min_cell=2, max_pairs=16):
    return swap_instances(a['img'], b['img'], a['boxes'], b['boxes'], a['labels'], b['labels'],
                          a['ignore'], b['ignore'], a['masks'], b['masks'],
                          np.random.default_rng(seed),
                          InstanceSwapOptions(grid, ratio, prob, min_cell, max_pairs))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), ha=st.integers(24, 64), wa=st.integers(24, 64),
       hb=st.integers(24, 64), wb=st.integers(24, 64), na=st.integers(0, 6),
       nb=st.integers(0, 6), max_pairs=st.integers(1, 8))
def test_box_swap_properties(seed, ha, wa, hb, wb, na, nb, max_pairs):
    rng = np.random.default_rng(seed)
    a, b = member(rng, ha, wa, na), member(rng, hb, wb, nb)
    orig = {side: {k: v.copy() for k, v in m.items()} for side, m in (('a', a), ('b', b))}
    res = run(a, b, seed, max_pairs=max_pairs)
    # Boxes, labels and flags never change; masks keep one length and order.
    for side, m in (('a', a), ('b', b)):
        for key in ('boxes', 'labels', 'ignore'):
            np.testing.assert_array_equal(m[key], orig[side][key])
        assert m['masks'].shape == orig[side]['masks'].shape
        assert m['img'].dtype == np.uint8
    # Matches: one class each, never ignored, one-to-one, at most max_pairs.
    assert len(res.instance_pairs) <= max_pairs
    assert len({i for i, _ in res.instance_pairs}) == len(res.instance_pairs)
    assert len({j for _, j in res.instance_pairs}) == len(res.instance_pairs)
    for i, j in res.instance_pairs:
        assert a['labels'][i] == b['labels'][j]
        assert not a['ignore'][i] and not b['ignore'][j]
    # Outside the swapped cells nothing changed; inside, cells lie in their matched boxes.
    for side, m, cells in (('a', a, res.cells_a), ('b', b, res.cells_b)):
        touched = np.zeros(m['img'].shape[:2], bool)
        for y0, y1, x0, x1 in cells:
            touched[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(m['img'][~touched], orig[side]['img'][~touched])
        np.testing.assert_array_equal(m['masks'][:, ~touched], orig[side]['masks'][:, ~touched])
    for (ay0, ay1, ax0, ax1), (i, j) in zip(res.cells_a, res.cell_owners):
        bx0, by0, bx1, by1 = a['boxes'][i]
        assert bx0 - 1 <= ax0 and ax1 <= bx1 + 1 and by0 - 1 <= ay0 and ay1 <= by1 + 1
    assert res.swapped == bool(res.cells_a)


def test_same_size_cell_contents_move_with_masks():
    rng = np.random.default_rng(0)
    img_a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img_b = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    box = np.array([[4, 4, 36, 36]], np.float32)
    masks_a = (rng.random((1, 40, 40)) < 0.5).astype(np.uint8)
    masks_b = (rng.random((1, 40, 40)) < 0.5).astype(np.uint8)
    before = [x.copy() for x in (img_a, img_b, masks_a, masks_b)]
    res = swap_instances(img_a, img_b, box, box.copy(), np.array([1]), np.array([1]),
                         np.array([False]), np.array([False]), masks_a, masks_b, rng,
                         InstanceSwapOptions((4, 4), (1.0, 1.0), 1.0, 2, 16))
    assert res.swapped and len(res.cells_a) == 16 and res.instance_pairs == [(0, 0)]
    inside = (slice(4, 36), slice(4, 36))
    np.testing.assert_array_equal(img_a[inside], before[1][inside])
    np.testing.assert_array_equal(masks_a[0][inside], before[3][0][inside])
    np.testing.assert_array_equal(masks_b[0][inside], before[2][0][inside])


def test_other_instances_are_cleared_inside_swapped_cells():
    img = np.zeros((20, 20, 3), np.uint8)
    boxes = np.array([[0, 0, 20, 20], [0, 0, 10, 10]], np.float32)
    masks_a = np.ones((2, 20, 20), np.uint8)
    masks_b = np.ones((2, 20, 20), np.uint8)
    res = swap_instances(img.copy(), img.copy(), boxes, boxes.copy(), np.array([0, 1]),
                         np.array([0, 5]), np.zeros(2, bool), np.zeros(2, bool), masks_a,
                         masks_b, np.random.default_rng(0),
                         InstanceSwapOptions((1, 1), (1.0, 1.0), 1.0, 2, 16))
    assert res.instance_pairs == [(0, 0)]
    assert masks_a[0].all() and not masks_a[1].any()  # the pasted object covers instance 1


def test_nothing_to_swap():
    rng = np.random.default_rng(0)
    a, b = member(rng, 32, 32, 3), member(rng, 32, 32, 3)
    b['labels'][:] = 7  # no shared class
    img = a['img'].copy()
    res = run(a, b, 0)
    assert not res.swapped and res.instance_pairs == []
    np.testing.assert_array_equal(a['img'], img)
    b['labels'][:] = a['labels']
    b['ignore'][:] = a['ignore'][:] = True  # only ignored instances
    assert run(a, b, 0).instance_pairs == []
    a['ignore'][:] = b['ignore'][:] = False
    res = run(a, b, 0, min_cell=1000)  # boxes too small for the grid: matched, not swapped
    assert not res.swapped and res.instance_pairs
    np.testing.assert_array_equal(a['img'], img)
    res = run(a, b, 0, prob=0.0)
    assert not res.swapped and res.instance_pairs
    np.testing.assert_array_equal(a['img'], img)


def test_match_respects_max_pairs_and_seed():
    labels = np.zeros(10, np.int64)
    flags = np.zeros(10, bool)
    p1 = match_instances(labels, flags, labels, flags, 4, np.random.default_rng(1))
    p2 = match_instances(labels, flags, labels, flags, 4, np.random.default_rng(1))
    assert p1 == p2 and len(p1) == 4


def test_whole_box_swap_exchanges_instances_with_their_masks():
    """box_grid=1: the matched instances exchange their whole content (resized onto the other
    box), masks following; boxes and labels stay."""
    rng = np.random.default_rng(0)
    img_a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img_b = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    box_a = np.array([[4, 4, 20, 20]], np.float32)
    box_b = np.array([[8, 8, 40, 40]], np.float32)  # twice the size: content is resized
    masks_a = np.zeros((1, 40, 40), np.uint8)
    masks_a[0, 4:12, 4:20] = 1  # upper half of box a
    masks_b = np.zeros((1, 40, 40), np.uint8)
    masks_b[0, 8:40, 8:24] = 1  # left half of box b
    before_a, before_b = img_a.copy(), img_b.copy()
    res = swap_instances(img_a, img_b, box_a, box_b.copy(), np.array([2]), np.array([2]),
                         np.array([False]), np.array([False]), masks_a, masks_b, rng,
                         InstanceSwapOptions(1, 1.0, 1.0, 2, 16))
    assert res.swapped and res.cells_a == [(4, 20, 4, 20)] and res.cells_b == [(8, 40, 8, 40)]
    # Box a now shows box b's content at half size; box b shows box a's at double size.
    np.testing.assert_array_equal(img_a[4:20, 4:20], cv2_resize(before_b[8:40, 8:40], 16))
    np.testing.assert_array_equal(img_b[8:40, 8:40], cv2_resize(before_a[4:20, 4:20], 32))
    assert masks_a[0, 4:20, 4:12].all() and not masks_a[0, 4:20, 12:20].any()  # left half
    assert masks_b[0, 8:24, 8:40].all() and not masks_b[0, 24:40, 8:40].any()  # upper half
    outside = np.ones((40, 40), bool)
    outside[4:20, 4:20] = False
    np.testing.assert_array_equal(img_a[outside], before_a[outside])


def cv2_resize(patch, size):
    import cv2
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), na=st.integers(1, 5), nb=st.integers(1, 5),
       grid=st.sampled_from([1, 2, 3]))
def test_one_way_swap_leaves_the_partner_clean(seed, na, nb, grid):
    rng = np.random.default_rng(seed)
    a, b = member(rng, 48, 48, na), member(rng, 48, 48, nb)
    b['labels'][:] = a['labels'][0]  # something is shared
    a['ignore'][:] = b['ignore'][:] = False
    orig_b = {k: v.copy() for k, v in b.items()}
    res = swap_instances(a['img'], b['img'], a['boxes'], b['boxes'], a['labels'], b['labels'],
                         a['ignore'], b['ignore'], a['masks'], b['masks'],
                         np.random.default_rng(seed),
                         InstanceSwapOptions(grid, (0.5, 1.0), 1.0, 1, 16, one_way=True))
    assert res.instance_pairs
    for key, value in orig_b.items():
        np.testing.assert_array_equal(b[key], value)


def test_excluded_classes_never_match():
    labels = np.array([0, 1, 1])
    flags = np.zeros(3, bool)
    pairs = match_instances(labels, flags, labels, flags, 16, np.random.default_rng(0),
                            exclude_classes=(1, ))
    assert pairs == [(0, 0)]
