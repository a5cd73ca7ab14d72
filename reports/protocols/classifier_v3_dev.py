"Classifier protocol v3, development: feature additions to the reversal rule, walk-forward by year on pre-holdout data (2017-2021). Run: .venv/bin/python reports/protocols/classifier_v3_dev.py"
import warnings; warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, json, sys
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score, log_loss
from cryptopred.studies.classifier import read_real_daily
from cryptopred.features import build_panel, feature_columns
from cryptopred.data.csv import real_coins
from cryptopred.config import load_settings
s = load_settings()
d = s.real_data_dir  # ../shared/data/real, read in place
coins = real_coins(d)
frames = read_real_daily(d, coins)
frames = {c: f[f["timestamp"] < pd.Timestamp("2022-01-01", tz="UTC")] for c, f in frames.items()}
panel = build_panel(frames, "daily", settings=s)
base = [c for c in feature_columns(panel["ethereum"], drop_empty=True) if c in panel["bitcoin"].columns]
R = pd.DataFrame({c: panel[c]["ret_lag_1"] for c in coins})
mkt = R.mean(axis=1)  # equal-weight cross-coin mean return at t (those observed)
btc = panel["bitcoin"]
rows = []
for c in coins:
    f = panel[c]; f = f[f.index >= pd.Timestamp("2017-01-01", tz="UTC")].copy()
    f["btc_ret"] = btc["ret_lag_1"].reindex(f.index); f["btc_vol_7"] = btc["vol_7"].reindex(f.index)
    f["mkt_ret"] = mkt.reindex(f.index)
    f["rel_mkt"] = f["ret_lag_1"] - f["mkt_ret"]; f["rel_btc"] = f["ret_lag_1"] - f["btc_ret"]
    vz = f["volume_z"].fillna(0.0).clip(-4, 4); f["volume_z0"] = vz
    f["rev_x_volume"] = f["ret_z_1"] * vz
    f["rev_x_vol"] = f["ret_lag_1"] * f["vol_7"]
    f["rev_x_btcvol"] = f["ret_lag_1"] * f["btc_vol_7"]
    f["mcap_rank"] = np.log(f["price"])  # placeholder, not used
    f["coin"] = c
    ok = f["usable"].astype(bool) & f["target"].notna()
    rows.append(f[ok])
D = pd.concat(rows).sort_index()
SETS = {
 "rule: ret_lag_1": ["ret_lag_1"],
 "rule z: ret_z_1": ["ret_z_1"],
 "all base features": base,
 "R + market (mkt_ret, rel_mkt, rel_btc)": ["ret_lag_1", "mkt_ret", "rel_mkt", "rel_btc"],
 "R + rel_mkt only": ["rel_mkt", "mkt_ret"],
 "R + btc cross-asset (btc_ret, btc_vol_7)": ["ret_lag_1", "btc_ret", "btc_vol_7"],
 "R + volume-conditioned": ["ret_lag_1", "ret_z_1", "volume_z0", "rev_x_volume"],
 "R + vol-conditioned": ["ret_lag_1", "vol_7", "rev_x_vol"],
 "R + all additions": ["ret_lag_1", "ret_z_1", "mkt_ret", "rel_mkt", "rel_btc", "btc_ret", "btc_vol_7", "volume_z0", "rev_x_volume"],
 "base + all additions": base + ["mkt_ret", "rel_mkt", "rel_btc", "volume_z0", "rev_x_volume"] + (["btc_ret","btc_vol_7"] if "btc_ret" not in base else []),
}
allc = sorted(set(sum(SETS.values(), [])))
print("rows", len(D), "NaN rows", int(D[allc].isna().any(axis=1).sum()), D[allc].isna().sum()[lambda x: x>0].to_dict())
D = D[~D[allc].isna().any(axis=1)]
out = []
for year in (2019, 2020, 2021):
    t0 = pd.Timestamp(f"{year}-01-01", tz="UTC")
    tr = D[D.index < t0 - pd.Timedelta(days=1)]; te = D[(D.index >= t0) & (D.index < t0 + pd.DateOffset(years=1))]
    for c in coins:
        m = te["coin"] == c
        if m.sum() < 50: continue
        out.append({"year": year, "coin": c, "set": "reversal score -r(t)", "auc": roc_auc_score(te.loc[m, "target"], -te.loc[m, "ret_lag_1"]), "ll": np.nan})
    for name, cols in SETS.items():
        for C in (0.01, 1.0):
            est = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(tr[cols], tr["target"])
            p = est.predict_proba(te[cols])[:, 1]
            for c in coins:
                m = (te["coin"] == c).to_numpy()
                if m.sum() < 50: continue
                out.append({"year": year, "coin": c, "set": f"logit C={C}: {name}", "auc": roc_auc_score(te["target"][m], p[m]), "ll": log_loss(te["target"][m], p[m], labels=[0,1])})
    for name in ("all base features", "base + all additions"):
        cols = SETS[name]
        est = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=100, max_leaf_nodes=8, min_samples_leaf=200, random_state=0).fit(tr[cols], tr["target"])
        p = est.predict_proba(te[cols])[:, 1]
        for c in coins:
            m = (te["coin"] == c).to_numpy()
            if m.sum() < 50: continue
            out.append({"year": year, "coin": c, "set": f"hist_gb: {name}", "auc": roc_auc_score(te["target"][m], p[m]), "ll": log_loss(te["target"][m], p[m], labels=[0,1])})
O = pd.DataFrame(out)
rev = O[O.set == "reversal score -r(t)"].set_index(["year", "coin"])["auc"]
O["vs_rev"] = O["auc"] - rev.reindex(pd.MultiIndex.from_frame(O[["year", "coin"]])).to_numpy()
T = O.groupby("set").agg(auc=("auc", "mean"), vs_rev=("vs_rev", "mean"), vs_rev_sd=("vs_rev", "std"), n=("auc", "size"), ll=("ll", "mean")).sort_values("vs_rev", ascending=False)
T["t"] = T["vs_rev"] / (T["vs_rev_sd"] / np.sqrt(T["n"]))
pd.set_option("display.width", 200); pd.set_option("display.max_colwidth", 70)
print(T.round(4).to_string())
print(O.pivot_table(index="set", columns="year", values="vs_rev").round(4).to_string())
