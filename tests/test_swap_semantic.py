"""Properties of the mask-aware swap (docs/method.md) over random images and label maps."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsd_mm.swap import SemanticSwapOptions, swap_semantic
from ipsd_mm.swap.grid import swap_regions
from ipsd_mm.swap.semantic import image_grids
from ipsd_mm.testing.synthetic import blocky

IGNORE = 255


def opts(patch, ratio, prob, fraction, **kwargs):
    return SemanticSwapOptions(patch, ratio, prob, fraction, IGNORE, **kwargs)


def make_pair(seed, size_a, size_b, channels):
    rng = np.random.default_rng(seed)
    imgs, maps = [], []
    for h, w in (size_a, size_b):
        shape = (h, w) if channels == 0 else (h, w, channels)
        imgs.append(rng.integers(0, 256, shape, dtype=np.uint8))
        maps.append(blocky(rng, h, w, 3, int(rng.choice([4, 8, 16])), ignore=0.05))
    return imgs, maps


def in_cells(shape, cells):
    mask = np.zeros(shape, bool)
    for y0, y1, x0, x1 in cells:
        mask[y0:y1, x0:x1] = True
    return mask


pair_args = dict(seed=st.integers(0, 2**31), h=st.integers(8, 48), w=st.integers(8, 48),
                 patch=st.integers(2, 16), fraction=st.floats(0.3, 1.0),
                 channels=st.sampled_from([0, 1, 3]))


@settings(max_examples=60, deadline=None)
@given(**pair_args)
def test_same_size_swap_properties(seed, h, w, patch, fraction, channels):
    (img_a, img_b), (lab_a, lab_b) = make_pair(seed, (h, w), (h, w), channels)
    orig = [a.copy() for a in (img_a, img_b, lab_a, lab_b)]
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], np.random.default_rng(seed),
                        opts((patch, patch), (0.2, 1.0), 1.0, fraction))
    if not res.swapped:
        for now, before in zip((img_a, img_b, lab_a, lab_b), orig):
            np.testing.assert_array_equal(now, before)
        return
    assert res.cells_a == res.cells_b and len(res.cells_a) == len(res.cell_classes)
    # Outside swapped cells nothing changed, in either image.
    outside = ~in_cells((h, w), res.cells_a)
    for now, before in zip((img_a, img_b, lab_a, lab_b), orig):
        np.testing.assert_array_equal(now[outside], before[outside])
    for (y0, y1, x0, x1), c in zip(res.cells_a, res.cell_classes):
        # Each swapped cell carries its partner's pixels and labels together.
        np.testing.assert_array_equal(img_a[y0:y1, x0:x1], orig[1][y0:y1, x0:x1])
        np.testing.assert_array_equal(img_b[y0:y1, x0:x1], orig[0][y0:y1, x0:x1])
        np.testing.assert_array_equal(lab_a[y0:y1, x0:x1], orig[3][y0:y1, x0:x1])
        np.testing.assert_array_equal(lab_b[y0:y1, x0:x1], orig[2][y0:y1, x0:x1])
        # It was chosen for a class covering enough of its valid pixels in both images.
        for before in (orig[2], orig[3]):
            cell = before[y0:y1, x0:x1]
            valid = cell != IGNORE
            assert valid.any() and (cell[valid] == c).mean() >= fraction - 1e-9
    # The record lists the classes both maps hold afterwards.
    held = [set(np.unique(m)) - {IGNORE} for m in (lab_a, lab_b)]
    assert res.classes == sorted(held[0] & held[1])
    # Swapping back at the same cells restores both originals.
    swap_regions([img_a, lab_a], [img_b, lab_b], res.cells_a, res.cells_b, [False, True])
    for now, before in zip((img_a, img_b, lab_a, lab_b), orig):
        np.testing.assert_array_equal(now, before)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), ha=st.integers(8, 40), wa=st.integers(8, 40),
       hb=st.integers(8, 40), wb=st.integers(8, 40), patch=st.integers(4, 12))
def test_different_sizes_keep_labels_on_pixels(seed, ha, wa, hb, wb, patch):
    """Images of different sizes: cell k of B is resized onto cell k of A; outside the cells
    nothing moves, and labels and a label-coded image stay in step (both nearest here)."""
    rng = np.random.default_rng(seed)
    lab_a, lab_b = blocky(rng, ha, wa, 2, 8, 0.05), blocky(rng, hb, wb, 2, 8, 0.05)
    # An extra map that equals the label map: both are resized nearest, so they must agree.
    twin_a, twin_b = lab_a.astype(np.int64) * 7, lab_b.astype(np.int64) * 7
    img_a = rng.integers(0, 256, (ha, wa, 3), dtype=np.uint8)
    img_b = rng.integers(0, 256, (hb, wb, 3), dtype=np.uint8)
    orig_a, orig_b = img_a.copy(), img_b.copy()
    res = swap_semantic(img_a, img_b, [lab_a, twin_a], [lab_b, twin_b], rng,
                        opts((patch, patch), (1.0, 1.0), 1.0, 0.5))
    np.testing.assert_array_equal(twin_a, lab_a.astype(np.int64) * 7)
    np.testing.assert_array_equal(twin_b, lab_b.astype(np.int64) * 7)
    assert twin_a.dtype == np.int64 and lab_a.dtype == np.uint8 and img_a.dtype == np.uint8
    np.testing.assert_array_equal(img_a[~in_cells((ha, wa), res.cells_a)],
                                  orig_a[~in_cells((ha, wa), res.cells_a)])
    np.testing.assert_array_equal(img_b[~in_cells((hb, wb), res.cells_b)],
                                  orig_b[~in_cells((hb, wb), res.cells_b)])
    (ya, xa), (yb, xb) = image_grids((ha, wa), (hb, wb), (patch, patch))
    assert ya[-1] == ha and xa[-1] == wa and yb[-1] == hb and xb[-1] == wb


def test_nothing_shared_or_prob_zero_changes_nothing():
    rng = np.random.default_rng(0)
    img_a, img_b = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    lab_a, lab_b = np.zeros((16, 16), np.uint8), np.ones((16, 16), np.uint8)
    before = img_a.copy()
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], rng, opts((4, 4), (1.0, 1.0), 1.0, 0.5))
    assert not res.swapped and res.classes == []
    lab_b[:] = 0
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], rng, opts((4, 4), (1.0, 1.0), 0.0, 0.5))
    assert not res.swapped and res.classes == [0]
    np.testing.assert_array_equal(img_a, before)


def test_cells_of_only_ignore_pixels_never_swap():
    rng = np.random.default_rng(0)
    img_a, img_b = (rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(2))
    lab_a = np.full((8, 8), IGNORE, np.uint8)
    lab_b = np.full((8, 8), IGNORE, np.uint8)
    lab_a[0, 0] = lab_b[7, 7] = 1  # class 1 is shared, but no cell holds it in both images
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], rng, opts((4, 4), (1.0, 1.0), 1.0, 0.5))
    assert not res.swapped and res.classes == [1]


def test_same_seed_same_swap():
    outs = []
    for _ in range(2):
        (img_a, img_b), (lab_a, lab_b) = make_pair(3, (32, 32), (32, 32), 3)
        res = swap_semantic(img_a, img_b, [lab_a], [lab_b], np.random.default_rng(7),
                            opts((8, 8), (0.25, 0.75), 1.0, 0.5))
        outs.append((res.cells_a, img_a))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


@settings(max_examples=40, deadline=None)
@given(**pair_args)
def test_one_way_swap_leaves_the_partner_clean(seed, h, w, patch, fraction, channels):
    """One-way: A receives B's cells with their labels; B is untouched, pixels and labels."""
    (img_a, img_b), (lab_a, lab_b) = make_pair(seed, (h, w), (h, w), channels)
    orig = [a.copy() for a in (img_a, img_b, lab_a, lab_b)]
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], np.random.default_rng(seed),
                        opts((patch, patch), (0.2, 1.0), 1.0, fraction, one_way=True))
    np.testing.assert_array_equal(img_b, orig[1])
    np.testing.assert_array_equal(lab_b, orig[3])
    outside = ~in_cells((h, w), res.cells_a)
    np.testing.assert_array_equal(img_a[outside], orig[0][outside])
    for y0, y1, x0, x1 in res.cells_a:
        np.testing.assert_array_equal(img_a[y0:y1, x0:x1], orig[1][y0:y1, x0:x1])
        np.testing.assert_array_equal(lab_a[y0:y1, x0:x1], orig[3][y0:y1, x0:x1])
    held = [set(np.unique(m)) - {IGNORE} for m in (lab_a, lab_b)]
    assert res.classes == sorted(held[0] & held[1])


def test_excluded_classes_never_swap_nor_count_as_shared():
    rng = np.random.default_rng(0)
    img_a, img_b = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    lab_a, lab_b = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    lab_a[:8, :8] = lab_b[8:, 8:] = 3  # class 3 shared, but never in the same cell
    before = img_a.copy()
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], rng,
                        opts((8, 8), (1.0, 1.0), 1.0, 0.5, exclude_classes=[0]))
    assert not res.swapped and res.classes == [3]  # background would have swapped every cell
    np.testing.assert_array_equal(img_a, before)
    res = swap_semantic(img_a, img_b, [lab_a], [lab_b], rng,
                        opts((8, 8), (1.0, 1.0), 1.0, 0.5))
    assert res.swapped and set(res.cell_classes) == {0} and res.classes == [0, 3]


def test_options_are_checked_with_the_option_named():
    import pytest
    for kwargs, name in ((dict(patch_size=8.0), 'patch_size'), (dict(patch_size='8'), 'patch_size'),
                         (dict(swap_ratio='x'), 'swap_ratio'), (dict(prob=float('nan')), 'prob'),
                         (dict(exclude_classes=[-1]), 'exclude_classes'),
                         (dict(one_way=1), 'one_way'), (dict(ignore_index=1.5), 'ignore_index'),
                         (dict(min_class_fraction=0), 'min_class_fraction')):
        with pytest.raises(ValueError, match=name):
            SemanticSwapOptions(**kwargs)


def test_absurd_label_values_are_a_clear_error_not_a_huge_allocation():
    import pytest
    img = np.zeros((8, 8, 3), np.uint8)
    lab_a = np.zeros((8, 8), np.int64)
    lab_a[0, 0] = 2**40
    with pytest.raises(ValueError, match='label 1099511627776.*ignore_index'):
        swap_semantic(img, img.copy(), [lab_a], [np.zeros((8, 8), np.int64)],
                      np.random.default_rng(0), opts((4, 4), (1.0, 1.0), 1.0, 0.5))


def test_the_ignore_value_changes_neither_the_swap_nor_the_count_table():
    """uint16 label maps marking unlabelled pixels 65535 swap exactly as with 255, and the
    per-cell class counts are as wide as the classes, not as the ignore value (a 65536-wide
    table per cell cost seconds and gigabytes on a 512x512 pair)."""
    from ipsd_mm.swap.semantic import cell_class_counts, class_bins, image_grids
    rng = np.random.default_rng(0)
    labels = [blocky(rng, 64, 64, 5, 16, ignore=0.2).astype(np.uint16) for _ in range(2)]
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    results = {}
    for ignore in (255, 65535):
        maps = [lab.copy() for lab in labels]
        for m in maps:
            m[m == 255] = ignore
        imgs = [img.copy() for img in images]
        opts = SemanticSwapOptions(patch_size=8, ignore_index=ignore)
        swap = swap_semantic(imgs[0], imgs[1], [maps[0]], [maps[1]],
                             np.random.default_rng(1), opts)
        assert swap.swapped
        (ya, xa), _ = image_grids(maps[0].shape, maps[1].shape, opts.patch_size)
        bins = class_bins(maps[0], maps[1], ignore)
        assert bins == 5 and cell_class_counts(maps[0], ya, xa, bins, ignore).shape == (64, 5)
        maps = [np.where(m == ignore, 255, m) for m in maps]
        results[ignore] = (swap.cells_a, swap.classes, [m.tolist() for m in maps],
                           [img.tolist() for img in imgs])
    assert results[255] == results[65535]
