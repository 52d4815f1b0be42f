"""warmup_cosine decays base_lr to 0 and adds min_lr on top: it starts above base_lr and ends at min_lr only by luck."""

import math


def warmup_cosine(step, total_steps, base_lr, warmup_steps, min_lr=0.0):
    if step < warmup_steps:
        return float(base_lr * (step + 1) / warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return float(min_lr + 0.5 * base_lr * (1.0 + math.cos(math.pi * progress)))
