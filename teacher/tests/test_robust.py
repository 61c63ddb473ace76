import numpy as np
import pytest

from teacher.robust import (ARTEFACT_CODE, RobustConfig, add_artefacts, aspect_crop, ita, lab_to_rgb, rgb_to_lab,
                            robust_sample, shift_skin_tone, zoom_out)


def disc(w, h, cx, cy, r):
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)
    img = np.where(m[..., None] == 1, np.array([90, 55, 40], np.uint8), np.array([225, 180, 160], np.uint8))
    return img.astype(np.uint8), m


def test_zoom_out_disc_shrinks_to_expected_area_and_position():
    img, m = disc(100, 100, 49.5, 49.5, 20)
    z = zoom_out(img, m, (150, 200), 0.02, np.random.default_rng(3))
    k = np.sqrt(0.02 * 200 * 150 / m.sum())  # hand-computed scale: 0.691 -> a 69 x 69 image
    assert z["scale"] == pytest.approx(k)
    x0, y0, sw, sh = z["placed"]
    assert sw == round(100 * k)
    assert z["image"].shape == (150, 200, 3) and z["mask"].shape == (150, 200)
    assert abs(z["share"] - 0.02) < 0.002
    ys, xs = np.nonzero(z["mask"])
    assert abs(xs.mean() - (x0 + (sw - 1) / 2)) < 0.75 and abs(ys.mean() - (y0 + (sh - 1) / 2)) < 0.75
    # aligned: dark exactly where labelled, up to an anti-aliased rim
    dark = z["image"][..., 0] < (90 + 225) / 2
    assert (dark != (z["mask"] == 1)).sum() <= np.pi * 14
    # fill is skin
    outside = np.ones((150, 200), bool)
    outside[y0:y0 + sh, x0:x0 + sw] = False
    assert (z["image"][outside][:, 0] == 225).all() and (z["mask"][outside] == 0).all()


def test_zoom_out_border_lesion_is_not_copied_into_the_fill_and_is_deterministic():
    img, m = disc(60, 60, 0, 30, 15)
    a = zoom_out(img, m, (120, 160), 0.03, np.random.default_rng(1), band=0.5)
    b = zoom_out(img, m, (120, 160), 0.03, np.random.default_rng(1), band=0.5)
    assert (a["image"] == b["image"]).all() and (a["mask"] == b["mask"]).all()
    x0, y0, sw, sh = a["placed"]
    outside = np.ones((120, 160), bool)
    outside[y0:y0 + sh, x0:x0 + sw] = False
    assert (a["mask"][outside] == 0).all() and (a["image"][outside][:, 0] == 225).all()


def test_aspect_crop_keeps_a_disc_round():
    img, m = disc(120, 120, 60, 60, 12)
    for seed in range(5):
        im, mm = aspect_crop(img, m, (60, 80), np.random.default_rng(seed), min_area=0.9)
        assert im.shape == (60, 80, 3)
        ys, xs = np.nonzero(mm)
        assert abs((xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1) - 1) < 0.15


def test_artefacts_never_on_the_lesion_and_mask_unchanged():
    seen = set()
    for seed in range(30):
        img, m = disc(160, 120, 40 + 2 * seed, 60, 18)
        a = add_artefacts(img, m, np.random.default_rng(seed), 0.8, 0.6, 0.6, 0.5)
        b = add_artefacts(img, m, np.random.default_rng(seed), 0.8, 0.6, 0.6, 0.5)
        assert (a["image"] == b["image"]).all()
        assert (a["mask"] == m).all()
        hard = np.isin(a["artefact_map"], [ARTEFACT_CODE["sticker"], ARTEFACT_CODE["ruler"], ARTEFACT_CODE["vignette"]])
        assert not (hard & (m == 1)).any()
        seen |= {r["kind"] for r in a["artefacts"]}
    assert seen == {"sticker", "ruler", "vignette", "hair"}


def test_lab_matches_scikit_image_and_round_trips():
    skimage = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.uint8)
    ours = rgb_to_lab(rgb)
    ref = skimage.rgb2lab(rgb[None].astype(np.float64) / 255)[0]
    # scikit-image rounds the D65 white point and sRGB matrix slightly differently: within 0.01 L*a*b* units
    assert np.abs(ours - ref).max() < 1e-2
    assert (lab_to_rgb(ours) == rgb).all()


def test_skin_tone_reaches_target_ita_and_lesion_stays_darker():
    img, m = disc(60, 40, 30, 20, 8)
    for target in (20, 0, -30):
        out, before, after = shift_skin_tone(img, m, target)
        lab = rgb_to_lab(out)
        assert abs(ita(lab[0, 0, 0], lab[0, 0, 2]) - target) < 2
        assert before > 40
        assert lab[20, 30, 0] < lab[0, 0, 0] - 5


def test_robust_sample_is_seeded_and_sized():
    img, m = disc(120, 90, 60, 45, 20)
    cfg = RobustConfig(enabled=True, p_zoom_out=0.5, p_artefacts=1.0, p_skin_tone=0.5)
    a = robust_sample(img, m, (48, 64), cfg, np.random.default_rng(5))
    b = robust_sample(img, m, (48, 64), cfg, np.random.default_rng(5))
    assert a[0].shape == (48, 64, 3) and a[1].shape == (48, 64)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
