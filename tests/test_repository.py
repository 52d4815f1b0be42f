"""What the repository may hold: no dataset images (CIFAR-10 is not ours to redistribute) and no
large files (the shipped checkpoints stay a few MB)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 6_000_000
# Files that would contain CIFAR-10 pixels: generated locally (samples, galleries), never committed.
DATASET_IMAGE_PATTERNS = (
    "samples/*.png",
    "artifacts/figures/augment_policies/*",
    "artifacts/figures/gradcam/*",
    "artifacts/figures/*/*_misclassified.png",
    "artifacts/figures/*/*_corruption_examples.png",
    "*.npy",
    "*.npz",
)


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_dataset_images_are_tracked(tracked):
    offenders = [p for p in tracked if any(fnmatch.fnmatch(p, pat) for pat in DATASET_IMAGE_PATTERNS)]
    assert not offenders, f"dataset images must not be committed: {offenders}"


def test_the_gitignore_keeps_generated_dataset_images_out():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for entry in ("samples/*.png", "artifacts/figures/gradcam/", "artifacts/figures/augment_policies/"):
        assert entry in ignored


def test_no_large_files_are_tracked(tracked):
    sizes = {p: (ROOT / p).stat().st_size for p in tracked if (ROOT / p).is_file()}
    large = {p: s for p, s in sizes.items() if s > MAX_FILE_BYTES}
    assert not large, f"files over {MAX_FILE_BYTES / 1e6:.0f} MB: {large}"
