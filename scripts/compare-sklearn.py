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

With `--repeats R --rapport BIN` it pools the train and test rows and, for
R seeds, splits them afresh (stratified 80/20), runs both scikit-learn models
and `BIN train --csv` on each split, and prints per split and overall: mean
test ROC AUC and log loss, and Rapport's mean ROC AUC gain over each model
with a 95% interval from the corrected resampled t-test (Nadeau & Bengio,
2003: the splits share most of their training rows, so the plain t-interval
would be too narrow). One split is one draw; this asks which method is better
on data like this, which is what a comparison on unseen data tests.

    scripts/compare-sklearn.py --train T --test S --target COL --repeats 10 --rapport target/debug/rapport
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
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
from scipy import stats

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
    ap.add_argument("--repeats", type=int, help="splits to compare on (needs --rapport)")
    ap.add_argument("--rapport", help="the rapport binary, for --repeats")
    args = ap.parse_args()

    train = read(args.train)
    if args.repeats:
        if not args.rapport:
            raise SystemExit("--repeats needs --rapport BIN (e.g. target/debug/rapport)")
        pooled = pd.concat([train, read(args.test)]) if args.test else train
        print(json.dumps(repeated(pooled, args), indent=2))
        return
    if args.test:
        test = read(args.test)
    else:
        train, test = train_test_split(
            train, test_size=0.2, random_state=42, stratify=train[args.target]
        )
    y_test = positive_label(test[args.target])
    theirs = None
    if args.against:
        theirs = pd.read_csv(args.against).sort_values("row")
        if len(theirs) != len(y_test) or (theirs["label"].to_numpy() != y_test).any():
            raise SystemExit(f"{args.against}: rows or labels differ from the test file")
        theirs = theirs["probability"].to_numpy()
    results = []
    for name, p, seconds in sklearn_models(train, test, args.target, args.drop):
        results.append(
            {
                "dataset": args.name or args.train,
                "algorithm": name,
                "train_rows": len(train),
                "test_rows": len(test),
                "test_roc_auc": round(roc_auc_score(y_test, p), 4),
                "test_log_loss": round(log_loss(y_test, p), 4),
                "train_seconds": round(seconds, 3),
            }
        )
        if theirs is not None:
            results[-1]["rapport_minus_this"] = paired_auc_gap(theirs, p, y_test, args.resamples)
    print(json.dumps(results, indent=2))


def sklearn_models(train, test, target, drop):
    """Yields (name, test probabilities, training seconds) for both models."""
    y_train = positive_label(train[target])
    features = [c for c in train.columns if c != target and c not in drop]
    as_frame, pre = preprocessor(train, features)
    x_train, x_test = as_frame(train), as_frame(test)
    models = {
        "sklearn_logistic_regression": LogisticRegression(max_iter=2000),
        "sklearn_hist_gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }
    for name, model in models.items():
        pipe = Pipeline([("pre", pre), ("model", model)])
        start = time.perf_counter()
        pipe.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        yield name, np.clip(pipe.predict_proba(x_test)[:, 1], 1e-15, 1 - 1e-15), seconds


def rapport_model(bin_path, train, test, target, drop, work):
    """Runs `rapport train --csv` on the split; returns (chosen algorithm, its
    test probabilities, seconds of the whole training)."""
    tr, te, pred = (os.path.join(work, f) for f in ("train.parquet", "test.parquet", "p.csv"))
    train.to_parquet(tr, index=False)
    test.to_parquet(te, index=False)
    cmd = [bin_path, "train", "--csv", tr, "--test", te, "--target", target, "--json", "--predictions", pred]
    if drop:
        cmd += ["--drop", *drop]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    # The blend's time is the whole training (both models and the preparation).
    seconds = max(r["train_seconds"] for r in out["results"])
    return out["chosen"], pd.read_csv(pred).sort_values("row")["probability"].to_numpy(), seconds


def repeated(pooled, args):
    """The `--repeats` comparison: see the module doc."""
    splits = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.repeats):
            train, test = train_test_split(
                pooled, test_size=0.2, random_state=seed, stratify=pooled[args.target]
            )
            y = positive_label(test[args.target])
            chosen, p, seconds = rapport_model(args.rapport, train, test, args.target, args.drop, work)
            row = {"seed": seed, "rapport": scores(y, p, seconds) | {"chosen": chosen}}
            for name, q, secs in sklearn_models(train, test, args.target, args.drop):
                row[name] = scores(y, q, secs)
            splits.append(row)
            print(json.dumps(row), file=sys.stderr)
    test_share = 0.2 / 0.8
    summary = {}
    for name in splits[0]:
        if name == "seed":
            continue
        auc = np.array([s[name]["test_roc_auc"] for s in splits])
        summary[name] = {
            "mean_test_roc_auc": round(auc.mean(), 4),
            "mean_test_log_loss": round(np.mean([s[name]["test_log_loss"] for s in splits]), 4),
            "mean_train_seconds": round(np.mean([s[name]["train_seconds"] for s in splits]), 2),
        }
        if name != "rapport":
            gap = np.array([s["rapport"]["test_roc_auc"] for s in splits]) - auc
            summary[name]["rapport_minus_this"] = corrected_t(gap, test_share)
    return {"dataset": args.name or args.train, "rows": len(pooled), "repeats": args.repeats,
            "summary": summary, "splits": splits}


def scores(y, p, seconds):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "test_roc_auc": round(roc_auc_score(y, p), 4),
        "test_log_loss": round(log_loss(y, p), 4),
        "train_seconds": round(seconds, 2),
    }


def corrected_t(gap, test_share):
    """Mean of per-split differences with the Nadeau–Bengio 95% interval: the
    variance is scaled by 1/R + n_test/n_train, not 1/R, because the splits'
    training sets overlap."""
    r = len(gap)
    se = np.sqrt((1 / r + test_share) * gap.var(ddof=1))
    half = stats.t.ppf(0.975, r - 1) * se
    return {
        "mean_roc_auc_gap": round(gap.mean(), 4),
        "ci95": [round(gap.mean() - half, 4), round(gap.mean() + half, 4)],
        "splits_won": int((gap >= 0).sum()),
    }


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
