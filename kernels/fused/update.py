"""Masked in-place updates of per-frame attack state: an Adam step and a signed
step with projection. Rows (videos) whose ``active`` flag is off -- already
fooled, or empty slots -- are skipped before any of their bytes are read.
Same functions as ``reference.masked_adam_step_`` and
``reference.masked_sign_step_``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


# --------------------------------------------------------------------------- kernels
# Adam, per row r with its own step count t_r (already incremented):
#   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
#   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
@triton.jit
def _adam_kernel(param_ptr, grad_ptr, m_ptr, v_ptr, step_ptr, active_ptr, ROW, lr, beta1, beta2, eps,
                 BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    if tl.load(active_ptr + row) == 0:
        return
    offs = row * ROW + tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < (row + 1) * ROW
    t = tl.load(step_ptr + row).to(tl.float32)
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0)
    m = beta1 * tl.load(m_ptr + offs, mask=mask, other=0.0) + (1 - beta1) * g
    v = beta2 * tl.load(v_ptr + offs, mask=mask, other=0.0) + (1 - beta2) * g * g
    bias1 = 1 - tl.exp(t * tl.log(beta1))
    bias2 = 1 - tl.exp(t * tl.log(beta2))
    p = tl.load(param_ptr + offs, mask=mask, other=0.0) - lr * (m / bias1) / (tl.sqrt(v / bias2) + eps)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(param_ptr + offs, p, mask=mask)


# delta <- clip(delta + alpha * sign(g)) to [-epsilon, epsilon], then to [-clean, 1 - clean].
@triton.jit
def _sign_kernel(delta_ptr, grad_ptr, clean_ptr, active_ptr, ROW, alpha, epsilon,
                 HAS_EPSILON: tl.constexpr, HAS_CLEAN: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    if tl.load(active_ptr + row) == 0:
        return
    offs = row * ROW + tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < (row + 1) * ROW
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0)
    sign = tl.where(g > 0, 1.0, tl.where(g < 0, -1.0, 0.0))
    d = tl.load(delta_ptr + offs, mask=mask, other=0.0) + alpha * sign
    if HAS_EPSILON:
        d = tl.minimum(tl.maximum(d, -epsilon), epsilon)
    if HAS_CLEAN:
        x = tl.load(clean_ptr + offs, mask=mask, other=0.0)
        d = tl.maximum(tl.minimum(d, 1 - x), -x)
    tl.store(delta_ptr + offs, d, mask=mask)


# --------------------------------------------------------------------------- launchers and ops
def _check(rows: int, active: torch.Tensor, **tensors: torch.Tensor) -> None:
    if active.shape != (rows,) or active.dtype != torch.bool:
        raise ValueError(f"update: active must be a bool tensor of {rows} rows, got {tuple(active.shape)} "
                         f"{active.dtype}")
    first = next(iter(tensors.values()))
    for name, tensor in tensors.items():
        if tensor.shape != first.shape:
            raise ValueError(f"update: {name} has shape {tuple(tensor.shape)}, expected {tuple(first.shape)}")
        if not tensor.is_contiguous():
            raise ValueError(f"update: {name} must be contiguous (per-frame state is allocated by the attack)")
        if tensor.dtype != torch.float32:
            raise ValueError(f"update: {name} must be float32, got {tensor.dtype}")


@torch.library.custom_op("sava::masked_adam_step", mutates_args=("param", "exp_avg", "exp_avg_sq", "step"))
def _adam_op(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
             step: torch.Tensor, active: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    step += active.to(step.dtype)
    rows = param.shape[0]
    row = param[0].numel() if rows else 0
    if rows and row:
        _adam_kernel[(rows, triton.cdiv(row, BLOCK))](param, grad, exp_avg, exp_avg_sq, step, active, row, lr,
                                                      beta1, beta2, eps, BLOCK=BLOCK)


@_adam_op.register_fake
def _(param, grad, exp_avg, exp_avg_sq, step, active, lr, beta1, beta2, eps):
    return None


@torch.library.custom_op("sava::masked_sign_step", mutates_args=("delta",))
def _sign_op(delta: torch.Tensor, grad: torch.Tensor, active: torch.Tensor, alpha: float, epsilon: float,
             has_epsilon: bool, clean: torch.Tensor | None) -> None:
    rows = delta.shape[0]
    row = delta[0].numel() if rows else 0
    if rows and row:
        _sign_kernel[(rows, triton.cdiv(row, BLOCK))](delta, grad, clean if clean is not None else delta, active,
                                                      row, alpha, epsilon, HAS_EPSILON=has_epsilon,
                                                      HAS_CLEAN=clean is not None, BLOCK=BLOCK)


@_sign_op.register_fake
def _(delta, grad, active, alpha, epsilon, has_epsilon, clean):
    return None


# --------------------------------------------------------------------------- public
@torch.no_grad()
def masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr, betas=(0.9, 0.999), eps=1e-8) -> None:
    _check(param.shape[0], active, param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    if step.shape != (param.shape[0],) or step.dtype != torch.int64:
        raise ValueError(f"update: step must be int64 with one count per row, got {tuple(step.shape)} {step.dtype}")
    _adam_op(param, grad, exp_avg, exp_avg_sq, step, active, float(lr), float(betas[0]), float(betas[1]), float(eps))


@torch.no_grad()
def masked_sign_step_(delta, grad, active, alpha, epsilon=None, clean=None) -> None:
    tensors = {"delta": delta, "grad": grad} | ({"clean": clean} if clean is not None else {})
    _check(delta.shape[0], active, **tensors)
    if epsilon is not None and epsilon < 0:
        raise ValueError(f"update: epsilon must be >= 0, got {epsilon}")
    _sign_op(delta, grad, active, float(alpha), float(epsilon or 0.0), epsilon is not None, clean)
