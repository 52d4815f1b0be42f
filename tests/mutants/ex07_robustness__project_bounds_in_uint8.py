"""project_linf computes original -/+ epsilon in the original's dtype: uint8 bounds wrap around."""

import numpy as np


def project_linf(adversarial, original, epsilon):
    x0 = np.asarray(original)
    lo, hi = x0 - np.asarray(epsilon).astype(x0.dtype), x0 + np.asarray(epsilon).astype(x0.dtype)
    x = np.clip(np.asarray(adversarial, dtype=np.float32), lo, hi)
    return np.clip(x, 0.0, 255.0).astype(np.float32)
