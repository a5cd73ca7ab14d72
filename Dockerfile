# syntax=docker/dockerfile:1
# cryptopred serving image: the web UI and the JSON API (`cryptopred serve`) on port 7860.
#   docker build -t cryptopred .
#   docker run -p 127.0.0.1:7860:7860 -v cryptopred-data:/var/lib/cryptopred cryptopred
# All runtime state (data, models, runs, monitoring) lives on the volume /var/lib/cryptopred ($CRYPTOPRED_HOME);
# deploy/docker-compose.yml runs it as the app and as the scheduler, beside Prometheus and Grafana.
# tests/test_serve_deploy.py runs this file's CMD; .ci/wheel_check installs the same wheel with the same lock outside
# the checkout and runs the pipeline and the app from it (CI has no Docker daemon).
# The base image is pinned by digest (python:3.11.10-slim-bookworm, linux/amd64 + arm64 index; from a public
# Renovate-maintained digest list — not pulled here: verify with `docker buildx imagetools inspect` when bumping).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

# --- build: install the package and its dependencies into a virtualenv ----------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/cryptopred
WORKDIR /src
# the locked dependencies first (their layer is reused until requirements.lock changes), then the package alone
COPY requirements.lock ./
RUN /opt/cryptopred/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY cryptopred ./cryptopred
# cryptopred/{nbs,reports,deploy} link to these: the run-books, notebooks and report inputs ship as package data,
# so the image can ingest, train, monitor, report and serve
COPY nbs ./nbs
COPY reports ./reports
COPY deploy/alert_rules.yml ./deploy/alert_rules.yml
RUN /opt/cryptopred/bin/pip install --no-deps . \
 && /opt/cryptopred/bin/python -c "from cryptopred.runs import PIPELINES_DIR as d; assert (d / 'train_forecaster.ipynb').is_file(), d"

# --- runtime: only the virtualenv, a non-root user and the state volume --------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/cryptopred cryptopred \
 && mkdir -p /var/lib/cryptopred && chown cryptopred:cryptopred /var/lib/cryptopred
COPY --from=build /opt/cryptopred /opt/cryptopred
ENV PATH=/opt/cryptopred/bin:$PATH \
    CRYPTOPRED_HOME=/var/lib/cryptopred \
    CRYPTOPRED_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/cryptopred"]
USER cryptopred
WORKDIR /home/cryptopred
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CRYPTOPRED_PORT', '7860'), timeout=4)"]
CMD ["cryptopred", "serve", "--host", "0.0.0.0"]
