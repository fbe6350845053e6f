"""Convolutions whose backward pass is written out as ordinary forward convolutions.

XLA:CPU (JAX 0.10.2) runs the convolutions that autodiff derives for a backward pass -- the
input gradient (a convolution with the flipped kernel) and the kernel gradient (a
convolution of the input with the output gradient) -- 3-25x slower inside ``lax.switch``
and ``lax.map`` than in straight-line code, and ``lax.switch`` is how an NB201 edge runs
only its chosen op. Written as forward convolutions in the default NHWC/HWIO layout (with
explicit transposes), the same sums run at straight-line speed there: for a stride-1 3x3
convolution on 64 x 32 x 32 x 16 inside ``lax.switch`` on 2 CPU cores, the input gradient
took 52 ms through autodiff and 7 ms written out, the kernel gradient 386 and 14 ms
(``python -m experiments.bench_conv_grads``).

:func:`conv_general_dilated` is a drop-in for ``lax.conv_general_dilated`` (flax's
``nn.Conv(conv_general_dilated=...)``) that takes this path for plain 2-D stride-1
convolutions and defers to ``lax`` otherwise. Its gradient is the same sum (tests compare
it with autodiff). It is a ``jax.custom_vjp``, so networks built with it support reverse
mode only: ``jax.jvp`` through them raises (synflow and grasp use forward mode and keep
XLA's convolution).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

CONV_GRADS = ("xla", "explicit")
NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def _conv(x: Array, k: Array, padding, precision=None) -> Array:
    return lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=NHWC, precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _explicit(x: Float[Array, "b h w i"], k: Float[Array, "kh kw i o"], padding, precision):
    return _conv(x, k, padding, precision)


def _explicit_fwd(x, k, padding, precision):
    return _conv(x, k, padding, precision), (x, k)


def _explicit_bwd(padding, precision, res, g):
    x, k = res
    (lo_h, hi_h), (lo_w, hi_w) = padding
    kh, kw = k.shape[:2]
    # dL/dx: the output gradient convolved with the flipped, in/out-swapped kernel.
    k_t = jnp.flip(k, (0, 1)).swapaxes(2, 3)
    dx = _conv(g, k_t, ((kh - 1 - lo_h, kh - 1 - hi_h), (kw - 1 - lo_w, kw - 1 - hi_w)), precision)
    # dL/dk[p, q, i, o] = sum_{b, h, w} x_pad[b, h + p, w + q, i] g[b, h, w, o]: a convolution
    # with channels as the batch and the batch as the contracted feature axis.
    dk = _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), padding, precision).transpose(1, 2, 0, 3)
    return dx.astype(x.dtype), dk.astype(k.dtype)


_explicit.defvjp(_explicit_fwd, _explicit_bwd)


def conv_general_dilated(
    lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
    feature_group_count=1, batch_group_count=1, precision=None, preferred_element_type=None,
):
    """``lax.conv_general_dilated`` with written-out gradients for plain stride-1 2-D convolutions."""
    plain = (
        lhs.ndim == 4
        and tuple(window_strides) == (1, 1)
        and not isinstance(padding, str)
        and all(d in (None, 1) for d in (lhs_dilation or ())) and all(d in (None, 1) for d in (rhs_dilation or ()))
        and dimension_numbers == NHWC
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision, preferred_element_type,
        )
    pad = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _explicit(lhs, rhs, pad, precision)


def conv_fn(conv_grads: str):
    """The convolution for ``nn.Conv(conv_general_dilated=...)``: ``None`` (lax) or the explicit one.

    Raises:
      ValueError: unknown ``conv_grads``.
    """
    if conv_grads not in CONV_GRADS:
        raise ValueError(f"unknown conv_grads {conv_grads!r}; valid choices are {list(CONV_GRADS)}")
    return conv_general_dilated if conv_grads == "explicit" else None
