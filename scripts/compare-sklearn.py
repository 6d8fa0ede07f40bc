#!/usr/bin/env python3
"""Baseline for `rapport train --csv`: scikit-learn's LogisticRegression and
HistGradientBoostingClassifier on the very same train/test files, with the same
column rules as rapport-pipelines (see pipelines/src/train/table.rs):

- string columns with more than 100 distinct values in the training split are
  identifiers or free text and are dropped; `--drop` drops more by name;
- other string / boolean columns are categorical: most frequent value imputed,
  one-hot encoded (unknown test values ignored);
- numeric columns: median imputed, standardised.

Prints one JSON object per model: test ROC AUC, log loss and training seconds.
With `--against P.csv` (written by `rapport train --csv … --test S --predictions
P.csv`) it also reports, per model, Rapport's ROC AUC minus the model's on the
very same test rows, with a paired bootstrap 95% interval: whether a gap is
more than the noise of one test split.

    scripts/compare-sklearn.py --train T.parquet --test S.parquet --target COL [--drop C ...]
    scripts/compare-sklearn.py --train ALL.csv --target churn   # stratified 80/20 split, seed 42
"""

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MAX_LEVELS = 100


def read(path):
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


def positive_label(y):
    """The same rule as Rust: true/yes/1 are positive; otherwise the rarer value."""
    values = pd.Series(y).astype(str).str.lower()
    for p in ("true", "yes", "1"):
        if (values == p).any():
            return (values == p).astype(int).to_numpy()
    rare = values.value_counts().idxmin()
    return (values == rare).astype(int).to_numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test")
    ap.add_argument("--target", required=True)
    ap.add_argument("--drop", nargs="*", default=[])
    ap.add_argument("--name", default="")
    ap.add_argument("--against", help="Rapport's test predictions (row,label,probability)")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()

    train = read(args.train)
    if args.test:
        test = read(args.test)
    else:
        train, test = train_test_split(
            train, test_size=0.2, random_state=42, stratify=train[args.target]
        )
    y_train = positive_label(train[args.target])
    y_test = positive_label(test[args.target])
    features = [c for c in train.columns if c != args.target and c not in args.drop]
    as_frame, pre = preprocessor(train, features)
    x_train, x_test = as_frame(train), as_frame(test)
    models = {
        "sklearn_logistic_regression": LogisticRegression(max_iter=2000),
        "sklearn_hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }
    theirs = None
    if args.against:
        theirs = pd.read_csv(args.against).sort_values("row")
        if len(theirs) != len(y_test) or (theirs["label"].to_numpy() != y_test).any():
            raise SystemExit(f"{args.against}: rows or labels differ from the test file")
        theirs = theirs["probability"].to_numpy()
    results = []
    for name, model in models.items():
        pipe = Pipeline([("pre", pre), ("model", model)])
        start = time.perf_counter()
        pipe.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        p = np.clip(pipe.predict_proba(x_test)[:, 1], 1e-15, 1 - 1e-15)
        results.append(
            {
                "dataset": args.name or args.train,
                "algorithm": name,
                "train_rows": len(x_train),
                "test_rows": len(x_test),
                "test_roc_auc": round(roc_auc_score(y_test, p), 4),
                "test_log_loss": round(log_loss(y_test, p), 4),
                "train_seconds": round(seconds, 3),
            }
        )
        if theirs is not None:
            results[-1]["rapport_minus_this"] = paired_auc_gap(theirs, p, y_test, args.resamples)
    print(json.dumps(results, indent=2))


def preprocessor(train, features, indicator=False):
    """The column rules, fitted to nothing yet: returns a function that puts a
    frame's kept columns in shape and the ColumnTransformer to fit on it.
    `indicator` adds a missing-value column per numeric (as Rust's prep does)."""
    numeric, categorical = [], []
    for c in features:
        s = train[c]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            if s.astype(str).nunique() > MAX_LEVELS:
                continue
            categorical.append(c)
        else:
            numeric.append(c)

    def as_frame(df):
        out = df[numeric + categorical].copy()
        for c in numeric:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        for c in categorical:
            out[c] = out[c].astype(object).where(out[c].notna(), np.nan).astype(str)
        return out

    num = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=indicator)), ("scale", StandardScaler())])
    cat = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    return as_frame, ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)])


def paired_auc_gap(a, b, y, resamples, seed=42):
    """ROC AUC of `a` minus that of `b` on labels `y`, with the 2.5th and 97.5th
    percentiles over bootstrap resamples of the rows (the same rows for both)."""
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        gaps.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    low, high = np.percentile(gaps, [2.5, 97.5])
    return {
        "roc_auc_gap": round(roc_auc_score(y, a) - roc_auc_score(y, b), 4),
        "ci95": [round(low, 4), round(high, 4)],
    }


if __name__ == "__main__":
    main()
