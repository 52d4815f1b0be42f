"""The PyTorch cross-check of the fast recipe (benchmarks/airbench_reference.py): its pieces do what airbench's do."""

import numpy as np
import pytest
from conftest import load_benchmark

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ref():
    return load_benchmark("airbench_reference")


def test_whitening_conv_decorrelates_patches_to_unit_variance(ref):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 3, 16, 16))
    images = torch.tensor(base + 0.8 * np.roll(base, 1, axis=1) + 0.5 * np.roll(base, 1, axis=3), dtype=torch.float32)
    net = ref.torch_reference_net((8, 16, 16))
    ref.init_whitening(net[0], images, eps=1e-8)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, net[0].weight)  # no bias: the patches' whitened coordinates
    flat = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = (flat.T @ flat / len(flat)).numpy()
    assert np.allclose(cov, np.eye(12), atol=1e-3)
    assert torch.allclose(net[0].weight[12:], -net[0].weight[:12])  # both signs


def test_network_matches_the_keras_port_layer_for_layer(ref):
    from visiondl_keras.models.airbench import build_airbench

    widths = (8, 16, 32)
    tnet = ref.torch_reference_net(widths)
    kmodel = build_airbench(widths)
    t_kernels = sorted(p.numel() for k, p in tnet.named_parameters() if k.endswith("weight") and p.dim() > 1)
    k_kernels = sorted(int(np.prod(w.shape)) for w in kmodel.weights if w.path.endswith("kernel"))
    assert t_kernels == k_kernels
    t_biases = sum(p.numel() for k, p in tnet.named_parameters() if k.endswith("bias") and p.requires_grad)
    k_biases = sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights if w.path.endswith(("beta", "bias")))
    assert t_biases == k_biases
    x = torch.zeros(2, 3, 32, 32)
    assert tnet(x).shape == (2, 10)
    # the untrained 3x3 convolutions start as identity maps on their first in-channels, as in the port
    w = tnet[2].conv2.weight.detach()
    assert float(w[0, 0, 1, 1]) == 1.0 and float(w[0, 0].abs().sum()) == 1.0


def test_tta_level_two_averages_mirror_and_two_translations(ref):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        mirror = 0.5 * net(x) + 0.5 * net(x.flip(-1))
        p = torch.nn.functional.pad(x, (1, 1, 1, 1), "reflect")
        shifted = [0.5 * net(v) + 0.5 * net(v.flip(-1)) for v in (p[:, :, :32, :32], p[:, :, 2:, 2:])]
        expected = 0.5 * mirror + 0.25 * (shifted[0] + shifted[1])
    assert torch.allclose(ref.tta_logits(net, x, 2), expected, atol=1e-6)
    assert torch.allclose(ref.tta_logits(net, x, 0), net(x).detach())


def test_reference_training_runs_its_planned_steps_and_reports_accuracies(ref):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2100, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 2100)
    out = ref.train_torch_reference(x, y, x[:50], y[:50], widths=(8, 8, 8), epochs=2, log=lambda *a: None)
    assert out["steps"] == 2 * (2100 // 1024)
    assert set(out["test_accuracy"]) == {"0", "2"}
    assert all(0.0 <= a <= 1.0 for a in out["test_accuracy"].values())


def test_summary_pairs_the_implementations_by_seed(ref):
    runs = [{"keras": {"test_accuracy": {"0": 0.90, "2": 0.91}}, "torch": {"test_accuracy": {"0": 0.88, "2": 0.90}}},
            {"keras": {"test_accuracy": {"0": 0.86, "2": 0.87}}, "torch": {"test_accuracy": {"0": 0.87, "2": 0.88}}}]
    s = ref.summarize(runs)
    assert s["keras"]["0"]["mean"] == pytest.approx(0.88)
    assert s["difference"]["2"] == pytest.approx(0.0)
    assert s["paired_difference_tta0"]["per_seed"] == pytest.approx([0.02, -0.01])
    alone = ref.summarize([{"seed": 0, "torch": r["torch"]} for r in runs])  # the published recipe alone
    assert set(alone) == {"torch"} and alone["torch"]["2"]["mean"] == pytest.approx(0.89)


def test_a_new_configuration_is_added_and_a_repeated_one_replaced(ref):
    def cfg(widths, epochs, tag):
        return {"settings": {"widths": widths, "epochs": epochs}, "tag": tag}

    merged = ref.merge_configs([cfg([64, 256, 256], 10, "full"), cfg([32, 128, 128], 10, "old")],
                               cfg([32, 128, 128], 10, "new"))
    assert [c["tag"] for c in merged] == ["new", "full"]
    merged = ref.merge_configs(merged, cfg([32, 128, 128], 4, "short"))
    assert [c["tag"] for c in merged] == ["short", "new", "full"]
