"""Fixtures for the registry tests: small real models, wrappers shaped like the forecaster's and the classifier's,
registration metadata, and the worker functions run in separate processes."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cryptopred.artifacts import frame_sha256
from cryptopred.registry import ModelRegistry

logging.getLogger("cmdstanpy").disabled = True

FEATURES = ["ret_1", "ret_2", "vol_7", "mom_7"]


def xy(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    "A small feature frame and a binary target that depends on the first feature."
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES,
                     index=pd.date_range("2025-01-01", periods=n, freq="D", tz="UTC"))
    y = (X["ret_1"] + rng.normal(scale=1.0, size=n) > 0).astype(int).to_numpy()
    return X, y


def classifiers() -> dict[str, Any]:
    "The model families the classifier uses, fitted on `xy()`, each with a StandardScaler inside."
    X, y = xy()
    models = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression()),
        "forest": make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0)),
        "hgb": make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=15, random_state=0)),
        "calibrated": CalibratedClassifierCV(
            make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=10, random_state=0)),
            method="sigmoid", cv=TimeSeriesSplit(3)),
    }
    return {k: m.fit(X.to_numpy(), y) for k, m in models.items()}


def logreg():
    X, y = xy()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X.to_numpy(), y)


def info(**overrides) -> dict:
    "Registration metadata as a trainer would pass it."
    X, _ = xy()
    base = dict(horizon=1, data_source="simulated", data_hash=frame_sha256(X), train_start=X.index[0],
                train_end=X.index[-1], features=FEATURES, params={"C": 1.0}, cv_metrics={"log_loss": 0.69},
                holdout_metrics={"log_loss": 0.68, "roc_auc": 0.55})
    return {**base, **overrides}


def prophet_days(n: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ds": pd.date_range("2025-01-01", periods=n, freq="D"),
                         "y": np.log(100 + np.cumsum(rng.normal(size=n)))})


def tiny_prophet():
    "A real Prophet model, fitted in well under a second."
    from prophet import Prophet
    return Prophet(weekly_seasonality=False, yearly_seasonality=False, daily_seasonality=False,
                   uncertainty_samples=50).fit(prophet_days())


class ProphetJSON:
    "Shaped like `cryptopred.forecast.ProphetForecaster`: a Prophet model plus its own settings, as one JSON string."
    def __init__(self, model, settings: dict):
        self.model, self.settings = model, settings

    def to_json(self) -> str:
        from prophet.serialize import model_to_json
        return json.dumps({"prophet": model_to_json(self.model), "settings": self.settings})

    @classmethod
    def from_json(cls, text: str) -> ProphetJSON:
        from prophet.serialize import model_from_json
        d = json.loads(text)
        return cls(model_from_json(d["prophet"]), d["settings"])


@dataclass
class DirectionModel:
    "Shaped like the classifier's wrapper: a pipeline plus the feature list it expects."
    pipeline: Any
    features: list
    horizon: int = 1

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(df[self.features].to_numpy())[:, 1]


class Ensemble:
    "A non-dataclass wrapper using the explicit to_parts/from_parts protocol (two estimators and a weight)."
    def __init__(self, a, b, weight: float):
        self.a, self.b, self.weight = a, b, weight

    def to_parts(self) -> dict:
        return {"a": self.a, "b": self.b, "weight": self.weight}

    @classmethod
    def from_parts(cls, parts: dict) -> Ensemble:
        return cls(parts["a"], parts["b"], parts["weight"])

    def predict_proba(self, X) -> np.ndarray:
        return self.weight * self.a.predict_proba(X) + (1 - self.weight) * self.b.predict_proba(X)


class Doubler(BaseEstimator, TransformerMixin):
    "A hand-written transformer: a type skops does not know and the registry does not trust."
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return 2 * np.asarray(X)


def register_many(root: str, n: int, model, barrier, writer: int) -> None:
    "Process body: wait for every writer, then register `n` versions as fast as possible."
    reg = ModelRegistry(root, lock_timeout=60)
    barrier.wait(timeout=60)
    for i in range(n):
        reg.register("classifier", "bitcoin", "daily", model, **info(extra={"writer": writer, "i": i}))


def hold_lock(root: str, ready, release) -> None:
    "Process body: hold the writers' lock of classifier/bitcoin/daily until told to let go."
    reg = ModelRegistry(root)
    with reg._locked("classifier", "bitcoin", "daily"):
        ready.set()
        release.wait(timeout=60)
