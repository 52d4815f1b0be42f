"""project_linf clips to the epsilon-ball but not to the valid pixel range."""

import numpy as np


def project_linf(adversarial, original, epsilon):
    x0 = np.asarray(original, dtype=np.float32)
    return np.clip(np.asarray(adversarial, dtype=np.float32), x0 - epsilon, x0 + epsilon).astype(np.float32)
