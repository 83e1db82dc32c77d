"""The served model: the fitted Pipeline (ChurnFeatures + LightGBM), a Platt sigmoid on LightGBM's
raw score, and the decision threshold, in one scikit-learn classifier.

scikit-learn's ``CalibratedClassifierCV`` fits the sigmoid; this class keeps its two coefficients
and predicts by calling the transformer and the LightGBM Booster directly. The result is the
same to float precision, without the per-call input validation of three wrapper layers, which
cost about 3 ms of the 3.5 ms a single-row prediction took (``benchmarks/predict.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

#: Inputs of up to this many rows are scored on one thread. LightGBM's OpenMP team costs more
#: to start and join than a few hundred rows take, and on a busy machine its threads wait for a
#: free core (or spin for one, taking it from the caller's other work): the service's batches
#: and single rows. Larger inputs (training, the score step) use LightGBM's default threads.
ONE_THREAD_ROWS = 1000


class ChurnModel(ClassifierMixin, BaseEstimator):
    """A fitted ``Pipeline([("features", ChurnFeatures), ("model", LGBMClassifier)])``,
    calibrated and given a decision threshold by ``fit`` on data the pipeline never saw.

    ``predict_proba`` takes what the transformer takes: a frame, or a mapping of column name to
    values. ``predict`` answers 1 (churn) where the probability reaches ``threshold_``.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ChurnModel:
        """Calibrate on rows the pipeline never saw, and choose the threshold on them."""
        return self.calibrate(self.decision_function(X), y)

    def calibrate(self, raw: np.ndarray, y: np.ndarray) -> ChurnModel:
        """Calibrate on raw scores given for labelled rows (out-of-fold scores from models like
        this pipeline's, when every row went into fitting it), and choose the threshold on them.
        """
        scores = np.asarray(raw, dtype=np.float64)[:, None]
        calibrated = CalibratedClassifierCV(FrozenEstimator(_Scores()), method="sigmoid")
        calibrator = calibrated.fit(scores, y).calibrated_classifiers_[0].calibrators[0]
        self.a_, self.b_ = float(calibrator.a_), float(calibrator.b_)
        self.classes_ = calibrated.classes_
        self.threshold_ = best_threshold(np.asarray(y), self.churn_probability(scores[:, 0]))
        return self

    def decision_function(self, X: object) -> np.ndarray:
        """LightGBM's raw score (log-odds before calibration)."""
        features, classifier = self.pipeline.named_steps.values()
        matrix = features.transform(X)
        # 0: LightGBM's default (OpenMP's thread count); passed every time, as LightGBM keeps
        # the last call's thread count for the next one
        threads = 1 if len(matrix) <= ONE_THREAD_ROWS else 0
        return classifier.booster_.predict(matrix, raw_score=True, num_threads=threads)

    def churn_probability(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated churn probability of LightGBM raw scores."""
        return expit(-(self.a_ * raw + self.b_))

    def predict_proba(self, X: object) -> np.ndarray:
        churn = self.churn_probability(self.decision_function(X))
        return np.column_stack([1.0 - churn, churn])

    def predict(self, X: object) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)]


class _Scores(ClassifierMixin, BaseEstimator):
    """A fitted "classifier" whose raw score is its one input column: lets scikit-learn's sigmoid
    calibration run on scores already computed."""

    classes_ = np.array([0, 1])

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Scores:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, 0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


def best_threshold(label: np.ndarray, probability: np.ndarray) -> float:
    """The probability cut that maximises F1 (churners are rare: accuracy would say never)."""
    candidates = np.unique(np.round(probability, 3))
    scores = [f1_score(label, probability >= cut, zero_division=0) for cut in candidates]
    return float(candidates[int(np.argmax(scores))]) if len(candidates) else 0.5
