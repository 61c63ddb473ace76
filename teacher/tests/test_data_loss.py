import torch

from teacher.data import AugConfig, augment, synthetic_data, to_tensors
from teacher.losses import boundary_weights, deep_supervision_loss, structure_loss


def test_augmentation_keeps_image_and_mask_aligned():
    imgs, masks = synthetic_data(8, (64, 96), seed=3)
    x, y = to_tensors(imgs, masks)
    # an image that *is* its mask: after the shared warp, the image thresholded must equal the mask
    img = y.repeat(1, 3, 1, 1)
    cfg = AugConfig(hflip=0.5, vflip=0.5, rotate_deg=45, scale=(0.7, 1.4), translate=0.1, geometric_p=1.0)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        xa, ya = augment(img, y, cfg, g, colour=False)
        assert torch.equal((xa[:, :1] > 0.5).float(), ya)
        assert ya.shape == y.shape and xa.shape == img.shape
    # and the augmentation really moves things
    g = torch.Generator().manual_seed(0)
    _, ya = augment(img, y, cfg, g, colour=False)
    assert not torch.equal(ya, y)


def test_hflip_only_is_an_exact_mirror():
    imgs, masks = synthetic_data(4, (64, 96), seed=4)
    x, y = to_tensors(imgs, masks)
    cfg = AugConfig(hflip=1.0, vflip=0.0, geometric_p=0.0)
    xa, ya = augment(x, y, cfg, torch.Generator().manual_seed(0), colour=False)
    assert torch.allclose(xa, x.flip(-1), atol=1e-5)
    assert torch.equal(ya, y.flip(-1))


def test_colour_jitter_leaves_mask_and_range():
    imgs, masks = synthetic_data(4, (64, 96), seed=5)
    x, y = to_tensors(imgs, masks)
    cfg = AugConfig(hflip=0, vflip=0, geometric_p=0.0, brightness=0.5, contrast=0.5, saturation=0.5)
    xa, ya = augment(x, y, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(ya, y)
    assert xa.min() >= 0 and xa.max() <= 1 and not torch.allclose(xa, x)


def test_augmentation_is_a_function_of_the_generator():
    imgs, masks = synthetic_data(4, (64, 96), seed=6)
    x, y = to_tensors(imgs, masks)
    a = augment(x, y, AugConfig(), torch.Generator().manual_seed(7))
    b = augment(x, y, AugConfig(), torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_structure_loss_prefers_the_truth_and_weights_the_border():
    y = torch.zeros(1, 1, 64, 64)
    y[..., 16:48, 16:48] = 1
    good = structure_loss((y * 2 - 1) * 10, y)
    bad = structure_loss(-(y * 2 - 1) * 10, y)
    assert float(good) < 0.05 < float(bad)
    w = boundary_weights(y)
    assert float(w[0, 0, 16, 32]) > float(w[0, 0, 32, 32]) and float(w[0, 0, 0, 0]) == 1.0


def test_deep_supervision_weights():
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    outs = {"final": torch.randn(2, 1, 32, 32), "aux16": torch.randn(2, 1, 32, 32), "aux_t": torch.randn(2, 1, 32, 32)}
    want = 0.5 * structure_loss(outs["final"], y) + 0.2 * structure_loss(outs["aux16"], y) \
        + 0.3 * structure_loss(outs["aux_t"], y)
    assert torch.allclose(deep_supervision_loss(outs, y), want)
    assert torch.allclose(deep_supervision_loss({"final": outs["final"]}, y), structure_loss(outs["final"], y))
