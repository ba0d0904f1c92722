"""Epoch shifts and null/infinity sentinels between q's wire integers and numpy times.

q counts timestamps, dates and months from 2000-01-01; numpy from 1970-01-01. Nulls and
infinities must survive the shift unchanged, so they are masked out of it: q null ↔ NaT,
q ±0W ↔ the int64 extremes. A value that has no counterpart on the other side (a timestamp
beyond 2262, a date beyond the int32 range) saturates to ±infinity instead of wrapping.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from qipc import types as t

I64 = np.dtype(np.int64)


def to_numpy(wire: npt.NDArray[Any], qtype: int) -> npt.NDArray[Any]:
    """Wire integers (native order) of ``qtype`` → numpy datetime64/timedelta64 array."""
    dtype = t.NUMPY_DTYPE[qtype]
    if qtype == t.TIMESPAN:
        # Same unit, same epoch and the same null bits (NaT): nothing to convert.
        return wire.astype(np.int64, copy=False).view(dtype)
    width = wire.dtype.itemsize
    offset = t.EPOCH_OFFSET.get(qtype, 0)
    null, inf = t.INT_NULL[width], t.INT_INF[width]
    if width == 8:
        out = wire.astype(np.int64, copy=True)
        if offset:
            high = out >= t.NP_INF - offset  # would overflow (or hit +inf): saturate
            special = (out == null) | (out == -inf) | high
            np.add(out, offset, out=out, where=~special)
            out[high & (out != inf)] = t.NP_INF
        return out.view(dtype)
    out = wire.astype(np.int64)
    if offset:
        out += offset
    # Sentinels of the 32-bit types become the int64 extremes, out of reach of real values.
    out[wire == null] = t.NAT
    out[wire == inf] = t.NP_INF
    out[wire == -inf] = t.NP_NINF
    return out.view(dtype)


def to_wire(values: npt.NDArray[Any], qtype: int) -> npt.NDArray[Any]:
    """numpy datetime64/timedelta64 array → little-endian wire integers of ``qtype``."""
    wire_dtype = t.WIRE_DTYPE[qtype]
    raw = values.astype(t.NUMPY_DTYPE[qtype], copy=False).view(np.int64)
    if qtype == t.TIMESPAN:
        return raw.astype(wire_dtype, copy=False)
    width = wire_dtype.itemsize
    offset = t.EPOCH_OFFSET.get(qtype, 0)
    if width == 8:
        out = raw.copy()
        low = out < t.NAT + 2 + offset  # would underflow: saturate to -inf
        special = (out == t.NAT) | (out == t.NP_INF) | (out == t.NP_NINF) | low
        np.subtract(out, offset, out=out, where=~special)
        out[low & (out != t.NAT)] = t.NP_NINF
        return out.astype(wire_dtype, copy=False)
    null, inf = t.INT_NULL[width], t.INT_INF[width]
    shifted = raw - offset if offset else raw.copy()
    # Values out of the 32-bit range saturate; the int64 sentinels map back to q's.
    np.clip(shifted, -inf, inf, out=shifted)
    shifted[raw == t.NAT] = null
    shifted[raw == t.NP_INF] = inf
    shifted[raw == t.NP_NINF] = -inf
    return shifted.astype(wire_dtype)
