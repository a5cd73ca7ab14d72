"""Test support, one package (import as `from support.X import ...`; `tests/` is on the path under pytest):

- `fakes`: real servers on 127.0.0.1 standing in for the outside world: CoinGecko (`FakeCoinGecko`, frozen at `NOW`),
  webhook receivers, a Prometheus endpoint, the app under uvicorn (`live_server`), free ports, Prometheus parsing.
- `homes`: ONE factory for settings on a temporary home (`home_settings`) and its presets (`simulated_home`,
  `serve_settings`, `drift_settings`, `cg_settings`), stores filled with the simulated market, registered champions.
- `market`: synthetic frames: store rows with defects, random walks, prediction records, causal features.
- `realdata`: the real market data, read through `cryptopred.data.csv` (the one real-data reader); skips when absent.
- `models`: small real models and wrapper shapes for the registry tests, and their worker processes.
- `runs`: the small simulated pipeline (`small_pipeline`), copies of run folders, failed runs, tool requirements.
- `cli`: the installed console script, run as a user runs it.

Session-scoped homes built once (`small_run`, `served_home`) live in `tests/conftest.py`.
"""
