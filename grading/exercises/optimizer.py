"""The checks of exercise 04_optimizer: one AdamW step, the learning-rate schedule, gradient clipping.

The learner writes, in exercises/04_optimizer/optimizer.ipynb:

    adamw_step(param, grad, m, v, step, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        -> (param, m, v)            # one update of one tensor as torch.optim.AdamW makes it: the
                                    # moments, their bias correction (step counts from 1), the
                                    # decoupled decay; new tensors, the inputs left as they were
    lr_at(step, max_lr, min_lr, warmup_iters, decay_iters) -> float
                                    # linear warm-up, half a cosine down to min_lr, then min_lr
    clip_grad_norm(grads, max_norm) -> (clipped, total_norm)
                                    # the global L2 norm of a list of tensors; scaled by
                                    # max_norm / (total_norm + 1e-6) only above max_norm

adamw_step must not use torch.optim (any optimizer, functional forms included), clip_grad_norm
not torch's clipping. The references: torch.optim.AdamW stepped on a copy of the parameter (with
the learner's m and v loaded as its state, or over several steps from the start);
course_lib.training.schedule.lr_at; torch.nn.utils.clip_grad_norm_ on copies of the gradients.
Visible checks use the notebook's worked examples (a first step moves each weight by lr against
the sign of its gradient); hidden ones random shapes, several steps, other betas and eps, a 0-dim
tensor, schedules without warm-up, an empty list of gradients.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from course_lib.training.schedule import lr_at as course_lr_at
from grading import seeds
from grading.checks import Call, Check, Input, call, describe
from grading.compare import ATOL, RTOL, show_tensor, tensors_close

NOTEBOOK = "optimizer.ipynb"
# Every optimizer of torch.optim (AdamW, and Adam with its decoupled_weight_decay, above all) and
# the functions under them: adamw_step is the optimizer. torch's clipping is clip_grad_norm's.
OPTIMIZERS = sorted(f"torch.optim.{name}" for name in torch.optim.__all__
                    if isinstance(getattr(torch.optim, name), type))  # Optimizer itself included
FORBIDDEN: dict[str, list[str]] = {
    "adamw_step": OPTIMIZERS + ["torch.optim.adam.Adam", "torch.optim.adam.adam", "torch.optim.adamw.AdamW",
                                "torch.optim.adamw.adamw", "torch.optim._functional.adam",
                                "torch.optim._functional.adamw"],
    "clip_grad_norm": ["torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm",
                       "torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grads_with_norm_",
                       "torch.nn.utils.clip_grad.clip_grad_norm_", "torch.nn.utils.clip_grad.clip_grad_norm"],
}
CALLS = "exercises.optimizer_calls"
STATE = {"kind": "tensors", "names": ["param", "m", "v"], "floating": True}
NUMBER = {"kind": f"{CALLS}.a_number"}

# ---- inputs -----------------------------------------------------------------------------------

# The notebook's worked example: three weights, their gradients, a first step with lr = 0.1 and
# the default betas (0.9, 0.95), eps 1e-8 and weight_decay 0.1, then a second step with the same
# gradient from where the first one ended (its values as the notebook works them out).
PARAM = torch.tensor([1.0, -2.0, 3.0])
GRAD = torch.tensor([0.1, -4.0, 2.0])
ZEROS = torch.zeros(3)
PARAM_1, M_1, V_1 = torch.tensor([0.89, -1.88, 2.87]), torch.tensor([0.01, -0.4, 0.2]), torch.tensor([0.0005, 0.8, 0.2])


def randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seeds.seed(seed)))


def adamw(param: Any, grad: Any, m: Any, v: Any, step: int, lr: float, **settings: Any) -> Call:
    return call("adamw_step", param, grad, m, v, step, lr, returns=STATE, **settings)


def adamw_chain(param: torch.Tensor, grads: Input, **settings: Any) -> Call:
    """adamw_step as steps 1, 2, ... of a run from `param`, m and v zero at first."""
    return Call("adamw_step", (param,), settings, STATE, f"{CALLS}.chain", {"grads": grads},
                "as steps 1, 2, ... of one run: grad = grads[step - 1] from grads = {grads}, m and v zeros at "
                "step 1, then the m and v the previous step returned")


def unchanged(function: str, *args: Any, names: list[str]) -> Call:
    """function(*args), then the tensors it was given, as they are after the call."""
    return Call(function, args, {}, {"kind": "tensors", "names": names, "floating": True}, f"{CALLS}.inputs_after",
                {}, f"then {', '.join(names[:-1])} and {names[-1]} as they are after the call")


def random_grads(seed: int, count: int, *shape: int, scale: float = 1.0) -> Input:
    size = "" if scale == 1.0 else f" of size about {scale:g}"
    return Input(lambda: [randn(seed + i, *shape, scale=scale) for i in range(count)],
                 f"{count} random gradients {shape}{size}")


def lr(step: int, max_lr: float, min_lr: float, warmup_iters: int, decay_iters: int) -> Call:
    return call("lr_at", step, max_lr, min_lr, warmup_iters, decay_iters, returns=NUMBER)


def schedule(steps: range | list[int], *settings: Any) -> tuple[Call, ...]:
    return tuple(lr(step, *settings) for step in steps)


def grad_list(grads: list[torch.Tensor], label: str = "") -> Input:
    """A list of gradients, shown as "[tensor([3.0, 0.0]), tensor([[0.0], [4.0]])]" (torch's
    own repr of a list spreads over lines) or, for a hidden check, by `label`."""
    shown = "[" + ", ".join(describe(grad, hidden=False) for grad in grads) + "]"
    return Input(lambda: list(grads), label or shown)


def clip(grads: list[torch.Tensor], max_norm: float, label: str = "") -> Call:
    return call("clip_grad_norm", grad_list(grads, label), max_norm,
                returns={"kind": f"{CALLS}.clipped", "count": len(grads)})


# ---- references (grader's side) ---------------------------------------------------------------


def _adamw(param: torch.Tensor, lr: float, betas: tuple[float, float], eps: float,
           weight_decay: float) -> tuple[torch.Tensor, torch.optim.AdamW]:
    """A copy of `param` and torch's AdamW over it, one tensor at a time (foreach=False)."""
    copy = param.clone().requires_grad_(True)
    return copy, torch.optim.AdamW([copy], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


def torch_adamw_step(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int,
                     lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                     weight_decay: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step number `step` of torch.optim.AdamW, its state loaded with m and v as after step - 1."""
    copy, optimizer = _adamw(param, lr, tuple(betas), eps, weight_decay)
    optimizer.state[copy] = {"step": torch.tensor(float(step - 1)), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    copy.grad = grad.clone()
    optimizer.step()
    state = optimizer.state[copy]
    return copy.detach(), state["exp_avg"], state["exp_avg_sq"]


def torch_adamw_run(param: torch.Tensor, grads: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.95),
                    eps: float = 1e-8, weight_decay: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch.optim.AdamW from a fresh start, one step per gradient: the parameter and its state."""
    copy, optimizer = _adamw(param, lr, tuple(betas), eps, weight_decay)
    for grad in grads:
        copy.grad = grad.clone()
        optimizer.step()
    state = optimizer.state[copy]
    return copy.detach(), state["exp_avg"], state["exp_avg_sq"]


def the_inputs(*args: Any) -> list[torch.Tensor]:
    """What a function that leaves its inputs alone leaves: the tensors it was given."""
    given = [item for arg in args for item in (arg if isinstance(arg, list) else [arg])]
    return [item for item in given if isinstance(item, torch.Tensor)]


def torch_clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """torch.nn.utils.clip_grad_norm_ on parameters whose .grad are copies of `grads`."""
    params = [torch.zeros_like(grad, requires_grad=True) for grad in grads]
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    total_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [param.grad for param in params], total_norm


# ---- comparisons ------------------------------------------------------------------------------


def numbers_close(expected: float, actual: Any) -> bool:
    """A Python number within a relative 1e-6 of `expected` (lr_at written with torch's float32
    cosine passes; every mistake looked for is off by a percent or more)."""
    return type(actual) is float and math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-12)


def same_clipping(expected: dict, actual: Any) -> bool:
    """The clipped tensors and the total norm, within the tensors' tolerances."""
    return (type(actual) is dict and actual.keys() == expected.keys() and type(actual["norm"]) is float
            and tensors_close(expected["clipped"], actual["clipped"])
            and math.isclose(actual["norm"], expected["norm"], rel_tol=RTOL, abs_tol=ATOL))


def show_named(names: list[str]):
    """'param tensor([0.8900, -1.8800]), m tensor(...), v tensor(...)' for a list of plain tensors."""

    def show(value: list) -> str:
        return ", ".join(f"{name} {show_tensor(tensor)}" for name, tensor in zip(names, value))

    return show


def show_clipping(value: dict) -> str:
    """'clipped [tensor([0.6000, 0.0000])], total_norm 5.0'."""
    return f"clipped [{', '.join(show_tensor(t) for t in value['clipped'])}], total_norm {value['norm']:.6g}"


# ---- the checks -------------------------------------------------------------------------------

STATE_SHOWN = show_named(["param", "m", "v"])
LR_SCHEDULE = (1.0, 0.1, 10, 110)  # the notebook's example: max_lr 1, min_lr 0.1, 10 + 100 steps


def adamw_check(name: str, calls: Call | tuple[Call, ...], reference: Any = torch_adamw_step, points: float = 1,
                hidden: bool = False) -> Check:
    return Check("adamw_step", name, calls, reference=reference, compare=tensors_close, points=points, hidden=hidden,
                 show=STATE_SHOWN)


def lr_check(name: str, calls: tuple[Call, ...], hidden: bool = False) -> Check:
    return Check("lr_at", name, calls, reference=course_lr_at, compare=numbers_close, hidden=hidden)


def clip_check(name: str, calls: Call | tuple[Call, ...], hidden: bool = False) -> Check:
    return Check("clip_grad_norm", name, calls, reference=torch_clip_grad_norm, compare=same_clipping, hidden=hidden,
                 show=show_clipping)


CHECKS: list[Check] = [
    # adamw_step: 9 points
    adamw_check("adamw_step's first step moves each weight by lr against its gradient's sign, and decays it",
                adamw(PARAM, GRAD, ZEROS, ZEROS, 1, 0.1)),
    adamw_check("adamw_step's second step with the same gradient moves by lr again (bias correction)",
                adamw(PARAM_1, GRAD, M_1, V_1, 2, 0.1)),
    adamw_check("adamw_step with a zero gradient only decays the weights",
                adamw(PARAM, ZEROS, ZEROS, ZEROS, 1, 0.1)),
    Check("adamw_step", "adamw_step returns new tensors and leaves param, grad, m and v as they were",
          unchanged("adamw_step", PARAM_1, GRAD, M_1, V_1, 2, 0.1, names=["param", "grad", "m", "v"]),
          reference=the_inputs, compare=tensors_close, show=show_named(["param", "grad", "m", "v"])),
    adamw_check("adamw_step over 5 steps, each with the m and v of the step before, matches torch.optim.AdamW",
                adamw_chain(randn(10, 4, 3), random_grads(11, 5, 4, 3), lr=0.05), reference=torch_adamw_run,
                points=2, hidden=True),
    adamw_check("adamw_step with weight_decay=0 and betas=(0.8, 0.99) at step 7",
                adamw(randn(20, 2, 3, 4), randn(21, 2, 3, 4), randn(22, 2, 3, 4, scale=0.1),
                      randn(23, 2, 3, 4, scale=0.3) ** 2, 7, 0.01, betas=(0.8, 0.99), weight_decay=0.0), hidden=True),
    adamw_check("adamw_step with tiny gradients and eps=1e-6, where eps matters",
                adamw_chain(randn(30, 6), random_grads(31, 3, 6, scale=1e-6), lr=0.1, eps=1e-6),
                reference=torch_adamw_run, hidden=True),
    adamw_check("adamw_step on a 0-dim tensor at step 1000",
                adamw(torch.tensor(2.0), torch.tensor(-0.3), torch.tensor(0.05), torch.tensor(0.01), 1000, 0.01,
                      weight_decay=0.5), hidden=True),
    # lr_at: 6 points
    lr_check("lr_at warms up linearly: max_lr * (step + 1) / warmup_iters", schedule([0, 4, 9], *LR_SCHEDULE)),
    lr_check("lr_at decays along half a cosine from max_lr at warmup_iters to min_lr at decay_iters",
             schedule([10, 35, 60, 110], *LR_SCHEDULE)),
    lr_check("lr_at stays at min_lr after decay_iters", schedule([111, 500], *LR_SCHEDULE)),
    lr_check("lr_at on another schedule, every step", schedule(range(46), 6e-4, 6e-5, 7, 40), hidden=True),
    lr_check("lr_at without warm-up (warmup_iters=0)", schedule([0, 1, 50, 99, 100, 101], 3e-4, 3e-5, 0, 100),
             hidden=True),
    lr_check("lr_at when the decay ends where the warm-up ends (warmup_iters == decay_iters)",
             schedule([0, 4, 5, 6], 1.0, 0.1, 5, 5), hidden=True),
    # clip_grad_norm: 7 points
    clip_check("clip_grad_norm scales every gradient by max_norm / total_norm when the global norm is above it",
               clip([torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [4.0]])], 1.0)),
    clip_check("clip_grad_norm leaves gradients whose norm is below max_norm as they are",
               clip([torch.tensor([0.3, -0.4])], 1.0)),
    Check("clip_grad_norm", "clip_grad_norm leaves the gradients it was given as they were",
          unchanged("clip_grad_norm", grad_list([torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [4.0]])]), 1.0,
                    names=["grads[0]", "grads[1]"]),
          reference=the_inputs, compare=tensors_close, show=show_named(["grads[0]", "grads[1]"])),
    clip_check("clip_grad_norm over random tensors of several shapes, above and below max_norm",
               (clip([randn(40, 5), randn(41, 3, 4), randn(42, 2, 2, 2), randn(43, 1)], 2.0,
                     "4 random gradients of shapes (5,), (3, 4), (2, 2, 2), (1,)"),
                clip([randn(44, 6, scale=0.1), randn(45, 2, 3, scale=0.1)], 2.0,
                     "2 small random gradients of shapes (6,), (2, 3)")), hidden=True),
    clip_check("clip_grad_norm of an empty list: nothing to clip, a norm of 0", clip([], 1.0), hidden=True),
    clip_check("clip_grad_norm of one 0-dim tensor", clip([torch.tensor(-7.0)], 2.0, "one 0-dim gradient"),
               hidden=True),
    clip_check("clip_grad_norm when the norm is exactly max_norm",
               clip([torch.tensor([3.0, 4.0])], 5.0, "one gradient (2,)"), hidden=True),
]
