"""Triton kernels: per-sample weight-gradient norms and clipped sums of Linear and Conv layers.

Both are implicit GEMMs over the layer's input and output gradient, never materialising unfolded
patches or per-sample gradients. A Linear on [B, T, D] is the 1x1 convolution of the strided view
[B, D, 1, T], and a Conv1d the 2-D convolution of [B, C, 1, L], so one pair of kernels serves all.

- `norms_sq`: one program per (sample, group, output tile, patch tile) forms its tile of that
  sample's weight gradient in registers (sum over positions of g_t x_t^T, patches addressed on the
  fly), squares and sums it, and adds it into the sample's norm; optionally it also stores the tile
  (when the engine keeps per-sample gradients because they are smaller than the output gradient).
- `weighted_sum`: sum_i c_i g_i, with the per-sample clipping factor applied to the output gradient
  as it is loaded (no scaled copy), split over rows and accumulated atomically.

Accumulation is float32 (float64 for float64 inputs, by products and sums instead of tl.dot, whose
accumulator is at most float32); float32 inputs multiply at full precision, not TF32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor


@dataclass(frozen=True)
class Geometry:
    """A 2-D convolution's kernel size, stride, padding, dilation and groups."""

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@triton.jit
def _tile_product(g, x, FP64: tl.constexpr, IEEE: tl.constexpr):
    """[BO, BT] @ [BT, BK] accumulated in float32 (float64 inputs: in float64)."""
    if FP64:
        return tl.sum(g[:, :, None] * x[None, :, :], axis=1)
    elif IEEE:
        return tl.dot(g, x, input_precision="ieee")
    else:
        return tl.dot(g, x)


@triton.jit
def _load_tiles(
    x_ptr,
    g_ptr,
    rows,
    b,
    o,
    k,
    group,
    num_rows,
    sx0,
    sx1,
    sx2,
    sx3,
    sg0,
    sg1,
    sg2,
    sg3,
    H,
    W,
    OW,
    C_G,
    O_G,
    K_G,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
):
    """Output-gradient tile [BO, BT] and implicitly unfolded input tile [BT, BK] at output
    positions `rows` of samples `b` (both [BT])."""
    oy, ox = rows // OW, rows % OW
    channel, offset = k // (KH * KW), k % (KH * KW)
    iy = oy[:, None] * SH - PH + (offset // KW)[None, :] * DH
    ix = ox[:, None] * SW - PW + (offset % KW)[None, :] * DW
    live = rows < num_rows
    x_mask = live[:, None] & (k < K_G)[None, :] & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    x_at = x_ptr + b[:, None] * sx0 + (group * C_G + channel)[None, :] * sx1 + iy * sx2 + ix * sx3
    g_at = (
        g_ptr
        + b[None, :] * sg0
        + (group * O_G + o)[:, None] * sg1
        + oy[None, :] * sg2
        + ox[None, :] * sg3
    )
    g_mask = (o < O_G)[:, None] & live[None, :]
    return tl.load(g_at, mask=g_mask, other=0.0), tl.load(x_at, mask=x_mask, other=0.0)


@triton.jit
def _norms_kernel(
    x_ptr,
    g_ptr,
    norm_ptr,
    ps_ptr,
    sx0,
    sx1,
    sx2,
    sx3,
    sg0,
    sg1,
    sg2,
    sg3,
    sp0,
    sp1,
    sp2,
    H,
    W,
    OW,
    POSITIONS,
    C_G,
    O_G,
    K_G,
    GROUPS,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    BO: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    STORE: tl.constexpr,
    FP64: tl.constexpr,
    IEEE: tl.constexpr,
):
    sample_group = tl.program_id(0)
    b, group = sample_group // GROUPS, sample_group % GROUPS
    o = tl.program_id(1) * BO + tl.arange(0, BO)
    k = tl.program_id(2) * BK + tl.arange(0, BK)
    acc = tl.zeros((BO, BK), dtype=tl.float64 if FP64 else tl.float32)
    for start in range(0, POSITIONS, BT):
        rows = start + tl.arange(0, BT)
        g, x = _load_tiles(
            x_ptr,
            g_ptr,
            rows,
            tl.zeros((BT,), dtype=tl.int32) + b,
            o,
            k,
            group,
            POSITIONS,
            sx0,
            sx1,
            sx2,
            sx3,
            sg0,
            sg1,
            sg2,
            sg3,
            H,
            W,
            OW,
            C_G,
            O_G,
            K_G,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            DH,
            DW,
        )
        acc += _tile_product(g, x, FP64, IEEE)
    if STORE:
        at = ps_ptr + b * sp0 + (group * O_G + o)[:, None] * sp1 + k[None, :] * sp2
        tl.store(at, acc.to(ps_ptr.dtype.element_ty), mask=(o < O_G)[:, None] & (k < K_G)[None, :])
    tl.atomic_add(norm_ptr + b, tl.sum(acc * acc))


@triton.jit
def _weighted_sum_kernel(
    x_ptr,
    g_ptr,
    coef_ptr,
    out_ptr,
    sx0,
    sx1,
    sx2,
    sx3,
    sg0,
    sg1,
    sg2,
    sg3,
    so0,
    so1,
    H,
    W,
    OW,
    POSITIONS,
    ROWS,
    ROWS_PER_SPLIT,
    C_G,
    O_G,
    K_G,
    KH: tl.constexpr,
    KW: tl.constexpr,
    SH: tl.constexpr,
    SW: tl.constexpr,
    PH: tl.constexpr,
    PW: tl.constexpr,
    DH: tl.constexpr,
    DW: tl.constexpr,
    BO: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    FP64: tl.constexpr,
    IEEE: tl.constexpr,
):
    group = tl.program_id(0) // ((O_G + BO - 1) // BO)
    o = (tl.program_id(0) % ((O_G + BO - 1) // BO)) * BO + tl.arange(0, BO)
    k = tl.program_id(1) * BK + tl.arange(0, BK)
    first = tl.program_id(2) * ROWS_PER_SPLIT
    acc = tl.zeros((BO, BK), dtype=tl.float64 if FP64 else tl.float32)
    for start in range(first, tl.minimum(first + ROWS_PER_SPLIT, ROWS), BT):
        rows = start + tl.arange(0, BT)  # rows of the batch: sample * POSITIONS + position
        live = rows < tl.minimum(first + ROWS_PER_SPLIT, ROWS)
        b = tl.where(live, rows // POSITIONS, 0)
        g, x = _load_tiles(
            x_ptr,
            g_ptr,
            tl.where(live, rows % POSITIONS, POSITIONS),
            b,
            o,
            k,
            group,
            POSITIONS,
            sx0,
            sx1,
            sx2,
            sx3,
            sg0,
            sg1,
            sg2,
            sg3,
            H,
            W,
            OW,
            C_G,
            O_G,
            K_G,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            DH,
            DW,
        )
        # the clipping factor scales the output gradient as it is loaded
        coef = tl.load(coef_ptr + b, mask=live, other=0.0)
        g = (g.to(acc.dtype) * coef[None, :].to(acc.dtype)).to(x.dtype)
        acc += _tile_product(g, x, FP64, IEEE)
    at = out_ptr + (group * O_G + o)[:, None] * so0 + k[None, :] * so1
    tl.atomic_add(at, acc, mask=(o < O_G)[:, None] & (k < K_G)[None, :])


def _blocks(x: Tensor) -> tuple[int, int, int]:
    # Triton's interpreter runs every program in Python: the smallest tiles tl.dot allows
    if x.device.type == "cpu":
        return 16, 16, 16
    return 64, 32, 64


def _common(x: Tensor, g: Tensor) -> tuple[Tensor, Tensor, dict]:
    dtype = torch.promote_types(x.dtype, g.dtype)
    x, g = x.to(dtype), g.to(dtype)
    flags = {"FP64": dtype == torch.float64, "IEEE": dtype == torch.float32}
    return x, g, flags


def _geometry_args(geometry: Geometry) -> dict:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        geometry.kernel,
        geometry.stride,
        geometry.padding,
        geometry.dilation,
    )
    return {"KH": kh, "KW": kw, "SH": sh, "SW": sw, "PH": ph, "PW": pw, "DH": dh, "DW": dw}


def norms_sq(
    x: Tensor, g: Tensor, geometry: Geometry, store: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Per-sample squared norms of the weight gradient of a 2-D convolution with input x [B, C, H, W]
    and output gradient g [B, O, OH, OW], and the per-sample gradients [B, O, C/groups * KH * KW]
    when `store`."""
    x, g, flags = _common(x, g)
    batch, channels, height, width = x.shape
    out_channels, out_h, out_w = g.shape[1:]
    groups = geometry.groups
    c_g, o_g = channels // groups, out_channels // groups
    k_g = c_g * geometry.kernel[0] * geometry.kernel[1]
    accumulate = torch.float64 if flags["FP64"] else torch.float32
    norms = torch.zeros(batch, dtype=accumulate, device=x.device)
    per_sample = x.new_empty(batch, out_channels, k_g) if store else norms
    bo, bt, bk = _blocks(x)
    grid = (batch * groups, triton.cdiv(o_g, bo), triton.cdiv(k_g, bk))
    _norms_kernel[grid](
        x,
        g,
        norms,
        per_sample,
        *x.stride(),
        *g.stride(),
        *(per_sample.stride() if store else (0, 0, 0)),
        height,
        width,
        out_w,
        out_h * out_w,
        c_g,
        o_g,
        k_g,
        groups,
        **_geometry_args(geometry),
        BO=bo,
        BT=bt,
        BK=bk,
        STORE=store,
        **flags,
    )
    return norms, per_sample if store else None


def weighted_sum(
    x: Tensor, g: Tensor, coef: Tensor, geometry: Geometry, out: Tensor | None = None
) -> Tensor:
    """sum_i coef_i (weight gradient of sample i) as [O, C/groups * KH * KW] in the accumulation
    dtype, or added into `out` (any strides of that shape, e.g. a transposed view)."""
    x, g, flags = _common(x, g)
    batch, channels, height, width = x.shape
    out_channels, out_h, out_w = g.shape[1:]
    groups = geometry.groups
    c_g, o_g = channels // groups, out_channels // groups
    k_g = c_g * geometry.kernel[0] * geometry.kernel[1]
    accumulate = torch.float64 if flags["FP64"] else torch.float32
    if out is None:
        out = torch.zeros(out_channels, k_g, dtype=accumulate, device=x.device)
    bo, bt, bk = _blocks(x)
    rows = batch * out_h * out_w
    tiles = groups * triton.cdiv(o_g, bo) * triton.cdiv(k_g, bk)
    # split the rows so that every multiprocessor gets programs, in whole tiles of rows
    splits = max(1, min(triton.cdiv(rows, 4 * bt), triton.cdiv(_programs(x), tiles)))
    per_split = triton.cdiv(triton.cdiv(rows, splits), bt) * bt
    grid = (groups * triton.cdiv(o_g, bo), triton.cdiv(k_g, bk), triton.cdiv(rows, per_split))
    _weighted_sum_kernel[grid](
        x,
        g,
        coef.to(accumulate).contiguous(),
        out,
        *x.stride(),
        *g.stride(),
        *out.stride(),
        height,
        width,
        out_w,
        out_h * out_w,
        rows,
        per_split,
        c_g,
        o_g,
        k_g,
        **_geometry_args(geometry),
        BO=bo,
        BT=bt,
        BK=bk,
        **flags,
    )
    return out


def _programs(x: Tensor) -> int:
    """Programs to aim for: four per multiprocessor on a GPU, a handful under the interpreter."""
    if x.device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(x.device).multi_processor_count
    return 4


def linear_view(t: Tensor) -> Tensor:
    """[B, ..., d] as the strided [B, d, 1, T] a 1x1 convolution sees (no copy when possible)."""
    return t.reshape(t.shape[0], -1, t.shape[-1]).transpose(1, 2).unsqueeze(2)
