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

from .grid import launch_grid

BLOCK = 1024
# Every launch is (blocks of a row, rows): a row (one video's state, k x C x H x W) can need more blocks than
# grid axis y allows (a 16-frame 1080p clip: 97,200), the batch never does.


def row_grid(kernel: str, rows: int, blocks: int) -> tuple[int, int]:
    """The grid of ``rows`` rows of ``blocks`` blocks each."""
    return launch_grid(kernel, blocks, rows)



# --------------------------------------------------------------------------- kernels
# Adam, per row r with its own step count t_r (already incremented):
#   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
#   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
@triton.jit
def _adam_block(param_ptr, grad_ptr, m_ptr, v_ptr, row_start, start, ROW, t, lr, beta1, beta2, eps,
                BLOCK: tl.constexpr):
    """Elements [start, start + BLOCK) of the row that begins at ``row_start`` (``ROW`` elements long)."""
    inside = start + tl.arange(0, BLOCK)
    mask = inside < ROW
    offs = row_start + inside
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0)
    m = beta1 * tl.load(m_ptr + offs, mask=mask, other=0.0) + (1 - beta1) * g
    v = beta2 * tl.load(v_ptr + offs, mask=mask, other=0.0) + (1 - beta2) * g * g
    bias1 = 1 - tl.exp(t * tl.log(beta1))
    bias2 = 1 - tl.exp(t * tl.log(beta2))
    p = tl.load(param_ptr + offs, mask=mask, other=0.0) - lr * (m / bias1) / (tl.sqrt(v / bias2) + eps)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(param_ptr + offs, p, mask=mask)


@triton.jit
def _adam_kernel(param_ptr, grad_ptr, m_ptr, v_ptr, step_ptr, active_ptr, ROW, lr, beta1, beta2, eps,
                 BLOCK: tl.constexpr):
    row = tl.program_id(1).to(tl.int64)
    if tl.load(active_ptr + row) == 0:
        return
    t = tl.load(step_ptr + row).to(tl.float32)
    _adam_block(param_ptr, grad_ptr, m_ptr, v_ptr, row * ROW, tl.program_id(0).to(tl.int64) * BLOCK, ROW, t, lr,
                beta1, beta2, eps, BLOCK)


# Adam on two tensors in one launch (a perturbation's flow and noise): program (block, row) takes block of the
# first tensor's row while block < BLOCKS_A, else the second's. The step count t is read, not advanced: the
# caller adds the active mask to it after the launch (stream order makes that safe; a program of the row
# writing it would race the others reading it).
@triton.jit
def _adam_pair_kernel(pa_ptr, ga_ptr, ma_ptr, va_ptr, ROW_A, BLOCKS_A, lr_a,
                      pb_ptr, gb_ptr, mb_ptr, vb_ptr, ROW_B, lr_b,
                      step_ptr, active_ptr, beta1, beta2, eps, BLOCK: tl.constexpr):
    row = tl.program_id(1).to(tl.int64)
    if tl.load(active_ptr + row) == 0:
        return
    block = tl.program_id(0).to(tl.int64)
    t = tl.load(step_ptr + row).to(tl.float32) + 1.0
    if block < BLOCKS_A:
        _adam_block(pa_ptr, ga_ptr, ma_ptr, va_ptr, row * ROW_A, block * BLOCK, ROW_A, t, lr_a, beta1, beta2, eps,
                    BLOCK)
    else:
        _adam_block(pb_ptr, gb_ptr, mb_ptr, vb_ptr, row * ROW_B, (block - BLOCKS_A) * BLOCK, ROW_B, t, lr_b, beta1,
                    beta2, eps, BLOCK)


# delta <- clip(delta + alpha * sign(g)) to [-epsilon, epsilon], then to [-clean, 1 - clean].
@triton.jit
def _sign_kernel(delta_ptr, grad_ptr, clean_ptr, active_ptr, ROW, alpha, epsilon,
                 HAS_EPSILON: tl.constexpr, HAS_CLEAN: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(1).to(tl.int64)
    if tl.load(active_ptr + row) == 0:
        return
    offs = row * ROW + tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
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


def _check_step(step: torch.Tensor, rows: int) -> None:
    """Adam's step counts: int64, one per row."""
    if step.shape != (rows,) or step.dtype != torch.int64:
        raise ValueError(f"update: step must be int64 with one count per row, got {tuple(step.shape)} {step.dtype}")


def _launch_adam(param, grad, exp_avg, exp_avg_sq, step, active, lr, beta1, beta2, eps) -> None:
    step += active.to(step.dtype)
    rows = param.shape[0]
    row = param.numel() // rows if rows else 0  # not param[0]: indexing is an operation of its own
    if rows and row:
        _adam_kernel[row_grid("masked_adam_step_", rows, triton.cdiv(row, BLOCK))](
            param, grad, exp_avg, exp_avg_sq, step, active, row, lr, beta1, beta2, eps, BLOCK=BLOCK)


def _launch_adam_pair(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, beta1, beta2, eps) -> None:
    rows = params[0].shape[0]
    row_a, row_b = (params[0].numel() // rows, params[1].numel() // rows) if rows else (0, 0)
    blocks_a = triton.cdiv(row_a, BLOCK)
    if rows and (row_a or row_b):
        _adam_pair_kernel[row_grid("masked_adam_multi_", rows, blocks_a + triton.cdiv(row_b, BLOCK))](
            params[0], grads[0], exp_avgs[0], exp_avg_sqs[0], row_a, blocks_a, lrs[0],
            params[1], grads[1], exp_avgs[1], exp_avg_sqs[1], row_b, lrs[1],
            step, active, beta1, beta2, eps, BLOCK=BLOCK)
    step += active.to(step.dtype)


@torch.library.custom_op("sava::masked_adam_step", mutates_args=("param", "exp_avg", "exp_avg_sq", "step"))
def _adam_op(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
             step: torch.Tensor, active: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    _launch_adam(param, grad, exp_avg, exp_avg_sq, step, active, lr, beta1, beta2, eps)


@_adam_op.register_fake
def _(param, grad, exp_avg, exp_avg_sq, step, active, lr, beta1, beta2, eps):
    return None


def _launch_sign(delta, grad, active, alpha, epsilon, has_epsilon, clean) -> None:
    rows = delta.shape[0]
    row = delta.numel() // rows if rows else 0
    if rows and row:
        _sign_kernel[row_grid("masked_sign_step_", rows, triton.cdiv(row, BLOCK))](
            delta, grad, clean if clean is not None else delta, active, row, alpha, epsilon,
            HAS_EPSILON=has_epsilon, HAS_CLEAN=clean is not None, BLOCK=BLOCK)


@torch.library.custom_op("sava::masked_sign_step", mutates_args=("delta",))
def _sign_op(delta: torch.Tensor, grad: torch.Tensor, active: torch.Tensor, alpha: float, epsilon: float,
             has_epsilon: bool, clean: torch.Tensor | None) -> None:
    _launch_sign(delta, grad, active, alpha, epsilon, has_epsilon, clean)


@_sign_op.register_fake
def _(delta, grad, active, alpha, epsilon, has_epsilon, clean):
    return None


# --------------------------------------------------------------------------- public
@torch.no_grad()
def masked_adam_step_(param, grad, exp_avg, exp_avg_sq, step, active, lr, betas=(0.9, 0.999), eps=1e-8) -> None:
    _check(param.shape[0], active, param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    _check_step(step, param.shape[0])
    # Eager calls launch directly; torch.compile traces the custom op.
    launch = _adam_op if torch.compiler.is_compiling() else _launch_adam
    launch(param, grad, exp_avg, exp_avg_sq, step, active, float(lr), float(betas[0]), float(betas[1]), float(eps))


@torch.no_grad()
def masked_adam_multi_(params, grads, exp_avgs, exp_avg_sqs, step, active, lrs, betas=(0.9, 0.999),
                       eps=1e-8) -> None:
    """``masked_adam_step_`` on several tensors sharing one step count (advanced once), each with its own
    learning rate: one launch for a pair, one per tensor otherwise."""
    for tensors in zip(params, grads, exp_avgs, exp_avg_sqs):
        _check(params[0].shape[0], active, param=tensors[0], grad=tensors[1], exp_avg=tensors[2],
               exp_avg_sq=tensors[3])
    _check_step(step, params[0].shape[0])
    beta1, beta2 = float(betas[0]), float(betas[1])
    if len(params) == 2 and not torch.compiler.is_compiling():
        _launch_adam_pair(params, grads, exp_avgs, exp_avg_sqs, step, active, [float(lr) for lr in lrs], beta1,
                          beta2, float(eps))
        return
    for i, tensors in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        # Each call advances the count: all but the last work on a copy, the last advances the real one.
        count = step if i == len(params) - 1 else step.clone()
        masked_adam_step_(*tensors, count, active, lrs[i], betas, eps)


@torch.no_grad()
def masked_sign_step_(delta, grad, active, alpha, epsilon=None, clean=None) -> None:
    tensors = {"delta": delta, "grad": grad} | ({"clean": clean} if clean is not None else {})
    _check(delta.shape[0], active, **tensors)
    if epsilon is not None and epsilon < 0:
        raise ValueError(f"update: epsilon must be >= 0, got {epsilon}")
    launch = _sign_op if torch.compiler.is_compiling() else _launch_sign
    launch(delta, grad, active, float(alpha), float(epsilon or 0.0), epsilon is not None, clean)
