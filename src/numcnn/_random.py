"""Random generators as plain arrays, so checkpoints hold them without pickle.

numcnn's generators are NumPy's ``default_rng`` (PCG64). Its whole state — the 128-bit
state and increment, and the buffered 32-bit half — fits in six unsigned 64-bit words;
restoring them continues the stream exactly where it was saved.

>>> g = np.random.default_rng(0); g.random(3) is not None
True
>>> s = generator_state(g); h = np.random.default_rng(1); set_generator_state(h, s)
>>> bool(g.random() == h.random())
True
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1


def generator_state(gen: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 ``gen`` as a uint64 array of 6 words."""
    st = gen.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise TypeError(f"only PCG64 generators (numpy.random.default_rng) can be saved; "
                        f"received {st.get('bit_generator')}")
    s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
    return np.array([s >> 64, s & _MASK, inc >> 64, inc & _MASK, int(st["has_uint32"]),
                     int(st["uinteger"])], dtype=np.uint64)


def set_generator_state(gen: np.random.Generator, words: np.ndarray) -> None:
    """Restore a state saved by :func:`generator_state` into the PCG64 ``gen``."""
    w = np.asarray(words)
    if w.shape != (6,) or w.dtype.kind not in "ui":
        raise ValueError(f"a generator state is 6 unsigned 64-bit words; received shape "
                         f"{w.shape}, dtype {w.dtype}")
    w = [int(v) & _MASK for v in w.astype(np.uint64)]
    if gen.bit_generator.state.get("bit_generator") != "PCG64":
        raise TypeError("only PCG64 generators (numpy.random.default_rng) can be restored")
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4] & 1, "uinteger": w[5] & 0xFFFFFFFF,
    }
