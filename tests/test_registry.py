"""The model registry: round trips of real models, checksum refusal, promotion rule, rollback, concurrent writers,
untrusted types, failed writes, and the `cryptopred registry` console script."""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from support.models import (
    FEATURES,
    DirectionModel,
    Doubler,
    Ensemble,
    ProphetJSON,
    classifiers,
    hold_lock,
    info,
    logreg,
    prophet_days,
    register_many,
    tiny_prophet,
    xy,
)

from cryptopred.artifacts import (
    KINDS,
    MANIFEST,
    IntegrityError,
    ModelFormatError,
    ModelKind,
    ModelNotFound,
    PromotionError,
    RegistryBusy,
    RegistryError,
    UntrustedModelError,
    sha256_hex,
)
from cryptopred.cli import main as cli_main
from cryptopred.common import CryptopredError
from cryptopred.config import load_settings
from cryptopred.registry import ChampionWatcher, ModelRegistry

KEY = ("classifier", "bitcoin", "daily")


@pytest.fixture(scope="module")
def fitted():
    return classifiers()


@pytest.fixture(scope="module")
def prophet_model():
    return tiny_prophet()


@pytest.fixture
def reg(settings):
    return ModelRegistry(settings=settings)


def folder(reg, version, key=KEY) -> Path:
    return reg.root.joinpath(*key, version)


def snapshot(reg, key=KEY) -> dict[str, bytes]:
    "Every file under one (kind, coin, granularity), except the lock file."
    base = reg.root.joinpath(*key)
    return {str(p.relative_to(base)): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file() and p.name != ".lock"}


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("name", ["logreg", "forest", "hgb", "calibrated"])
def test_sklearn_round_trip(reg, fitted, name):
    X, _ = xy(seed=5)
    v = reg.register(*KEY, fitted[name], **info())
    got = reg.load(*KEY, "challenger")
    assert got.version == v and type(got.model) is type(fitted[name])
    np.testing.assert_array_equal(got.model.predict_proba(X.to_numpy()), fitted[name].predict_proba(X.to_numpy()))
    assert got.metadata["model_format"]["format"] == "skops"
    assert sorted(p.name for p in folder(reg, v).iterdir()) == ["SHA256SUMS", "metadata.json", "model.skops"]


def test_sha256sums_is_checkable_with_sha256sum(reg, fitted):
    v = reg.register(*KEY, fitted["hgb"], **info())
    if shutil.which("sha256sum") is None: pytest.skip("sha256sum is not installed")
    p = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=folder(reg, v), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": OK") == 2


def test_metadata_schema(reg, fitted):
    X, _ = xy()
    v = reg.register(*KEY, fitted["forest"], **info(extra={"note": "smoke"}))
    m = json.loads((folder(reg, v) / "metadata.json").read_text())
    assert re.fullmatch(r"v0001-\d{8}T\d{6}Z", v) and m["version"] == v and m["schema"] == 1
    assert pd.Timestamp(m["created_at"]).tzinfo is not None
    assert (m["kind"], m["coin"], m["granularity"], m["horizon"]) == (*KEY, 1)
    assert m["data_source"] == "simulated" and m["data_hash"].startswith("sha256:") and len(m["data_hash"]) == 71
    assert m["train_start"] == X.index[0].isoformat() and m["train_end"] == X.index[-1].isoformat()
    assert m["features"] == FEATURES and m["params"] == {"C": 1.0}
    assert m["cv_metrics"] == {"log_loss": 0.69} and m["holdout_metrics"]["roc_auc"] == 0.55
    assert m["model_format"] == {"format": "skops", "class": "sklearn.pipeline:Pipeline",
                                 "skops_types": ["sklearn.tree._tree.Tree"]}
    assert m["files"] == ["model.skops"] and m["extra"] == {"note": "smoke"}
    assert set(m["libraries"]) == {"python", "numpy", "pandas", "sklearn", "prophet", "skops", "cryptopred"}
    assert m["libraries"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert m["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", m["git_commit"])


def test_dataclass_wrapper_round_trip_without_pickle(settings, fitted):
    reg = ModelRegistry(settings=settings, trusted_classes=[DirectionModel])
    X, _ = xy(seed=3)
    dm = DirectionModel(fitted["hgb"], FEATURES, horizon=7)
    v = reg.register(*KEY, dm, **info())
    assert sorted(p.name for p in folder(reg, v).iterdir()) == ["SHA256SUMS", "metadata.json", "parts.json",
                                                                "pipeline.skops"]
    assert json.loads((folder(reg, v) / "parts.json").read_text()) == {"features": FEATURES, "horizon": 7}
    got = reg.load(*KEY, v).model
    assert isinstance(got, DirectionModel) and got.features == FEATURES and got.horizon == 7
    np.testing.assert_array_equal(got.predict_proba(X), dm.predict_proba(X))


def test_to_parts_wrapper_round_trip(settings, fitted):
    reg = ModelRegistry(settings=settings, trusted_classes=["support.models:Ensemble"])
    X, _ = xy(seed=4)
    ens = Ensemble(fitted["logreg"], fitted["calibrated"], 0.25)
    v = reg.register(*KEY, ens, **info())
    got = reg.load(*KEY, v)
    assert got.metadata["model_format"]["estimators"] == ["a", "b"]
    assert "sklearn.calibration._CalibratedClassifier" in got.metadata["model_format"]["skops_types"]
    np.testing.assert_array_equal(got.model.predict_proba(X.to_numpy()), ens.predict_proba(X.to_numpy()))


def test_prophet_round_trip(reg, prophet_model):
    days = prophet_days()
    v = reg.register("forecaster", "ethereum", "daily", prophet_model, horizon=7, data_source="simulated",
                     data_hash="sha256:" + "0" * 64, train_start=days.ds.min(), train_end=days.ds.max())
    got = reg.load("forecaster", "ethereum", "daily", v)
    assert got.metadata["model_format"] == {"format": "prophet-json", "class": "prophet.forecaster:Prophet"}
    future = prophet_model.make_future_dataframe(7)
    a, b = prophet_model.predict(future), got.model.predict(future)
    np.testing.assert_allclose(b.yhat, a.yhat)
    assert b.yhat_lower.notna().all()


def test_prophet_json_wrapper_round_trip(settings, prophet_model):
    reg = ModelRegistry(settings=settings, trusted_classes=[ProphetJSON])
    days = prophet_days()
    fc = ProphetJSON(prophet_model, {"anchor": "last_price", "window_days": 60, "interval_widths": [0.8, 0.95]})
    v = reg.register("forecaster", "bitcoin", "hourly", fc, horizon=24, data_source="simulated",
                     data_hash="sha256:" + "1" * 64, train_start=days.ds.min(), train_end=days.ds.max())
    assert (folder(reg, v, ("forecaster", "bitcoin", "hourly")) / "model.json").read_text() == fc.to_json()
    got = reg.load("forecaster", "bitcoin", "hourly", v).model
    assert isinstance(got, ProphetJSON) and got.settings == fc.settings
    future = prophet_model.make_future_dataframe(3)
    np.testing.assert_allclose(got.model.predict(future).yhat, prophet_model.predict(future).yhat)


def test_importing_the_registry_imports_no_model_library():
    code = ("import sys, cryptopred.registry, cryptopred.cli; "
            "print(sorted(m for m in ('cryptopred.forecast', 'prophet', 'sklearn', 'skops') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
    assert set(KINDS) == {"forecaster", "classifier"}


# ---------------------------------------------------------------- integrity

def _flip_byte(d: Path):
    p = d / "model.skops"; b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 0x01; p.write_bytes(bytes(b))

def _truncate(d: Path):
    p = d / "model.skops"; p.write_bytes(p.read_bytes()[:-100])

def _remove(d: Path):
    (d / "model.skops").unlink()

def _edit_metadata(d: Path):
    p = d / "metadata.json"; m = json.loads(p.read_text()); m["holdout_metrics"]["log_loss"] = 0.1
    p.write_text(json.dumps(m, indent=2))

def _edit_metadata_and_checksums(d: Path):
    _edit_metadata(d)
    lines = [f"{sha256_hex((d / n).read_bytes())}  {n}\n" for n in ("metadata.json", "model.skops")]
    (d / MANIFEST).write_text("".join(lines))

def _extra_file(d: Path):
    (d / "model.skops.bak").write_bytes(b"x")

def _no_manifest(d: Path):
    (d / MANIFEST).unlink()

TAMPERING = {
    "tampered byte": (_flip_byte, "model.skops does not match its sha256"),
    "truncated file": (_truncate, "model.skops does not match its sha256"),
    "missing file": (_remove, "model.skops is missing"),
    "edited metadata": (_edit_metadata, "metadata.json does not match its sha256"),
    "edited metadata and SHA256SUMS": (_edit_metadata_and_checksums, "SHA256SUMS differs from the digest recorded"),
    "extra file": (_extra_file, "model.skops.bak is not listed"),
    "missing SHA256SUMS": (_no_manifest, "SHA256SUMS is missing"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_champion_is_refused_and_the_old_one_keeps_serving(reg, fitted, case):
    damage, message = TAMPERING[case]
    v1 = reg.register(*KEY, fitted["logreg"], **info())
    reg.promote(*KEY)
    watcher = ChampionWatcher(reg, *KEY)
    assert watcher.get().version == v1
    v2 = reg.register(*KEY, fitted["hgb"], **info())
    reg.promote(*KEY, metric="log_loss", challenger_score=0.60, champion_score=0.68)
    damage(folder(reg, v2))
    with pytest.raises(IntegrityError, match=re.escape(message)) as e:
        reg.load(*KEY)
    assert isinstance(e.value, CryptopredError) and f"classifier/bitcoin/daily/{v2}: refused" in str(e.value)
    served = watcher.get()
    assert served.version == v1 and isinstance(watcher.error, IntegrityError)
    X = xy(seed=9)[0].to_numpy()
    np.testing.assert_array_equal(served.model.predict_proba(X), fitted["logreg"].predict_proba(X))
    assert reg.show(*KEY, v2)["integrity"].startswith("FAILED")
    assert reg.list_models(verify=True).set_index("version")["integrity"].to_dict() == {
        v1: "ok", v2: reg.show(*KEY, v2)["integrity"]}


def test_a_copied_folder_is_refused(reg, fitted):
    v1 = reg.register(*KEY, fitted["logreg"], **info())
    fake = "v0009-20300101T000000Z"
    shutil.copytree(folder(reg, v1), folder(reg, fake))
    with pytest.raises(IntegrityError, match=f"describes classifier/bitcoin/daily/{v1}"):
        reg.load(*KEY, fake)


def test_a_damaged_version_is_never_promoted(reg, fitted):
    reg.register(*KEY, fitted["logreg"], **info())
    reg.promote(*KEY)
    v2 = reg.register(*KEY, fitted["hgb"], **info())
    _truncate(folder(reg, v2))
    before = snapshot(reg)
    with pytest.raises(IntegrityError, match="does not match"):
        reg.promote(*KEY, force=True, reason="operator insists")
    assert snapshot(reg) == before


def test_corrupt_aliases_file_is_a_clear_error(reg, fitted):
    reg.register(*KEY, fitted["logreg"], **info())
    (reg.root.joinpath(*KEY) / "aliases.json").write_text('{"champion": ')
    with pytest.raises(IntegrityError, match="aliases.json is not valid JSON"):
        reg.champion_version(*KEY)


# ---------------------------------------------------------------- trust

def test_untrusted_skops_type_is_refused_on_register_and_load(settings, reg):
    X, y = xy()
    odd = make_pipeline(Doubler(), LogisticRegression()).fit(X.to_numpy(), y)
    with pytest.raises(UntrustedModelError, match=r"not on the trusted list: support\.models\.Doubler"):
        reg.register(*KEY, odd, **info())
    assert not reg.root.joinpath(*KEY).exists() or reg.list_models().empty
    trusting = ModelRegistry(settings=settings, trusted_types=["support.models.Doubler"])
    v = trusting.register(*KEY, odd, **info())
    np.testing.assert_array_equal(trusting.load(*KEY, v).model.predict_proba(X.to_numpy()),
                                  odd.predict_proba(X.to_numpy()))
    with pytest.raises(UntrustedModelError, match=r"support\.models\.Doubler"):
        reg.load(*KEY, v)


def test_untrusted_wrapper_class_is_refused(settings, reg, fitted):
    with pytest.raises(UntrustedModelError, match="class support.models:DirectionModel is not on the trusted list"):
        reg.register(*KEY, DirectionModel(fitted["logreg"], FEATURES), **info())
    trusting = ModelRegistry(settings=settings, trusted_classes=[DirectionModel])
    v = trusting.register(*KEY, DirectionModel(fitted["logreg"], FEATURES), **info())
    with pytest.raises(UntrustedModelError, match="support.models:DirectionModel"):
        reg.load(*KEY, v)


def test_unsupported_objects_are_refused(reg, fitted):
    with pytest.raises(ModelFormatError, match="must be a fitted prophet.Prophet"):
        reg.register("forecaster", "bitcoin", "daily", fitted["logreg"], **info())
    with pytest.raises(ModelFormatError, match="must be a scikit-learn estimator"):
        reg.register(*KEY, {"not": "a model"}, **info())
    with pytest.raises(RegistryError, match="features must be a list"):
        reg.register(*KEY, fitted["logreg"], **info(features="ret_1"))


# ---------------------------------------------------------------- failed writes

def test_failing_serializer_leaves_nothing_half_written(reg, fitted, monkeypatch):
    reg.register(*KEY, fitted["logreg"], **info())
    reg.promote(*KEY)
    before = snapshot(reg)

    def explode(model, write, trust):
        write("part1.bin", b"x" * 4096)
        raise OSError("No space left on device (simulated)")

    monkeypatch.setitem(KINDS, "classifier", ModelKind("classifier", explode, KINDS["classifier"].deserialize))
    with pytest.raises(ModelFormatError, match="could not serialize the model .OSError: No space left"):
        reg.register(*KEY, fitted["hgb"], **info())
    monkeypatch.undo()
    assert snapshot(reg) == before
    assert [p.name for p in reg.root.joinpath(*KEY).iterdir() if p.name.startswith(".tmp")] == []
    assert reg.load(*KEY).version.startswith("v0001-")
    assert reg.register(*KEY, fitted["hgb"], **info()).startswith("v0002-")


def test_non_json_wrapper_part_fails_after_the_estimator_was_written(settings, fitted):
    reg = ModelRegistry(settings=settings, trusted_classes=[DirectionModel])
    with pytest.raises(ModelFormatError, match="not plain JSON"):
        reg.register(*KEY, DirectionModel(fitted["logreg"], [object()]), **info())
    assert os.listdir(reg.root.joinpath(*KEY)) in ([], [".lock"])


def test_stale_temporary_folder_of_a_crashed_writer_is_cleared(reg, fitted):
    base = reg.root.joinpath(*KEY); (base / ".tmp-deadbeef").mkdir(parents=True)
    (base / ".tmp-deadbeef" / "model.skops").write_bytes(b"half")
    v = reg.register(*KEY, fitted["logreg"], **info())
    left = sorted(p.name for p in base.iterdir() if not p.name.startswith(".lock"))
    assert left == ["aliases.json", "audit.jsonl", v]


# ---------------------------------------------------------------- promotion and rollback

def test_first_model_is_promoted_when_there_is_no_champion(reg, fitted):
    v = reg.register(*KEY, fitted["logreg"], **info())
    assert reg.champion_version(*KEY) is None
    d = reg.promote(*KEY)
    assert d.promoted and d.previous_champion is None and "no champion" in d.explanation
    assert reg.champion_version(*KEY) == v
    with pytest.raises(ModelNotFound, match="has no challenger"):
        reg.resolve(*KEY, "challenger")


@pytest.mark.parametrize("challenger,champion,metric,promoted", [
    (0.60, 0.68, "log_loss", True),    # better
    (0.70, 0.68, "log_loss", False),   # worse
    (0.68, 0.68, "log_loss", False),   # equal keeps the champion
    (0.58, 0.55, "roc_auc", True),     # better, higher is better
    (0.55, 0.55, "roc_auc", False),    # equal
])
def test_promotion_rule(reg, fitted, challenger, champion, metric, promoted):
    v1 = reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    v2 = reg.register(*KEY, fitted["hgb"], **info())
    d = reg.promote(*KEY, metric=metric, challenger_score=challenger, champion_score=champion, holdout="2025-07..08")
    assert d.promoted is promoted
    assert reg.champion_version(*KEY) == (v2 if promoted else v1)
    assert reg._state(*KEY)["challenger"] == (None if promoted else v2)
    assert reg._state(*KEY)["champion_history"] == ([v1] if promoted else [])
    last = reg.audit_log(*KEY)[-1]
    assert last["action"] == ("promote" if promoted else "reject")
    assert (last["metric"], last["challenger_score"], last["champion_score"], last["holdout"]) == \
        (metric, challenger, champion, "2025-07..08")
    assert last["higher_is_better"] is (metric == "roc_auc") and last["margin"] == 0.0 and last["user"]


def test_margin_comes_from_settings(tmp_path, fitted):
    env = {"CRYPTOPRED_HOME": str(tmp_path / "h"), "CRYPTOPRED_PROMOTION_MARGIN": "0.01"}
    s = load_settings(environ=env, env_file=None)
    reg = ModelRegistry(settings=s)
    reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    reg.register(*KEY, fitted["hgb"], **info())
    d = reg.promote(*KEY, metric="log_loss", challenger_score=0.675, champion_score=0.68)
    assert not d.promoted and d.margin == 0.01 and "<= margin 0.01" in d.explanation
    assert reg.promote(*KEY, metric="log_loss", challenger_score=0.66, champion_score=0.68).promoted


def test_promotion_needs_scores_or_a_forced_reason(reg, fitted):
    reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    v2 = reg.register(*KEY, fitted["hgb"], **info())
    with pytest.raises(PromotionError, match="needs metric, challenger_score and champion_score"):
        reg.promote(*KEY)
    with pytest.raises(PromotionError, match="lower-is-better"):
        reg.promote(*KEY, metric="log_loss", challenger_score=0.6, champion_score=0.7, higher_is_better=True)
    with pytest.raises(PromotionError, match="needs a reason"):
        reg.promote(*KEY, force=True, reason="  ")
    d = reg.promote(*KEY, force=True, reason="new features, holdout too short to tell")
    assert d.promoted and d.forced and reg.champion_version(*KEY) == v2
    assert reg.audit_log(*KEY)[-1]["action"] == "force-promote"
    assert reg.audit_log(*KEY)[-1]["reason"] == "new features, holdout too short to tell"


def test_rollback_walks_back_the_champion_history(reg, fitted):
    vs = []
    for name in ("logreg", "forest", "hgb"):
        vs.append(reg.register(*KEY, fitted[name], **info()))
        reg.promote(*KEY, force=True, reason=f"take {name}")
    assert reg.champion_version(*KEY) == vs[2]
    token = reg.change_token(*KEY)
    assert reg.rollback(*KEY, reason="bad live accuracy") == vs[1]
    assert reg.change_token(*KEY) != token
    assert reg.rollback(*KEY) == vs[0]
    with pytest.raises(PromotionError, match=f"no previous champion to roll back to \\({vs[0]} is the first\\)"):
        reg.rollback(*KEY)
    assert reg.champion_version(*KEY) == vs[0]
    actions = [e["action"] for e in reg.audit_log(*KEY)]
    assert actions.count("rollback") == 2 and reg.audit_log(*KEY)[-1]["demoted"] == vs[1]


def test_rollback_without_history_is_a_clear_error(reg, fitted):
    with pytest.raises(PromotionError, match="has no champion to roll back"):
        reg.rollback(*KEY)
    reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    with pytest.raises(PromotionError, match="no previous champion"):
        reg.rollback(*KEY)


def test_rollback_refuses_a_damaged_previous_champion(reg, fitted):
    v1 = reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    v2 = reg.register(*KEY, fitted["hgb"], **info()); reg.promote(*KEY, force=True, reason="x")
    _flip_byte(folder(reg, v1))
    with pytest.raises(IntegrityError, match=v1):
        reg.rollback(*KEY)
    assert reg.champion_version(*KEY) == v2


def test_change_token_only_moves_when_aliases_change(reg, fitted):
    assert reg.change_token(*KEY) == "none"
    reg.register(*KEY, fitted["logreg"], **info())
    t1 = reg.change_token(*KEY)
    assert reg.change_token(*KEY) == t1
    reg.load(*KEY, "challenger"); reg.list_models(verify=True); reg.show(*KEY, "challenger")
    assert reg.change_token(*KEY) == t1
    reg.promote(*KEY)
    assert reg.change_token(*KEY) != t1


# ---------------------------------------------------------------- concurrency

def _ctx():
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def test_concurrent_writers_get_unique_versions(reg):
    ctx, model, writers, each = _ctx(), logreg(), 3, 3
    barrier = ctx.Barrier(writers)
    procs = [ctx.Process(target=register_many, args=(str(reg.root), each, model, barrier, w)) for w in range(writers)]
    for p in procs: p.start()
    for p in procs: p.join(timeout=120)
    alive = [p for p in procs if p.is_alive()]
    for p in alive: p.terminate()
    assert not alive and [p.exitcode for p in procs] == [0] * writers
    versions = reg._versions(*KEY)
    assert [int(v[1:5]) for v in versions] == list(range(1, writers * each + 1))
    st = json.loads((reg.root.joinpath(*KEY) / "aliases.json").read_text())
    assert st["revision"] == writers * each and st["challenger"] == versions[-1]
    assert set(st["manifests"]) == set(versions)
    events = reg.audit_log(*KEY)
    assert sorted(e["version"] for e in events) == versions
    assert {reg.load(*KEY, v).metadata["extra"]["writer"] for v in versions} == set(range(writers))


def test_a_writer_waits_for_the_lock_and_gives_up_clearly(settings, fitted):
    ctx = _ctx(); ready, release = ctx.Event(), ctx.Event()
    root = str(settings.models_dir)
    holder = ctx.Process(target=hold_lock, args=(root, ready, release)); holder.start()
    try:
        assert ready.wait(timeout=60)
        impatient = ModelRegistry(settings=settings, lock_timeout=0.2)
        with pytest.raises(RegistryBusy, match="another writer has held"):
            impatient.register(*KEY, fitted["logreg"], **info())
        assert impatient.list_models().empty
    finally:
        release.set(); holder.join(timeout=60)
    assert holder.exitcode == 0
    assert ModelRegistry(settings=settings).register(*KEY, fitted["logreg"], **info()).startswith("v0001-")


# ---------------------------------------------------------------- console script

def cli(*args, console_script: bool = False) -> subprocess.CompletedProcess:
    """`cryptopred registry ARGS`: through the installed console script, or in this process through the function the
    script calls (`cryptopred.cli.main`), which answers the same without paying for a new interpreter."""
    if console_script:
        exe = Path(sys.executable).parent / "cryptopred"
        return subprocess.run([str(exe), "registry", *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(["registry", *args])
    return subprocess.CompletedProcess(["cryptopred", "registry", *args], rc, out.getvalue(), err.getvalue())


def test_registry_console_script(reg, fitted):
    v1 = reg.register(*KEY, fitted["logreg"], **info()); reg.promote(*KEY)
    v2 = reg.register(*KEY, fitted["hgb"], **info(holdout_metrics={"log_loss": 0.66}))

    p = cli("list", "--verify", console_script=True)
    assert p.returncode == 0, p.stderr
    rows = {line.split()[3]: line.split() for line in p.stdout.splitlines()[1:]}
    assert set(rows) == {v1, v2}
    assert "champion" in rows[v1] and "challenger" in rows[v2] and "ok" in rows[v1] and "ok" in rows[v2]

    p = cli("show", "classifier", "bitcoin", "challenger")
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)
    assert shown["version"] == v2 and shown["integrity"] == "ok"
    assert shown["metadata"]["holdout_metrics"]["log_loss"] == 0.66

    p = cli("promote", "classifier", "bitcoin", "--metric", "log_loss", "--challenger-score", "0.69",
            "--champion-score", "0.68")
    assert p.returncode == 1 and "not promoted" in p.stdout and reg.champion_version(*KEY) == v1

    p = cli("promote", "classifier", "bitcoin", "--force", "--reason", "operator test")
    assert p.returncode == 0 and f"{v2}: promoted" in p.stdout and reg.champion_version(*KEY) == v2

    p = cli("rollback", "classifier", "bitcoin", "--reason", "undo")
    assert p.returncode == 0 and f"champion is now {v1}" in p.stdout and reg.champion_version(*KEY) == v1

    p = cli("rollback", "classifier", "bitcoin", console_script=True)
    assert p.returncode == 1 and "error:" in p.stderr and "no previous champion" in p.stderr
    assert "Traceback" not in p.stderr
