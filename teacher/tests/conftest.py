import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, so `import teacher` works


@pytest.fixture(autouse=True)
def _one_thread():
    # tests stay light: the machine may be training at the same time
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    yield


@pytest.fixture
def randomise_bn():
    """Give every BatchNorm non-trivial statistics (and, with bias=True, biases), so folding and parity are
    really exercised. Deterministic (seed 0)."""

    def apply(model, bias=False):
        g = torch.Generator().manual_seed(0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if bias:
                    m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)

    return apply
