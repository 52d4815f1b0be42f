"""warmup_cosine measures the cosine's progress from step 0, not from the end of the warm-up."""

import math


def warmup_cosine(step, total_steps, base_lr, warmup_steps, min_lr=0.0):
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = min(1.0, step / max(1, total_steps))
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)))
