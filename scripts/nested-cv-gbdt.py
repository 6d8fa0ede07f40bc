#!/usr/bin/env python3
"""Nested cross-validation of Rapport's boosted-tree procedure and variants of
its settings, on one training file, so a setting is chosen without looking at
the test split.

Outer loop: stratified 5-fold over the training rows, repeated `--repeats`
times. Inside each outer fold the whole procedure of
pipelines/src/train/gbdt.rs runs on the other four fifths: the same column
rules as scripts/compare-sklearn.py (and pipelines/src/train/table.rs),
`--folds` stratified folds, one forust booster per fold early-stopped on its
own fold (log loss, patience 50), their log-odds averaged; it is scored on
the held-out fifth. Prints per variant the mean outer ROC AUC and log loss,
and the figures on `--test` for reference. With `--hgb`, scikit-learn's
HistGradientBoostingClassifier (defaults) on the same outer folds.

Needs `pip install forust==0.8.0 scikit-learn pandas pyarrow` (forust's Python
build of the Rust crate Rapport uses, same version).

    scripts/nested-cv-gbdt.py --train T --test S --target COL [--variants base,depth5] [--hgb]
"""

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from forust import GradientBooster
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

# pipelines/src/train/gbdt.rs
SHIPPED = dict(
    objective_type="LogLoss",
    learning_rate=0.05,
    max_depth=4,
    iterations=2000,
    l2=1.0,
    min_leaf_weight=5.0,
    evaluation_metric="LogLoss",
    early_stopping_rounds=50,
    parallel=False,
)

# name: (changed settings, inner folds, fold-seed repeats averaged)
VARIANTS = {
    "base": ({}, 5, 1),
    "sub0.8": ({"subsample": 0.8, "sample_method": "Random"}, 5, 1),
    "col0.8": ({"colsample_bytree": 0.8}, 5, 1),
    "depth5": ({"max_depth": 5}, 5, 1),
    "depth6": ({"max_depth": 6}, 5, 1),
    "lr0.02": ({"learning_rate": 0.02, "iterations": 5000, "early_stopping_rounds": 100}, 5, 1),
    "folds10": ({}, 10, 1),
    "bag3": ({}, 5, 3),
    "mlw1": ({"min_leaf_weight": 1.0}, 5, 1),
    "leaves31": ({"grow_policy": "LossGuide", "max_leaves": 31, "max_depth": 100}, 5, 1),
    # The boosters also see a logistic regression's out-of-fold log-odds.
    "lrfeat": ({"stack_linear": True}, 5, 1),
}


def _compare_sklearn():
    """scripts/compare-sklearn.py, for its file reader, label rule and column
    rules (the same as Rust's), so the two scripts read a table the same way."""
    path = Path(__file__).with_name("compare-sklearn.py")
    spec = importlib.util.spec_from_file_location("compare_sklearn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _compare_sklearn()
read, positive_label = _shared.read, _shared.positive_label


def design(train, test, target):
    """Fits compare-sklearn.py's column rules (with Rust's missing-value
    indicators) on `train` and returns both design matrices."""
    as_frame, pre = _shared.preprocessor(train, [c for c in train.columns if c != target], indicator=True)
    x, x_out = pre.fit_transform(as_frame(train)), pre.transform(as_frame(test))
    return x.astype(np.float64), x_out.astype(np.float64)


def with_linear_score(x, y, x_out, folds):
    """`x` and `x_out` with one more column: a logistic regression's log-odds,
    out-of-fold for the rows of `x` (so the boosters never see a score fitted
    on the row itself), from a fit on all of `x` for `x_out`."""
    oof = np.zeros(len(x))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=7).split(x, y):
        oof[held] = LogisticRegression(max_iter=2000).fit(x[fit], y[fit]).decision_function(x[held])
    out = LogisticRegression(max_iter=2000).fit(x, y).decision_function(x_out)
    return np.column_stack([x, oof]), np.column_stack([x_out, out])


def cross_fit(x, y, x_out, params, folds, repeats):
    """Mean log-odds on `x_out` of one early-stopped booster per inner fold."""
    params = dict(params)
    if params.pop("stack_linear", False):
        x, x_out = with_linear_score(x, y, x_out, folds)
    total, n = np.zeros(len(x_out)), 0
    for r in range(repeats):
        inner = StratifiedKFold(folds, shuffle=True, random_state=1000 * r)
        for k, (fit, held) in enumerate(inner.split(x, y)):
            b = GradientBooster(seed=k, **params)
            b.fit(x[fit], y[fit], evaluation_data=[(x[held], y[held])])
            total += b.predict(x_out)
            n += 1
    return total / n


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def outer_folds(train, y, repeats):
    for rep in range(repeats):
        yield from StratifiedKFold(5, shuffle=True, random_state=100 + rep).split(train, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hgb", action="store_true")
    args = ap.parse_args()
    train, test = read(args.train), read(args.test)
    y, y_test = positive_label(train[args.target]), positive_label(test[args.target])
    for name in args.variants.split(","):
        changed, folds, repeats = VARIANTS[name]
        params = dict(SHIPPED, **changed)
        started, aucs, losses = time.time(), [], []
        for fit, held in outer_folds(train, y, args.repeats):
            xa, xb = design(train.iloc[fit], train.iloc[held], args.target)
            z = cross_fit(xa, y[fit], xb, params, folds, repeats)
            aucs.append(roc_auc_score(y[held], z))
            losses.append(log_loss(y[held], sigmoid(z)))
        xa, xb = design(train, test, args.target)
        z = cross_fit(xa, y, xb, params, folds, repeats)
        print(json.dumps({
            "variant": name,
            "nested_cv_roc_auc": round(float(np.mean(aucs)), 4),
            "nested_cv_log_loss": round(float(np.mean(losses)), 4),
            "test_roc_auc": round(float(roc_auc_score(y_test, z)), 4),
            "test_log_loss": round(float(log_loss(y_test, sigmoid(z))), 4),
            "seconds": round(time.time() - started, 1),
        }), flush=True)
    if args.hgb:
        aucs = []
        for fit, held in outer_folds(train, y, args.repeats):
            xa, xb = design(train.iloc[fit], train.iloc[held], args.target)
            m = HistGradientBoostingClassifier(random_state=0).fit(xa, y[fit])
            aucs.append(roc_auc_score(y[held], m.predict_proba(xb)[:, 1]))
        print(json.dumps({"variant": "sklearn-histgb",
                          "nested_cv_roc_auc": round(float(np.mean(aucs)), 4)}))


if __name__ == "__main__":
    main()
