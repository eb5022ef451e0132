"""What 02_linear's checks do with the learner's `Linear` beyond a plain call (the learner's
side: the standard library and torch only, copied into the sandbox next to learner_side.py).

Each adapter gets the class (the learner's, or torch.nn.Linear for the reference: both are
called exactly alike), its constructor arguments, and the check's inputs:

    >>> import torch
    >>> forward(torch.nn.Linear, [2, 1], {}, weight=torch.tensor([[3.0, 4.0]]), bias=torch.tensor([1.0]),
    ...         x=torch.tensor([1.0, 2.0]))
    tensor([12.], grad_fn=<ViewBackward0>)
"""

from __future__ import annotations

import torch

from ..learner_side import CheckFailure, returns_tensor


def build(linear_class: type, args: list, kwargs: dict) -> torch.nn.Module:
    """Linear(*args, **kwargs) as a torch.nn.Module. The layer draws its initial values from
    torch's global generator; fork_rng puts it back, so a check cell leaves the learner's random
    numbers as they were."""
    with torch.random.fork_rng(devices=[]):
        layer = linear_class(*args, **kwargs)
    if not isinstance(layer, torch.nn.Module):
        raise CheckFailure(f"Linear should be a torch.nn.Module (write `class Linear(nn.Module)`), got {type(layer).__name__}")
    return layer


def _parameter(layer: torch.nn.Module, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """layer.<name>, a tensor of the given shape, or a CheckFailure that says what it is instead."""
    value = getattr(layer, name, None)
    if not isinstance(value, torch.Tensor):
        raise CheckFailure(f"layer.{name} should be a tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise CheckFailure(f"layer.{name} should have shape {shape}, got {tuple(value.shape)}")
    return value


def _with_parameters(linear_class: type, args: list, kwargs: dict, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.nn.Module:
    """The layer with its parameters overwritten, so that what is checked is the computation,
    whatever the initialisation drew."""
    layer = build(linear_class, args, kwargs)
    with torch.no_grad():  # setting parameters is not part of the computation to differentiate
        _parameter(layer, "weight", tuple(weight.shape)).copy_(weight)
        if bias is not None:
            _parameter(layer, "bias", tuple(bias.shape)).copy_(bias)
    return layer


def parameters(linear_class: type, args: list, kwargs: dict) -> dict:
    """What a new layer registers: {"parameters": [[name, shape, dtype, requires_grad], ...]
    sorted by name, "bias": what layer.bias is ("Parameter", "None", or another type)}."""
    layer = build(linear_class, args, kwargs)
    rows = [[name, list(value.shape), str(value.dtype).removeprefix("torch."), bool(value.requires_grad)]
            for name, value in layer.named_parameters()]
    bias = getattr(layer, "bias", None)  # no attribute at all counts as no bias
    kind = "None" if bias is None else "Parameter" if isinstance(bias, torch.nn.Parameter) else type(bias).__name__
    return {"parameters": sorted(rows), "bias": kind}


def forward(linear_class: type, args: list, kwargs: dict, weight: torch.Tensor, bias: torch.Tensor | None,
            x: torch.Tensor) -> torch.Tensor:
    """The layer with these parameters, applied to x."""
    return _with_parameters(linear_class, args, kwargs, weight, bias)(x)


def gradients(linear_class: type, args: list, kwargs: dict, weight: torch.Tensor, bias: torch.Tensor | None,
              x: torch.Tensor, grad_output: torch.Tensor) -> list[dict]:
    """grad_output backpropagated through the layer by autograd: [x.grad, weight.grad,
    bias.grad] (without bias.grad for a layer without bias)."""
    layer = _with_parameters(linear_class, args, kwargs, weight, bias)
    x.requires_grad_(True)
    output = layer(x)
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        raise CheckFailure("the layer's output does not depend on x and the parameters through autograd "
                           "(no torch.no_grad(), .detach() or .data in forward)")
    if output.shape != grad_output.shape:
        raise CheckFailure(f"the layer's output has shape {tuple(output.shape)}, expected {tuple(grad_output.shape)}")
    output.backward(grad_output)
    grads = [returns_tensor(x.grad, "Linear", floating=True, what="x.grad")]
    for name in ("weight", "bias") if bias is not None else ("weight",):
        grad = getattr(layer, name).grad
        if grad is None:
            raise CheckFailure(f"layer.{name}.grad is None after backward: is {name} an nn.Parameter used in forward?")
        grads.append(returns_tensor(grad, "Linear", floating=True, what=f"layer.{name}.grad"))
    return grads


def init_statistics(linear_class: type, args: list, kwargs: dict, seeds: list[int]) -> dict:
    """Statistics of a freshly built layer, drawn after torch.manual_seed(seeds[0]):
    {"weight": stats, "bias": stats} with stats {count, min, max, mean, std}; and
    "same_fraction", the fraction of weights identical when built after torch.manual_seed(seeds[1])
    (about 0 for a random initialisation)."""
    layers = []
    with torch.random.fork_rng(devices=[]):  # seeding here leaves the learner's generator alone
        for seed in seeds:
            torch.manual_seed(seed)
            layers.append(build(linear_class, args, kwargs))
    in_features, out_features = args
    stats = {}
    for name, shape in [("weight", (out_features, in_features)), ("bias", (out_features,))]:
        value = _parameter(layers[0], name, shape).detach().double()
        if not bool(torch.isfinite(value).all()):
            raise CheckFailure(f"layer.{name} contains NaN or infinity: initialise every entry")
        stats[name] = {"count": value.numel(), "min": value.min().item(), "max": value.max().item(),
                       "mean": value.mean().item(), "std": value.std().item()}
    second = _parameter(layers[1], "weight", (out_features, in_features)).detach()
    return {**stats, "same_fraction": (layers[0].weight.detach() == second).double().mean().item()}
