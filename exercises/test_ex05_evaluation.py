"""Graded tests of exercise 05 (lesson 05): confusion_matrix, per_class_recall, most_confident_mistakes.

Run: ``pytest exercises/test_ex05_evaluation.py``.
"""

import warnings

import numpy as np
import pytest


def _probs(n=200, k=5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), rng.integers(0, k, size=n)


@pytest.mark.points(2)
def test_confusion_matrix_known_values(ex):
    """Rows are the true class, columns the prediction."""
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    cm = ex.confusion_matrix(labels, preds, 3)
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert np.array_equal(cm, expected), f"got\n{cm}\nexpected (rows: truth, columns: prediction)\n{expected}"
    assert np.issubdtype(np.asarray(cm).dtype, np.integer), "counts are integers"


@pytest.mark.points(2)
def test_confusion_matrix_matches_scikit_learn_with_absent_classes(ex):
    """Shape (K, K) even when the last classes never occur; same counts as sklearn.metrics.confusion_matrix."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    labels, preds = rng.integers(0, 4, size=300), rng.integers(0, 4, size=300)
    cm = ex.confusion_matrix(labels, preds, 6)
    assert np.shape(cm) == (6, 6), f"shape {np.shape(cm)}, expected (6, 6) for num_classes=6"
    assert np.array_equal(cm, metrics.confusion_matrix(labels, preds, labels=range(6)))
    assert np.array_equal(ex.confusion_matrix(np.array([], int), np.array([], int), 3), np.zeros((3, 3)))


@pytest.mark.points(1)
def test_confusion_matrix_matches_the_package(ex, package_function):
    """Same counts as visiondl_keras.evaluation.diagnostics.confusion_matrices(...)["counts"]."""
    pkg = package_function("visiondl_keras.evaluation.diagnostics", "confusion_matrices")
    rng = np.random.default_rng(2)
    labels, preds = rng.integers(0, 10, size=500), rng.integers(0, 9, size=500)
    assert np.array_equal(ex.confusion_matrix(labels, preds, 10), pkg(labels, preds, 10)["counts"])


@pytest.mark.points(2)
def test_per_class_recall_known_values(ex):
    """recall[i] = cm[i, i] / row i sum (not the column sum: that would be precision)."""
    cm = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert np.allclose(ex.per_class_recall(cm), [0.5, 1.0, 2 / 3])
    cm = np.array([[8, 2], [6, 4]])
    assert np.allclose(ex.per_class_recall(cm), [0.8, 0.4])


@pytest.mark.points(1)
def test_per_class_recall_of_an_absent_class_is_nan(ex):
    """A class without examples gets nan, with no runtime warning; the others are unaffected."""
    cm = np.array([[3, 1, 0], [0, 0, 0], [0, 2, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recall = ex.per_class_recall(cm)
    assert np.isnan(recall[1]), f"class 1 has no examples: expected nan, got {recall[1]}"
    assert np.allclose(recall[[0, 2]], [0.75, 0.5])


@pytest.mark.points(2)
def test_most_confident_mistakes_known_values(ex):
    """Only wrong predictions, ordered by the confidence of the *predicted* class, highest first."""
    probs = np.array(
        [
            [0.90, 0.05, 0.05],  # 0: right
            [0.10, 0.60, 0.30],  # 1: wrong, conf 0.60
            [0.15, 0.15, 0.70],  # 2: wrong, conf 0.70
            [0.50, 0.45, 0.05],  # 3: wrong, conf 0.50 (true-class prob 0.45: the highest of the mistakes)
            [0.02, 0.97, 0.01],  # 4: right
            [0.05, 0.15, 0.80],  # 5: wrong, conf 0.80
        ]
    )
    labels = np.array([0, 0, 1, 1, 1, 0])
    got = np.asarray(ex.most_confident_mistakes(probs, labels, 3))
    assert got.tolist() == [5, 2, 1], f"got {got.tolist()}, expected [5, 2, 1]"
    assert np.asarray(ex.most_confident_mistakes(probs, labels, 10)).tolist() == [5, 2, 1, 3]


@pytest.mark.points(1)
def test_most_confident_mistakes_without_mistakes(ex):
    """No mistakes gives an empty array; k=0 too."""
    probs = np.eye(4) * 0.9 + 0.025
    got = np.asarray(ex.most_confident_mistakes(probs, np.arange(4), 5))
    assert got.shape == (0,), f"expected an empty array, got {got!r}"
    probs2, labels2 = _probs(seed=2)
    assert np.asarray(ex.most_confident_mistakes(probs2, labels2, 0)).shape == (0,)


@pytest.mark.points(1)
def test_most_confident_mistakes_ties_keep_index_order(ex):
    """Equal confidences keep the lower index first."""
    probs = np.array([[0.2, 0.8], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 0, 0])
    assert np.asarray(ex.most_confident_mistakes(probs, labels, 5)).tolist() == [3, 0, 1, 2, 4]


@pytest.mark.points(1)
def test_most_confident_mistakes_on_random_predictions(ex):
    """On random data: all returned indices are mistakes, confidences are non-increasing, none is left out."""
    probs, labels = _probs(500, 10, seed=3)
    got = np.asarray(ex.most_confident_mistakes(probs, labels, 25))
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(pred != labels)
    assert len(got) == 25 and np.all(pred[got] != labels[got])
    assert np.all(np.diff(conf[got]) <= 0), "not sorted by confidence, highest first"
    assert conf[got].min() >= np.sort(conf[wrong])[-25], "a more confident mistake was left out"


@pytest.mark.points(1)
def test_most_confident_mistakes_matches_the_package(ex, package_function):
    """Same indices as visiondl_keras.evaluation.diagnostics.most_confident_mistakes."""
    pkg = package_function("visiondl_keras.evaluation.diagnostics", "most_confident_mistakes")
    probs, labels = _probs(300, 10, seed=4)
    for k in (1, 7, 1000):
        assert np.asarray(ex.most_confident_mistakes(probs, labels, k)).tolist() == np.asarray(pkg(probs, labels, k)).tolist()


# ------------------------------------------------------------------ the contract, clause by clause


@pytest.mark.points(1)
def test_confusion_matrix_is_int64(ex):
    """The counts are an int64 numpy array, whatever integer dtype the labels come in."""
    cm = ex.confusion_matrix(np.array([0, 1, 1], np.int32), np.array([1, 1, 0], np.uint8), 2)
    assert isinstance(cm, np.ndarray) and cm.dtype == np.int64, f"{type(cm).__name__} {getattr(cm, 'dtype', '')}"
    assert cm.tolist() == [[0, 1], [1, 1]]


@pytest.mark.points(1)
def test_per_class_recall_keeps_its_input(ex):
    """The confusion matrix passed in is not modified, as int64 or as float64 (np.asarray does not copy it)."""
    for dtype in (np.int64, np.float64):
        cm = np.array([[3, 1, 0], [0, 0, 0], [0, 2, 2]], dtype=dtype)
        before = cm.copy()
        with np.errstate(all="ignore"):
            recall = np.asarray(ex.per_class_recall(cm))
        assert np.array_equal(cm, before), f"per_class_recall modified a {np.dtype(dtype).name} matrix"
        assert recall.dtype == np.float64 and np.allclose(recall[[0, 2]], [0.75, 0.5])


@pytest.mark.points(1)
def test_most_confident_mistakes_returns_an_int64_array(ex):
    """An int64 numpy array of indices (not a list), also when it is empty."""
    probs, labels = _probs(50, 4, seed=6)
    wrong = int(np.sum(probs.argmax(1) != labels))
    for k in (5, 0):
        got = ex.most_confident_mistakes(probs, labels, k)
        assert isinstance(got, np.ndarray), f"returned a {type(got).__name__}, expected a numpy array"
        assert got.dtype == np.int64 and got.shape == (min(k, wrong),), f"k={k}: {got.dtype} {got.shape}"


@pytest.mark.points(1)
def test_most_confident_mistakes_many_ties_keep_index_order(ex):
    """300 mistakes with only three distinct confidences: each group of ties comes out in index order (stable sort)."""
    rng = np.random.default_rng(7)
    conf = rng.choice([0.5, 0.6, 0.7], size=300)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.ones(300, int)  # class 0 is always predicted: every example is a mistake
    got = np.asarray(ex.most_confident_mistakes(probs, labels, 300)).tolist()
    expected = np.argsort(-conf, kind="stable").tolist()
    assert got == expected, "equal confidences must keep the lower index first (use a stable sort)"
