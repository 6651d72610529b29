"""What every kernel shares: numba's compilation settings, TA-Lib's zero band and its fused multiply-add."""

import numba
from numba.extending import intrinsic

# TA-Lib's TA_EPSILON: its zero tests (TA_IS_ZERO, TA_IS_ZERO_SCALED) use this band.
EPSILON = 1e-14

jit = numba.njit(cache=True, nogil=True)


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once. TA-Lib's current builds fuse the EMA and ATR steps; spelling out the same fused
    operation reproduces their bits on every CPU, where letting LLVM contract would depend on how it inlines."""
    signature = numba.types.float64(numba.types.float64, numba.types.float64, numba.types.float64)
    return signature, lambda context, builder, sig, args: builder.fma(*args)
