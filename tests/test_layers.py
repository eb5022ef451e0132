"""course_lib.layers against torch.nn: same weights in, same numbers and gradients out.

References: each torch.nn counterpart (nn.Linear, nn.Embedding, nn.LayerNorm, nn.RMSNorm, nn.ReLU,
nn.GELU, nn.SiLU) loaded with our layer's state_dict, so the parameter names must agree too;
the written-out functions (linear, layer_norm, rms_norm, relu, gelu, silu) are what is compared, never
PyTorch's fused kernel with PyTorch (fast=True is tested where our code surrounds the kernel:
the norms' dtype handling, the MLP's wiring);
hand-computed values where the formula is short; the moments of the default initialisation
(Uniform(-b, b) has mean 0 and standard deviation b/sqrt(3)).

Tolerance: float32 results agree to ATOL/RTOL below. Both sides compute the same formula with
different kernels (addmm against matmul-then-add, a fused norm against separate operations),
which differ in the last bits: a few float32 ulps (the ulp of 1.0 is 1.2e-7).
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.device import get_device
from course_lib.layers import (
    GELU, MLP, Embedding, LayerNorm, Linear, ReLU, RMSNorm, SiLU, SwiGLU, gelu, layer_norm, relu, rms_norm, silu,
)

DEVICE = get_device()
ATOL = 1e-5
RTOL = 1e-5
# Leading dimensions in front of the feature dimension: none, then 1 to 4 of them.
LEADING = [(), (3,), (2, 3), (2, 3, 4), (2, 1, 3, 2)]
# Norms have two paths, PyTorch's fused kernel and the written-out formula, with our dtype handling
# around both: their tests run both.
both_paths = pytest.mark.parametrize("fast", [True, False], ids=["fused", "written-out"])


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same random numbers on every run."""
    torch.manual_seed(0)


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


def randomize_(module: nn.Module) -> nn.Module:
    """Give every parameter random values, so that e.g. a norm's weight 1 and bias 0 hide nothing."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


def assert_same_function(ours: nn.Module, ref: nn.Module, x: torch.Tensor) -> None:
    """Same output, same gradient with respect to x and to every parameter (matched by name)."""
    x_ours = x.clone().requires_grad_(x.is_floating_point())
    x_ref = x.clone().requires_grad_(x.is_floating_point())
    y_ours, y_ref = ours(x_ours), ref(x_ref)
    close(y_ours, y_ref)
    upstream = torch.randn_like(y_ref)  # a random upstream gradient checks every output's backward
    (y_ours * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    if x.is_floating_point():
        close(x_ours.grad, x_ref.grad)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, ref_params[name].grad)


# --------------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leading", LEADING)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(leading, bias):
    ours = Linear(6, 5, bias=bias, fast=False, device=DEVICE)
    ref = nn.Linear(6, 5, bias=bias, device=DEVICE)
    ref.load_state_dict(ours.state_dict())
    assert_same_function(ours, ref, torch.randn(*leading, 6, device=DEVICE))


@both_paths
def test_linear_hand_example(fast):
    layer = Linear(2, 1, fast=fast, device=DEVICE)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
        layer.bias.fill_(0.5)
    close(layer(torch.tensor([3.0, 4.0], device=DEVICE)), torch.tensor([11.5], device=DEVICE))


def test_linear_weight_shape_is_out_by_in():
    layer = Linear(6, 5, device=DEVICE)
    assert layer.weight.shape == (5, 6) and layer.bias.shape == (5,)
    assert Linear(6, 5, bias=False).bias is None


@pytest.mark.parametrize("bias", [True, False])
def test_linear_init_draws_what_torch_draws(bias):
    """From the same random state, PyTorch's default init (kaiming_uniform_ with a=sqrt(5), then the
    bias) produces the same numbers as ours: the same distribution, drawn in the same order."""
    torch.manual_seed(1234)
    ours = Linear(37, 11, bias=bias, device=DEVICE)
    torch.manual_seed(1234)
    ref = nn.Linear(37, 11, bias=bias, device=DEVICE)
    for (name, p), (ref_name, p_ref) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert name == ref_name
        close(p.detach(), p_ref.detach())


def test_linear_init_statistics():
    in_features, out_features = 1024, 2048
    torch.manual_seed(0)
    layer = Linear(in_features, out_features, device=DEVICE)
    bound = 1 / math.sqrt(in_features)
    w = layer.weight.detach().double()
    assert w.abs().max() <= bound and layer.bias.detach().abs().max() <= bound
    std = bound / math.sqrt(3)  # the standard deviation of Uniform(-bound, bound)
    # Over n = 2M draws the sample mean has standard error std/sqrt(n); 5 of those is a safe margin.
    assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel())
    assert w.std().item() == pytest.approx(std, rel=0.01)
    # The weights fill the interval: the extremes come within 0.1% of the bound.
    assert w.max() > 0.999 * bound and w.min() < -0.999 * bound


def test_linear_under_autocast_matches_torch():
    """Under torch.autocast, float32 weights meet lower-precision activations by design."""
    ours = Linear(16, 8, fast=False, device=DEVICE)
    ref = nn.Linear(16, 8, device=DEVICE)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 16, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        y_ours, y_ref = ours(x), ref(x)
    assert y_ours.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y_ours, y_ref, atol=1e-2, rtol=1e-2)  # bfloat16 keeps 8 bits


def test_linear_errors_say_what_is_wrong():
    layer = Linear(64, 10, device=DEVICE)
    with pytest.raises(ValueError, match=r"^Linear expected x of shape \(\.\.\., 64\), got \(8, 32\)"):
        layer(torch.randn(8, 32, device=DEVICE))
    with pytest.raises(ValueError, match=r"got \(\)"):
        layer(torch.tensor(1.0, device=DEVICE))
    with pytest.raises(TypeError, match=r"floating-point x, got torch.int64.*x.float\(\)"):
        layer(torch.ones(8, 64, dtype=torch.long, device=DEVICE))
    with pytest.raises(TypeError, match=r"torch.float32 parameters but x is torch.float64"):
        layer(torch.randn(8, 64, dtype=torch.float64, device=DEVICE))


# --------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leading", LEADING)
def test_embedding_matches_torch(leading):
    ours = Embedding(10, 4, device=DEVICE)
    ref = nn.Embedding(10, 4, device=DEVICE)
    ref.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 10, leading, device=DEVICE)  # repeated ids: their gradients must add up
    assert_same_function(ours, ref, ids)
    assert ours(ids).shape == (*leading, 4)


def test_embedding_hand_example():
    emb = Embedding(3, 2, device=DEVICE)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]))
    expected = torch.tensor([[3.0, 4.0], [1.0, 2.0], [3.0, 4.0]], device=DEVICE)
    close(emb(torch.tensor([2, 1, 2], device=DEVICE)), expected)


def test_embedding_init_is_standard_normal():
    torch.manual_seed(7)
    ours = Embedding(50, 8, device=DEVICE)
    torch.manual_seed(7)
    ref = nn.Embedding(50, 8, device=DEVICE)
    close(ours.weight.detach(), ref.weight.detach())  # the same draws as torch's default
    big = Embedding(2000, 512, device=DEVICE).weight.detach().double()  # 1M draws
    assert abs(big.mean().item()) < 5 / math.sqrt(big.numel())
    assert big.std().item() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("bad_id", [10, 11, -1])
def test_embedding_rejects_ids_out_of_range(bad_id):
    emb = Embedding(10, 4, device=DEVICE)
    ids = torch.tensor([[1, 2], [bad_id, 3]], device=DEVICE)
    with pytest.raises(IndexError, match=rf"token id {bad_id}, outside 0\.\.9.*10 rows"):
        emb(ids)


def test_embedding_range_check_can_be_turned_off():
    """check_range=False skips the check (and its GPU sync): -1 then indexes from the end, as in torch."""
    emb = Embedding(10, 4, check_range=False, device=DEVICE)
    close(emb(torch.tensor([-1], device=DEVICE)), emb.weight[[9]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_embedding_rejects_non_integer_ids(dtype):
    emb = Embedding(10, 4, device=DEVICE)
    with pytest.raises(TypeError, match=r"integer token ids.*dtype=torch.long"):
        emb(torch.ones(3, dtype=dtype, device=DEVICE))


def test_embedding_accepts_int32_and_empty_ids():
    emb = Embedding(10, 4, device=DEVICE)
    ids = torch.tensor([3, 9, 0], dtype=torch.int32, device=DEVICE)
    close(emb(ids), emb.weight[[3, 9, 0]])
    assert emb(torch.zeros(2, 0, dtype=torch.long, device=DEVICE)).shape == (2, 0, 4)


# --------------------------------------------------------------------------------------------
# LayerNorm and RMSNorm
# --------------------------------------------------------------------------------------------


@both_paths
@pytest.mark.parametrize("leading", LEADING)
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(leading, bias, fast):
    ours = randomize_(LayerNorm(8, eps=1e-5, bias=bias, fast=fast, device=DEVICE))
    ref = nn.LayerNorm(8, eps=1e-5, bias=bias, device=DEVICE)
    ref.load_state_dict(ours.state_dict())
    # An offset and a scale far from 0 and 1, so that normalising actually has work to do.
    assert_same_function(ours, ref, 3.0 * torch.randn(*leading, 8, device=DEVICE) + 5.0)


@both_paths
@pytest.mark.parametrize("leading", LEADING)
def test_rmsnorm_matches_torch(leading, fast):
    ours = randomize_(RMSNorm(8, eps=1e-6, fast=fast, device=DEVICE))
    ref = nn.RMSNorm(8, eps=1e-6, device=DEVICE)
    ref.load_state_dict(ours.state_dict())
    assert_same_function(ours, ref, 3.0 * torch.randn(*leading, 8, device=DEVICE) + 5.0)


@both_paths
def test_norms_hand_examples(fast):
    # LayerNorm [1, 2, 3]: mean 2, variance 2/3 -> [-1, 0, 1] / sqrt(2/3).
    s = math.sqrt(2 / 3 + 1e-5)
    close(
        LayerNorm(3, fast=fast, device=DEVICE)(torch.tensor([1.0, 2.0, 3.0], device=DEVICE)),
        torch.tensor([-1 / s, 0.0, 1 / s], device=DEVICE),
    )
    # RMSNorm [3, 4]: mean square (9 + 16) / 2 = 12.5.
    r = math.sqrt(12.5 + 1e-5)
    close(
        RMSNorm(2, fast=fast, device=DEVICE)(torch.tensor([3.0, 4.0], device=DEVICE)),
        torch.tensor([3 / r, 4 / r], device=DEVICE),
    )


def test_norms_start_as_pure_normalisation():
    ln, rms = LayerNorm(16, device=DEVICE), RMSNorm(16, device=DEVICE)
    assert torch.equal(ln.weight, torch.ones(16, device=DEVICE))
    assert torch.equal(ln.bias, torch.zeros(16, device=DEVICE))
    assert torch.equal(rms.weight, torch.ones(16, device=DEVICE))
    assert [name for name, _ in rms.named_parameters()] == ["weight"]


def test_layernorm_is_accurate_for_a_large_mean():
    """The written-out path centres before squaring: with mean 1e4 and spread 1, E[x²] - mean² would
    cancel catastrophically."""
    x = 1e4 + torch.randn(4, 64, device=DEVICE)
    expected = nn.functional.layer_norm(x.double(), (64,)).float()  # float64 as the reference
    # Near 1e4, float32 numbers are 1e-3 apart, so the float32 mean alone is off by about 1e-3;
    # 1e-2 allows for that, while the E[x²] - mean² shortcut is off by whole units here.
    torch.testing.assert_close(LayerNorm(64, fast=False, device=DEVICE)(x), expected, atol=1e-2, rtol=1e-2)


@both_paths
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_norms_keep_bfloat16_but_compute_in_float32(norm, fast):
    """A bfloat16 input gives a bfloat16 output that rounds torch's float32 answer, not a worse one."""
    x = (3.0 * torch.randn(4, 512, device=DEVICE) + 1.0).bfloat16()
    if norm == "layernorm":
        ours, ref = LayerNorm(512, fast=fast, device=DEVICE), nn.LayerNorm(512, device=DEVICE)
    else:
        ours, ref = RMSNorm(512, eps=1e-5, fast=fast, device=DEVICE), nn.RMSNorm(512, eps=1e-5, device=DEVICE)
    ours, ref = ours.bfloat16(), ref.float()
    y = ours(x)
    assert y.dtype == torch.bfloat16
    expected = ref(x.float()).bfloat16()
    # Only the final rounding to bfloat16 differs: at most one bfloat16 ulp (2^-7 relative).
    torch.testing.assert_close(y.float(), expected.float(), atol=1e-6, rtol=2**-7)


@pytest.mark.parametrize("norm", [LayerNorm, RMSNorm])
def test_norm_errors_say_what_is_wrong(norm):
    with pytest.raises(
        ValueError, match=rf"^{norm.__name__} expected x of shape \(\.\.\., 16\), got \(2, 8\)"
    ):
        norm(16, device=DEVICE)(torch.randn(2, 8, device=DEVICE))


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

# name -> (our module given fast, torch.nn's); fast=False runs the written-out function
ACTIVATION_PAIRS = {
    "relu": (ReLU, nn.ReLU()),
    "gelu": (GELU, nn.GELU()),
    "gelu_tanh": (functools.partial(GELU, approximate="tanh"), nn.GELU(approximate="tanh")),
    "silu": (SiLU, nn.SiLU()),
}


@pytest.mark.parametrize("name", ACTIVATION_PAIRS)
@pytest.mark.parametrize("leading", LEADING)
def test_activation_matches_torch(name, leading):
    ours, ref = ACTIVATION_PAIRS[name]
    assert_same_function(ours(fast=False), ref, 3.0 * torch.randn(*leading, 5, device=DEVICE))


@pytest.mark.parametrize("name", ACTIVATION_PAIRS)
def test_activation_at_extreme_inputs(name):
    """No overflow: large inputs give torch's values and finite gradients."""
    make_ours, ref = ACTIVATION_PAIRS[name]
    ours = make_ours(fast=False)
    x = torch.tensor([-1e4, -1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0, 1e4], device=DEVICE)
    assert_same_function(ours, ref, x)
    x = x.clone().requires_grad_()
    ours(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_activation_hand_values():
    phi_1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # the standard normal CDF at 1
    sigmoid_1 = 1 / (1 + math.exp(-1))
    x = torch.tensor([-1.0, 0.0, 1.0], device=DEVICE)
    close(ReLU()(x), torch.tensor([0.0, 0.0, 1.0], device=DEVICE))
    close(gelu(x), torch.tensor([-(1 - phi_1), 0.0, phi_1], device=DEVICE))
    close(silu(x), torch.tensor([-(1 - sigmoid_1), 0.0, sigmoid_1], device=DEVICE))
    # The tanh approximation is close to the exact GELU but not equal to it.
    grid = torch.linspace(-6, 6, 1001, device=DEVICE)
    gap = (gelu(grid, "tanh") - gelu(grid)).abs().max().item()
    assert 1e-5 < gap < 1e-3


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match=r"'none' or 'tanh', got 'fast'"):
        GELU(approximate="fast")
    with pytest.raises(ValueError, match=r"'none' or 'tanh', got 'fast'"):
        gelu(torch.zeros(1), approximate="fast")


# --------------------------------------------------------------------------------------------
# MLP and SwiGLU
# --------------------------------------------------------------------------------------------

TORCH_ACTIVATIONS = {
    "relu": nn.ReLU(),
    "gelu": nn.GELU(),
    "gelu_tanh": nn.GELU(approximate="tanh"),
    "silu": nn.SiLU(),
}


class TorchMLP(nn.Module):
    """The same block from torch.nn parts, with our parameter names."""

    def __init__(self, d_model: int, d_hidden: int, activation: str, bias: bool):
        super().__init__()
        self.up_proj = nn.Linear(d_model, d_hidden, bias=bias, device=DEVICE)
        self.act = TORCH_ACTIVATIONS[activation]
        self.down_proj = nn.Linear(d_hidden, d_model, bias=bias, device=DEVICE)

    def forward(self, x):
        return self.down_proj(self.act(self.up_proj(x)))


class TorchSwiGLU(nn.Module):
    def __init__(self, d_model: int, d_hidden: int, bias: bool):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_hidden, bias=bias, device=DEVICE)
        self.up_proj = nn.Linear(d_model, d_hidden, bias=bias, device=DEVICE)
        self.down_proj = nn.Linear(d_hidden, d_model, bias=bias, device=DEVICE)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


@both_paths
@pytest.mark.parametrize("activation", TORCH_ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(), (2, 3), (2, 1, 3, 2)])
def test_mlp_matches_torch(activation, bias, leading, fast):
    ours = MLP(8, 24, activation=activation, bias=bias, fast=fast, device=DEVICE)
    ref = TorchMLP(8, 24, activation, bias)
    ref.load_state_dict(ours.state_dict())
    assert_same_function(ours, ref, torch.randn(*leading, 8, device=DEVICE))


@both_paths
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("leading", [(), (2, 3), (2, 1, 3, 2)])
def test_swiglu_matches_torch(bias, leading, fast):
    ours = SwiGLU(8, 24, bias=bias, fast=fast, device=DEVICE)
    ref = TorchSwiGLU(8, 24, bias)
    ref.load_state_dict(ours.state_dict())
    assert_same_function(ours, ref, torch.randn(*leading, 8, device=DEVICE))


def test_mlp_defaults_are_gpt2s():
    """GPT-2 defaults (4x wider, GELU, biases): 768·3072 + 3072 + 3072·768 + 768 parameters."""
    mlp = MLP(768)
    assert mlp.up_proj.weight.shape == (3072, 768)
    assert isinstance(mlp.act, GELU) and mlp.act.approximate == "none"
    assert sum(p.numel() for p in mlp.parameters()) == 4_722_432
    assert (
        sum(p.numel() for p in SwiGLU(4096, 11008, device="meta").parameters()) == 3 * 4096 * 11008
    )  # no biases


def test_mlp_rejects_unknown_activation():
    with pytest.raises(
        ValueError, match=r"unknown activation 'swish'; choose one of \['gelu', 'gelu_tanh', 'relu', 'silu'\]"
    ):
        MLP(8, activation="swish")


def test_norm_functions_take_torch_functional_arguments():
    """layer_norm and rms_norm accept F.layer_norm's and F.rms_norm's arguments, so that a module
    passes the same ones to either; against torch.nn.functional in float64, with and without
    weight and bias."""
    x = 3.0 * torch.randn(2, 5, 8, dtype=torch.float64, device=DEVICE) + 5.0
    w, b = torch.randn(2, 8, dtype=torch.float64, device=DEVICE)
    for weight, bias in [(None, None), (w, None), (w, b)]:
        expected = F.layer_norm(x, (8,), weight, bias, 1e-5)
        torch.testing.assert_close(layer_norm(x, (8,), weight, bias, 1e-5), expected)
        torch.testing.assert_close(rms_norm(x, (8,), weight, 1e-6), F.rms_norm(x, (8,), weight, 1e-6))


def test_modules_choose_their_path_in_forward():
    """`fast` is read at every call, so flipping it on a built module switches the path (the
    chapters build a module once and compare its two paths)."""
    x = torch.tensor([-1.0, 0.0, 2.0], device=DEVICE)
    for module, written_out in [(ReLU(), relu), (GELU(), gelu), (SiLU(), silu)]:
        module.fast = False
        assert "fast=False" in repr(module)
        torch.testing.assert_close(module(x), written_out(x), atol=0, rtol=0)  # the same lines, bit for bit
