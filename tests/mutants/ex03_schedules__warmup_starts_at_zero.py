"""warmup_cosine warms up with step / warmup_steps: step 0 has learning rate 0 and the peak comes a step late."""

import math


def warmup_cosine(step, total_steps, base_lr, warmup_steps, min_lr=0.0):
    if step < warmup_steps:
        return float(base_lr * step / warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)))
