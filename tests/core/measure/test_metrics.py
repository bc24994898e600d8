import numpy as np
import pytest
from skimage.metrics import structural_similarity

from galviewer.core.measure import psnr, ssim
from galviewer.core.psf.degrade import degrade
from galviewer.errors import ParameterError
from tests.helpers import galaxy


def _pair(noise, seed=0):
    gt = galaxy((64, 64), 32, 32, flux=1.0, r=2.0)
    gt = (gt - gt.min()) / np.ptp(gt)
    lq = degrade(gt, noise_rms=noise, rng=np.random.default_rng(seed)).lq
    return gt, lq


def test_psnr_definition_uses_gt_peak():
    gt = np.zeros((8, 8))
    gt[4, 4] = 2.0
    x = gt + 0.1
    assert psnr(gt, x) == pytest.approx(10 * np.log10(4.0 / 0.01))
    assert psnr(gt, gt) == float("inf")


@pytest.mark.parametrize("noise", [0.0, 0.01, 0.05, 0.1])
def test_ssim_matches_scikit_image(noise):
    gt, lq = _pair(noise)
    ref = structural_similarity(gt, lq, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1.0)
    assert ssim(gt, lq) == pytest.approx(ref, abs=1e-6)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_metrics_order_noise_levels():
    gt = _pair(0.0)[0]
    scores = [(psnr(gt, _pair(n)[1]), ssim(gt, _pair(n)[1])) for n in (0.01, 0.05, 0.1)]
    assert scores[0][0] > scores[1][0] > scores[2][0]
    assert scores[0][1] > scores[1][1] > scores[2][1]


def test_metric_errors():
    with pytest.raises(ParameterError, match="x"):
        psnr(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ParameterError, match="gt"):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ParameterError, match="gt"):
        ssim(np.eye(5), np.eye(5))
    with pytest.raises(ParameterError, match="x"):
        ssim(np.ones((16, 16)), np.full((16, 16), np.nan))
