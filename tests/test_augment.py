"""Training-batch augmentation of images: masks, time shift, mixup, seeding, bad values."""
from __future__ import annotations

import numpy as np
import pytest

from featx.errors import ConfigError
from featx.models.augment import Augmentation, apply_masks, mask_spans, mixup, shift_time


def _batch(n=6, height=12, width=30, seed=1):
    # strictly positive pixels, so a zero can only come from a mask
    return np.random.default_rng(seed).uniform(1.0, 2.0, size=(n, height, width)).astype(np.float32)


def test_mask_spans_are_disjoint_and_within_bounds():
    rng = np.random.default_rng(0)
    starts, widths = mask_spans(rng, 200, 40, 4, 10)
    assert starts.shape == widths.shape == (200, 4)
    assert widths.min() >= 1 and widths.max() <= 10
    assert starts.min() >= 0 and (starts + widths).max() <= 40
    # sorted spans: each ends at or before the next one starts
    assert np.all(starts[:, 1:] >= starts[:, :-1] + widths[:, :-1])


@pytest.mark.parametrize("freq_masks,time_masks", [(2, 0), (0, 3), (2, 3)])
def test_masks_zero_exactly_the_drawn_bands_and_frames(freq_masks, time_masks):
    images = _batch()
    width = 4
    out = apply_masks(images, np.random.default_rng(5), time_masks=time_masks, freq_masks=freq_masks,
                      mask_width=width)
    # the same draws, replayed, tell how wide every mask is
    rng = np.random.default_rng(5)
    f_w = mask_spans(rng, len(images), 12, freq_masks, width)[1] if freq_masks else np.zeros((6, 0), int)
    t_w = mask_spans(rng, len(images), 30, time_masks, width)[1] if time_masks else np.zeros((6, 0), int)
    for i in range(len(images)):
        zero = out[i] == 0
        zero_rows = int(zero.all(axis=1).sum())
        zero_frames = int(zero.all(axis=0).sum())
        assert zero_rows == f_w[i].sum()
        assert zero_frames == t_w[i].sum()
        assert freq_masks <= zero_rows <= freq_masks * width
        assert time_masks <= zero_frames <= time_masks * width
        # everything outside the masked rows and frames is untouched
        keep = ~zero.all(axis=1)[:, None] & ~zero.all(axis=0)[None, :]
        np.testing.assert_array_equal(out[i][keep], images[i][keep])
    assert np.all(images > 0)  # the input was not changed in place


def test_width_one_masks_zero_exactly_the_stated_numbers():
    images = _batch(n=20, height=16, width=40)
    out = apply_masks(images, np.random.default_rng(3), time_masks=5, freq_masks=3, mask_width=1)
    for image in out:
        assert int((image == 0).all(axis=1).sum()) == 3
        assert int((image == 0).all(axis=0).sum()) == 5


def test_masks_on_images_with_channels():
    images = _batch()[..., None].repeat(2, axis=-1)
    out = apply_masks(images, np.random.default_rng(0), time_masks=1, freq_masks=1, mask_width=1)
    assert out.shape == images.shape
    for image in out:
        assert int((image == 0).all(axis=(1, 2)).sum()) == 1  # one row, both channels
        assert int((image == 0).all(axis=(0, 2)).sum()) == 1  # one frame


def test_circular_shift_is_a_roll():
    images = _batch(n=4)
    shifts = np.array([0, 3, -5, 29])
    out = shift_time(images, shifts, mode="circular")
    for i, s in enumerate(shifts):
        np.testing.assert_array_equal(out[i], np.roll(images[i], s, axis=1))


def test_zero_shift_moves_content_and_zeroes_the_uncovered_frames():
    images = _batch(n=3)
    out = shift_time(images, np.array([4, -6, 0]), mode="zero")
    np.testing.assert_array_equal(out[0][:, 4:], images[0][:, :-4])
    assert np.all(out[0][:, :4] == 0)
    np.testing.assert_array_equal(out[1][:, :-6], images[1][:, 6:])
    assert np.all(out[1][:, -6:] == 0)
    np.testing.assert_array_equal(out[2], images[2])


def test_mixup_targets_are_convex_combinations_summing_to_one():
    images = _batch(n=8)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    mixed, targets = mixup(images, y, np.random.default_rng(0), alpha=0.4, num_classes=3)
    assert targets.shape == (8, 3) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(targets >= 0) and np.all(targets <= 1)
    # each image is the same blend of two batch images as its target is of their labels
    rng = np.random.default_rng(0)
    lam = rng.beta(0.4, 0.4, size=8).astype(np.float32)
    partner = rng.permutation(8)
    one_hot = np.eye(3, dtype=np.float32)[y]
    np.testing.assert_allclose(targets, lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[partner], rtol=1e-6)
    np.testing.assert_allclose(mixed, lam[:, None, None] * images + (1 - lam[:, None, None]) * images[partner],
                               rtol=1e-6)


def test_mixup_of_multi_hot_targets_and_of_several_kinds():
    y = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]], dtype=np.float32)
    images = {"mel": _batch(n=4), "chroma": _batch(n=4, height=5, seed=2)}
    mixed, targets = mixup(images, y, np.random.default_rng(1), alpha=1.0)
    assert set(mixed) == {"mel", "chroma"}
    assert np.all(targets >= 0) and np.all(targets <= 1)
    # every mixed target lies between the smallest and largest of the batch's labels per genre,
    # and the kinds were blended with the same weights: their ratio to the inputs agrees
    rng = np.random.default_rng(1)
    lam = rng.beta(1.0, 1.0, size=4)
    partner = rng.permutation(4)
    np.testing.assert_allclose(targets, lam[:, None] * y + (1 - lam[:, None]) * y[partner], rtol=1e-6)
    for kind, arr in images.items():
        np.testing.assert_allclose(mixed[kind], lam[:, None, None] * arr + (1 - lam[:, None, None]) * arr[partner],
                                   rtol=1e-5)


def test_same_seed_same_batch_other_seed_or_batch_other_draws():
    images, y = _batch(n=8), np.arange(8) % 2
    aug = Augmentation(time_masks=2, freq_masks=1, mask_width=3, time_shift=0.2, mixup=0.3, seed=7)
    a = aug.apply(images, y, epoch=1, batch=2, num_classes=2)
    b = Augmentation(**{**aug.settings(), "seed": 7}).apply(images, y, epoch=1, batch=2, num_classes=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = aug.apply(images, y, epoch=1, batch=3, num_classes=2)
    d = Augmentation(**{**aug.settings(), "seed": 8}).apply(images, y, epoch=1, batch=2, num_classes=2)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])


def test_off_by_default_leaves_the_batch_alone():
    aug = Augmentation()
    assert not aug.active
    images, y = _batch(), np.zeros(6, dtype=int)
    out, targets = aug.apply(images, y, epoch=0, batch=0)
    assert out is images and targets is y


def test_shift_is_the_same_fraction_for_every_kind_of_a_segment():
    mel = np.tile(np.arange(40, dtype=np.float32), (3, 8, 1)) + 1
    chroma = np.tile(np.arange(40, dtype=np.float32), (3, 4, 1)) + 1
    out, _ = Augmentation(time_shift=0.5, seed=3).apply({"mel": mel, "chroma": chroma}, np.zeros(3),
                                                         epoch=0, batch=0)
    np.testing.assert_array_equal(out["mel"][:, 0, :], out["chroma"][:, 0, :])


@pytest.mark.parametrize("name,value", [("time_masks", -1), ("freq_masks", 1.5), ("mask_width", 0),
                                        ("time_shift", 1.0), ("time_shift", float("nan")),
                                        ("time_shift_mode", "wrap"), ("mixup", -0.1)])
def test_bad_values_are_refused_naming_them(name, value):
    with pytest.raises(ConfigError, match=f"{name}=") as info:
        Augmentation(**{name: value})
    assert info.value.param == name


def test_masks_that_do_not_fit_are_refused_naming_the_image():
    aug = Augmentation(freq_masks=3, mask_width=5)
    aug.check_image((16, 130), "mel")
    with pytest.raises(ConfigError, match="freq_masks=3.*chroma.*12 rows"):
        aug.check_image((12, 130), "chroma")
