"""Adam as torch.optim.Adam(fused=True) computes it, without torch.optim.

Why not torch.optim: its Optimizer wraps its methods in torch._disable_dynamo, which imports
torch._dynamo (and sympy with it) the first time an optimiser is built: about 150 MB of resident
memory that a training run on the CPU otherwise never uses, and what kept the runs over their
memory budget (docs/performance.md). The update itself is torch's own fused kernel
(`torch._fused_adam_`, what torch.optim.Adam runs with fused=True), called the same way, so the
numbers are bit-identical (tests/test_adam.py steps both side by side), and `state_dict` has
torch.optim.Adam's layout, so checkpoints load in either.

Only what ssgan's training uses: one parameter group, no weight decay, no amsgrad. The rate is
set from outside (`param_groups[0]["lr"]`, see run.py's schedule).
"""
from __future__ import annotations

import torch


class Adam:
    def __init__(self, params, lr: float, betas: tuple[float, float], eps: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        # torch.optim.Adam's group keys (fused), so a state_dict is interchangeable with one of its
        self.param_groups = [{"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0.0, "amsgrad": False,
                              "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                              "fused": True, "decoupled_weight_decay": False, "params": self.params}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch's: the others keep their
        state and step count). Tensors are grouped by device and dtype, one kernel call each."""
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        batches: dict[tuple, tuple[list, list, list, list, list]] = {}
        for p in self.params:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients")
            s = self.state.get(p)
            if s is None:
                s = self.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            lists = batches.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for lst, t in zip(lists, (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"])):
                lst.append(t)
        for params, grads, exp_avgs, exp_avg_sqs, steps in batches.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                               beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
                               grad_scale=None, found_inf=None)

    def state_dict(self) -> dict:
        """torch.optim.Adam's layout: parameters by their index in the group."""
        index = {p: i for i, p in enumerate(self.params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {index[p]: dict(s) for p, s in self.state.items()},
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict) -> None:
        """From a state_dict of this class or of torch.optim.Adam, for the same parameters."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            sizes = [len(g["params"]) for g in groups]
            raise ValueError(f"the saved optimiser state has parameter groups of {sizes} tensors; this Adam has one "
                             f"group of {len(self.params)}")
        saved = state_dict["state"]
        for i, p in enumerate(self.params):
            s = saved.get(i)
            if s is not None and s["exp_avg"].shape != p.shape:
                raise ValueError(f"the saved optimiser state of parameter {i} has shape {tuple(s['exp_avg'].shape)}; "
                                 f"the parameter has {tuple(p.shape)}")
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
        self.state = {p: {"step": saved[i]["step"].to(device=p.device, dtype=torch.float32, copy=True),
                          "exp_avg": saved[i]["exp_avg"].to(device=p.device, dtype=p.dtype, copy=True),
                          "exp_avg_sq": saved[i]["exp_avg_sq"].to(device=p.device, dtype=p.dtype, copy=True)}
                      for i, p in enumerate(self.params) if i in saved}
