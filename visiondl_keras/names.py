"""Names shared by the library and the command line, importable without Keras or TensorFlow.

The command line builds its parsers from these (choices, defaults) before any command runs, so
``python -m visiondl_keras --help`` and argument errors answer at once; the library modules that
implement each name import it from here.
"""

from __future__ import annotations

# Corruption benchmark (CIFAR-10-C style), by family; see visiondl_keras.evaluation.corruptions.
CORRUPTION_GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
CORRUPTIONS = tuple(c for group in CORRUPTION_GROUPS.values() for c in group)

# The optional stages of the diagnostics report (visiondl_keras.evaluation.report).
REPORT_STAGES = ("gradcam", "noise", "attacks", "corruptions")

# Export formats and TFLite quantizations (visiondl_keras.deploy.export).
EXPORT_FORMATS = ("saved_model", "tflite", "all")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")

# Storage dtypes of a shipped checkpoint (visiondl_keras.models.storage).
STORAGE_DTYPES = ("float32", "bfloat16", "float16")

# Transfer-learning strategies and the quick budget of transfer-compare (visiondl_keras.training.transfer_compare).
TRANSFER_STRATEGIES = ("frozen", "partial", "full", "two_stage")
TRANSFER_QUICK = {"limit": 500, "test_limit": 500, "epochs": 2, "warmup_epochs": 1}
