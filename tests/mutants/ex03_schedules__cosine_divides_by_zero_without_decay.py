"""warmup_cosine divides by total_steps - warmup_steps: a warm-up as long as the run divides by zero."""

import math


def warmup_cosine(step, total_steps, base_lr, warmup_steps, min_lr=0.0):
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)))
