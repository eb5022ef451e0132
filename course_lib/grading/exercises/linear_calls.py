"""How the checks of exercise 02_linear call the learner's code (the learner's side).

The batch grader copies this file into its sandbox, next to learner_side.py, where course_lib
cannot be imported; besides the standard library it uses only torch. Each adapter takes the
learner's namespace and the check's inputs as plain data (numbers and nested lists: a weight
arrives as [[0.4, -0.2, 0.6, 0.1]]), builds float32 tensors from them, calls the learner's
`Linear` or `linear_backward`, and returns plain data: a tensor as {"shape", "dtype", "values"}
(the form course_lib/grading/compare.py compares), or raises CheckFailure with a message that
says what is wrong in the learner's terms.

    >>> import torch
    >>> namespace = {"linear_backward": lambda x, weight, g: (g @ weight, g.T @ x, g.sum(0))}
    >>> case = {"x": [[1.0, 2.0]], "weight": [[3.0, 4.0]], "grad_output": [[1.0]]}
    >>> call_linear_backward(namespace, cases=[case])[0][2]
    {'shape': [1], 'dtype': 'float32', 'values': [1.0]}

Every call gets fresh tensors, so code that changes its inputs in place changes nothing else.
"""

from __future__ import annotations


import torch

from ..learner_side import CheckFailure, learner_function, quote, tensor_data


def make_linear(namespace: dict, in_features: int, out_features: int, bias: bool) -> torch.nn.Module:
    """The learner's Linear(in_features, out_features), or (..., bias=False) when bias is False:
    Linear(4, 2) also checks that bias=True is the default."""
    linear_class = learner_function(namespace, "Linear")
    # The layer draws its initial values from torch's global generator; fork_rng puts the
    # generator back afterwards, so a check cell leaves the learner's random numbers as they were.
    with torch.random.fork_rng(devices=[]):
        layer = linear_class(in_features, out_features) if bias else linear_class(in_features, out_features, bias=False)
    if not isinstance(layer, torch.nn.Module):
        raise CheckFailure(
            f"Linear({in_features}, {out_features}) should be a torch.nn.Module (write `class Linear(nn.Module)`), "
            f"got {type(layer).__name__}"
        )
    return layer


def _call(in_features: int, out_features: int, bias: bool) -> str:
    """How a message names the layer: "Linear(4, 2)" or "Linear(4, 2, bias=False)"."""
    return f"Linear({in_features}, {out_features}" + ("" if bias else ", bias=False") + ")"


def _parameter(layer: torch.nn.Module, name: str, shape: tuple[int, ...], layer_call: str) -> torch.Tensor:
    """layer.<name>, a tensor of the given shape, or a CheckFailure that says what it is instead."""
    value = getattr(layer, name, None)
    if not isinstance(value, torch.Tensor):
        raise CheckFailure(f"{layer_call}.{name} should be a tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise CheckFailure(f"{layer_call}.{name} should have shape {shape}, got {tuple(value.shape)}")
    return value


def linear_with(namespace: dict, in_features: int, out_features: int, bias: bool, weight: list,
                bias_values: list | None) -> torch.nn.Module:
    """The learner's layer with its parameters overwritten by the given values, so that what is
    checked is the forward computation, whatever the initialisation drew."""
    layer = make_linear(namespace, in_features, out_features, bias)
    layer_call = _call(in_features, out_features, bias)
    with torch.no_grad():  # setting parameters is not part of the computation to differentiate
        _parameter(layer, "weight", (out_features, in_features), layer_call).copy_(torch.tensor(weight))
        if bias:
            _parameter(layer, "bias", (out_features,), layer_call).copy_(torch.tensor(bias_values))
    return layer


def _layer(namespace: dict, case: dict) -> torch.nn.Module:
    return linear_with(namespace, case["in_features"], case["out_features"], case["bias"], case["weight"],
                       case["bias_values"])


# ---- the adapters: (namespace, **inputs) -> plain data ------------------------------------------


def call_linear_parameters(namespace: dict, in_features: int, out_features: int, bias: bool) -> dict:
    """What the learner's new layer registers: {"parameters": [[name, shape, dtype, requires_grad],
    ...] sorted by name, "bias": what layer.bias is ("Parameter", "None", or another type)}."""
    layer = make_linear(namespace, in_features, out_features, bias)
    rows = [
        [name, list(value.shape), str(value.dtype).removeprefix("torch."), bool(value.requires_grad)]
        for name, value in layer.named_parameters()
    ]
    bias_value = getattr(layer, "bias", None)  # no attribute at all counts as no bias
    if bias_value is None:
        kind = "None"
    elif isinstance(bias_value, torch.nn.Parameter):
        kind = "Parameter"
    else:
        kind = type(bias_value).__name__
    return {"parameters": sorted(rows), "bias": kind}


def call_linear(namespace: dict, cases: list) -> list[dict]:
    """For each case {in_features, out_features, bias, weight, bias_values, x}: the learner's
    layer with those parameters, applied to x."""
    results = []
    for case in cases:
        output = _layer(namespace, case)(torch.tensor(case["x"]))
        layer_call = _call(case["in_features"], case["out_features"], case["bias"])
        results.append(tensor_data(output, f"the output of {layer_call}", floating=True))
    return results


def call_linear_gradients(namespace: dict, cases: list) -> list[list[dict]]:
    """For each case (as call_linear's, plus grad_output): backpropagate grad_output through the
    learner's layer with autograd; [x.grad, weight.grad, bias.grad] (without bias.grad if the
    layer has no bias)."""
    results = []
    for case in cases:
        layer = _layer(namespace, case)
        x = torch.tensor(case["x"], requires_grad=True)
        output = layer(x)
        layer_call = _call(case["in_features"], case["out_features"], case["bias"])
        if not isinstance(output, torch.Tensor) or output.grad_fn is None:
            raise CheckFailure(
                f"the output of {layer_call} does not depend on x and the parameters through autograd "
                "(no torch.no_grad(), .detach() or .data in forward)"
            )
        grad_output = torch.tensor(case["grad_output"])
        if output.shape != grad_output.shape:
            raise CheckFailure(f"the output of {layer_call} has shape {tuple(output.shape)}, "
                               f"expected {tuple(grad_output.shape)}")
        output.backward(grad_output)
        names = ["weight", "bias"] if case["bias"] else ["weight"]
        gradients = [tensor_data(x.grad, "x.grad", floating=True)]
        for name in names:
            gradient = getattr(layer, name).grad
            if gradient is None:
                raise CheckFailure(f"{layer_call}.{name}.grad is None after backward: is {name} an nn.Parameter "
                                   "used in forward?")
            gradients.append(tensor_data(gradient, f"{layer_call}.{name}.grad", floating=True))
        results.append(gradients)
    return results


def call_linear_init(namespace: dict, in_features: int, out_features: int, seeds: list) -> dict:
    """Statistics of the learner's freshly built Linear(in_features, out_features), drawn after
    torch.manual_seed(seeds[0]): {"weight": stats, "bias": stats} with stats {count, min, max,
    mean, std}; and "same_fraction", the fraction of weight entries that came out identical
    when built after torch.manual_seed(seeds[1]) (about 0 for a random initialisation)."""
    layers = []
    with torch.random.fork_rng(devices=[]):  # seeding here leaves the learner's generator alone
        for seed in seeds:
            torch.manual_seed(seed)
            layers.append(make_linear(namespace, in_features, out_features, bias=True))
    layer_call = _call(in_features, out_features, True)
    stats = {}
    for name, shape in [("weight", (out_features, in_features)), ("bias", (out_features,))]:
        value = _parameter(layers[0], name, shape, layer_call).detach().double()
        if not bool(torch.isfinite(value).all()):
            raise CheckFailure(f"{layer_call}.{name} contains NaN or infinity: initialise every entry")
        stats[name] = {
            "count": value.numel(),
            "min": value.min().item(),
            "max": value.max().item(),
            "mean": value.mean().item(),
            "std": value.std().item(),
        }
    first = layers[0].weight.detach()
    second = _parameter(layers[1], "weight", (out_features, in_features), layer_call).detach()
    return {**stats, "same_fraction": (first == second).double().mean().item()}


def call_linear_backward(namespace: dict, cases: list) -> list[list[dict]]:
    """For each case {x, weight, grad_output}: linear_backward(x, weight, grad_output) as
    [grad_x, grad_weight, grad_bias]."""
    linear_backward = learner_function(namespace, "linear_backward")
    results = []
    for case in cases:
        x, weight, grad_output = (torch.tensor(case[key]) for key in ("x", "weight", "grad_output"))
        returned = linear_backward(x, weight, grad_output)
        if not isinstance(returned, (tuple, list)) or len(returned) != 3:
            raise CheckFailure(
                "linear_backward should return three tensors (grad_x, grad_weight, grad_bias), "
                f"got {type(returned).__name__} {quote(returned, 80)}"
            )
        names = ("grad_x", "grad_weight", "grad_bias")
        results.append([tensor_data(value, name, floating=True) for value, name in zip(returned, names)])
    return results
