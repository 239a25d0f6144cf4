"""API benchmark: p50/p99 of the REST API's list endpoints over a month of an inference box's flows.

Builds (or reuses, from ``OUT/api-N-Dd.db``) a SQLite database of N flows (default 5,000,000)
over D days (default 30) through the real store path: ``Database(url).upgrade()``, then
``Database.write_flows`` in batches of 5,000 ``FlowRecord`` objects, in the order the daemon
writes them (by last packet; long flows with interim updates every 60 s), so the hourly rollups
(``flow_hours``) are kept exactly as in production; and a few thousand alerts through
``Database.write_alerts``. The traffic is synthetic and seeded: a few dozen containers and host
processes, a few thousand destinations (server names and raw addresses) with countries and ASNs,
mostly egress, with a long tail.

Then copies it and writes its last two hours again at the present time (the open hours a live
box has: the API keeps the totals of closed hours in memory and reads the open ones on every
request), serves the copy with the real ``egresswatch serve --listen 127.0.0.1:PORT --db
sqlite:///...`` in a subprocess and times each case (``/flows`` first and deep pages, with
filters; ``/destinations`` over 24 h and 30 days for every ``group_by``; ``/alerts``;
``/containers``) over one keep-alive HTTP connection: p50, p99 and max, against the goal of
p99 < 100 ms; for the cached answers also the first request (nothing cached) and requests as
after the hour turned. Beside each, the same store call in this process (no HTTP), and for a
reference the SQL run directly with ``sqlite3``: the first page, and the 30-day GROUP BY over
the raw flows that the rollups replace. For a case over the goal it prints the SQL's query
plan. Always exits 0: it is a benchmark, not a test. See bench/README.md.

    .venv/bin/python bench/api.py [--flows N] [--days D] [--requests N] [--budget S]
                                  [--out DIR] [--rebuild]
"""

from __future__ import annotations

import argparse
import base64
import bisect
import dataclasses
import heapq
import http.client
import json
import math
import multiprocessing
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event

from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.policy.alert import Alert, alert_uid
from egresswatch.store import AlertFilter, Database, FlowFilter, TotalsFilter

GOAL_MS = 100.0
"""Every case's p99 must be under this many milliseconds."""
SEED = 20261123
VERSION = 2
"""Bump when the generator changes: a cached database of another version is rebuilt."""
END = 1_795_392_000.0
"""2026-11-23T00:00:00Z: the data ends here. A fixed end keeps the database the same from run to
run, so the cases ask for absolute times (``since=END-24h``), not ``since=24h`` (before now)."""
HOUR, DAY = 3600.0, 86400.0
BATCH = 5000
ACTIVE_TIMEOUT = 60.0
"""egresswatch's default ``flows.active_timeout``: a running flow is written at least this often."""
ALERT_WINDOW = 3600.0
ALERTS = 4000
"""About this many alerts are raised (repeats within the window are counted, not stored again)."""
BENCH_DIR = Path(__file__).resolve().parent

# --- the box: containers, processes, destinations --------------------------------------------

ASNS: dict[int, tuple[str, dict[str, int]]] = {
    13335: ("CLOUDFLARENET", {"US": 1}),
    15169: ("GOOGLE", {"US": 1}),
    396982: ("GOOGLE-CLOUD-PLATFORM", {"US": 6, "BE": 1, "DE": 1, "NL": 1}),
    16509: ("AMAZON-02", {"US": 6, "IE": 2, "DE": 2, "SG": 1, "JP": 1, "GB": 1}),
    14618: ("AMAZON-AES", {"US": 1}),
    8075: ("MICROSOFT-CORP-MSN-AS-BLOCK", {"US": 4, "NL": 2, "IE": 1}),
    54113: ("FASTLY", {"US": 1}),
    20940: ("Akamai International B.V.", {"NL": 1, "DE": 1, "US": 2}),
    36459: ("GITHUB", {"US": 1}),
    399358: ("ANTHROPIC", {"US": 1}),
    41231: ("Canonical Group Limited", {"GB": 1}),
    24940: ("Hetzner Online GmbH", {"DE": 4, "FI": 1}),
    16276: ("OVH SAS", {"FR": 4, "CA": 1, "DE": 1}),
    14061: ("DIGITALOCEAN-ASN", {"US": 3, "NL": 1, "DE": 1, "SG": 1, "GB": 1, "IN": 1}),
    63949: ("Akamai Connected Cloud", {"US": 3, "DE": 1, "JP": 1}),
    20473: ("AS-VULTR", {"US": 3, "JP": 1, "DE": 1}),
    12876: ("SCALEWAY S.A.S.", {"FR": 3, "NL": 1}),
    51167: ("Contabo GmbH", {"DE": 3, "US": 1}),
    37963: ("Hangzhou Alibaba Advertising Co.,Ltd.", {"CN": 1}),
    45102: ("Alibaba US Technology Co., Ltd.", {"CN": 2, "SG": 1, "US": 1}),
    4134: ("Chinanet", {"CN": 1}),
    4837: ("CHINA UNICOM China169 Backbone", {"CN": 1}),
    132203: ("Tencent Building, Kejizhongyi Avenue", {"CN": 2, "HK": 1}),
    13238: ("YANDEX LLC", {"RU": 1}),
    12389: ("PJSC Rostelecom", {"RU": 1}),
    202425: ("IP Volume inc", {"NL": 1}),
    9009: ("M247 Europe SRL", {"RO": 1, "GB": 1}),
    3320: ("Deutsche Telekom AG", {"DE": 1}),
    7922: ("COMCAST-7922", {"US": 1}),
    4766: ("Korea Telecom", {"KR": 1}),
    2914: ("NTT-LTD-2914", {"JP": 1, "US": 1}),
    55836: ("Reliance Jio Infocomm Limited", {"IN": 1}),
    28573: ("Claro NXT Telecomunicacoes Ltda", {"BR": 1}),
    19281: ("QUAD9-AS-1", {"CH": 1}),
    3215: ("Orange S.A.", {"FR": 1}),
    2856: ("British Telecommunications PLC", {"GB": 1}),
    8881: ("1&1 Versatel Deutschland GmbH", {"DE": 1}),
    47583: ("Hostinger International Limited", {"LT": 1, "US": 1}),
}
"""ASN -> (organisation, countries its addresses are placed in, weighted)."""
CITIES = {
    "US": ["Ashburn", "San Francisco", "Seattle", "Chicago", "Dallas", "Los Angeles", "New York"],
    "DE": ["Frankfurt am Main", "Falkenstein", "Nuremberg", "Berlin"],
    "NL": ["Amsterdam"], "IE": ["Dublin"], "GB": ["London"], "FR": ["Paris", "Roubaix"],
    "SG": ["Singapore"], "JP": ["Tokyo", "Osaka"], "CN": ["Hangzhou", "Beijing", "Shanghai"],
    "HK": ["Hong Kong"], "RU": ["Moscow", "Saint Petersburg"], "KR": ["Seoul"],
    "IN": ["Mumbai", "Bengaluru"], "BR": ["Sao Paulo"], "CH": ["Zurich"], "FI": ["Helsinki"],
    "CA": ["Beauharnois"], "RO": ["Bucharest"], "LT": ["Vilnius"], "BE": ["Saint-Ghislain"],
}  # fmt: skip
V6_ASNS = {13335, 15169, 396982, 16509, 54113, 20940, 8075, 36459}
"""Networks whose destinations also get IPv6 addresses."""

# Named destinations: (name, ASN, port, how it is named). "sni": TLS; "http": Host header.
LLM = [("api.openai.com", 13335), ("api.anthropic.com", 399358),
       ("generativelanguage.googleapis.com", 15169), ("api.mistral.ai", 13335),
       ("api.groq.com", 13335), ("api.together.xyz", 13335), ("openrouter.ai", 13335),
       ("api.deepseek.com", 37963), ("dashscope.aliyuncs.com", 37963),
       ("api.moonshot.cn", 45102), ("api.cohere.com", 396982), ("api.voyageai.com", 16509),
       ("api.perplexity.ai", 13335), ("api.fireworks.ai", 396982),
       ("api-inference.huggingface.co", 16509), ("bedrock-runtime.us-east-1.amazonaws.com", 16509),
       ("oai-prod-eastus.openai.azure.com", 8075), ("api.jina.ai", 13335)]  # fmt: skip
HUB = [("huggingface.co", 16509), ("cdn-lfs.huggingface.co", 16509),
       ("cdn-lfs-us-1.hf.co", 16509), ("cas-bridge.xethub.hf.co", 16509),
       ("registry.ollama.ai", 13335), ("dd20bb891979d25aebc8bec07b2b3bbc.r2.cloudflarestorage.com",
       13335), ("pypi.org", 54113), ("files.pythonhosted.org", 54113),
       ("download.pytorch.org", 16509), ("registry-1.docker.io", 14618),
       ("auth.docker.io", 14618), ("production.cloudflare.docker.com", 13335), ("ghcr.io", 36459),
       ("pkg-containers.githubusercontent.com", 54113), ("github.com", 36459),
       ("objects.githubusercontent.com", 54113), ("codeload.github.com", 36459),
       ("developer.download.nvidia.com", 20940), ("nvcr.io", 16509),
       ("registry.npmjs.org", 13335), ("conda.anaconda.org", 13335),
       ("storage.googleapis.com", 15169), ("modelscope.cn", 37963), ("hf-mirror.com", 4134),
       ("acme-v02.api.letsencrypt.org", 13335)]  # fmt: skip
APT = [("deb.debian.org", 54113), ("security.debian.org", 54113),
       ("archive.ubuntu.com", 41231), ("security.ubuntu.com", 41231)]  # fmt: skip
TELEMETRY = [("o450123.ingest.sentry.io", 396982), ("us.i.posthog.com", 16509),
             ("api.segment.io", 16509), ("cloud.langfuse.com", 396982), ("api.wandb.ai", 396982),
             ("api.smith.langchain.com", 396982), ("prometheus-prod-13-prod-us-east-0.grafana.net",
             15169), ("logs-prod-006.grafana.net", 15169), ("stats.grafana.org", 15169),
             ("api.github.com", 36459), ("controlplane.tailscale.com", 16509),
             ("log.tailscale.io", 16509), ("derp4.tailscale.com", 14061),
             ("api.snapcraft.io", 41231), ("motd.ubuntu.com", 41231), ("stats.vllm.ai", 13335),
             ("telemetry.qdrant.io", 13335), ("huggingface.co", 16509),
             ("app.posthog.com", 16509), ("telemetry.n8n.io", 13335)]  # fmt: skip
UPLOAD = [("backups-inference.s3.eu-central-1.amazonaws.com", 16509),
          ("storage.googleapis.com", 15169), ("api.wandb.ai", 396982),
          ("huggingface.co", 16509)]  # fmt: skip
WEB = [("www.google.com", 15169), ("www.bing.com", 8075), ("duckduckgo.com", 20940),
       ("search.brave.com", 16509), ("en.wikipedia.org", 14061), ("www.reddit.com", 54113),
       ("stackoverflow.com", 13335), ("arxiv.org", 13335), ("medium.com", 13335),
       ("news.ycombinator.com", 16509), ("docs.python.org", 54113),
       ("raw.githubusercontent.com", 54113), ("www.youtube.com", 15169), ("www.baidu.com", 4837),
       ("www.zhihu.com", 37963), ("yandex.ru", 13238), ("www.bilibili.com", 132203),
       ("r.jina.ai", 13335), ("api.tavily.com", 16509), ("serpapi.com", 13335)]  # fmt: skip
"""The long tail's most visited names (search engines, docs), before thousands of others."""
WORDS = ["data", "cloud", "shop", "news", "blog", "docs", "wiki", "stack", "code", "dev", "mail",
         "media", "static", "cdn", "app", "web", "open", "deep", "neural", "vector", "graph",
         "token", "prompt", "model", "agent", "cache", "store", "ship", "trade", "market",
         "health", "bank", "travel", "food", "book", "music", "film", "photo", "game", "sport",
         "city", "green", "blue", "red", "fast", "smart", "north", "south", "east", "west",
         "global", "local", "prime", "alpha", "beta", "nova", "quant", "river", "stone", "forest",
         "ocean", "metro", "pixel", "signal", "orbit", "atlas", "echo", "zen"]  # fmt: skip
TLDS = {"com": 50, "io": 8, "ai": 6, "org": 6, "net": 5, "dev": 3, "de": 3, "co": 2, "app": 2,
        "cn": 2, "ru": 1, "co.uk": 1, "fr": 1, "jp": 1, "xyz": 1, "nl": 1}  # fmt: skip
TAIL_ASNS = {13335: 25, 16509: 15, 15169: 6, 396982: 3, 54113: 5, 20940: 4, 8075: 4, 24940: 4,
             16276: 4, 14061: 4, 63949: 2, 20473: 2, 12876: 1, 51167: 1, 37963: 1.5, 45102: 1,
             4134: 0.8, 4837: 0.5, 132203: 1, 13238: 0.6, 12389: 0.3, 47583: 1.5, 2914: 1,
             4766: 0.5, 55836: 0.3, 28573: 0.3, 3320: 0.5, 3215: 0.5, 2856: 0.3}  # fmt: skip
SCANNER_ASNS = {4134: 8, 4837: 5, 14061: 8, 202425: 5, 16509: 4, 396982: 3, 63949: 3, 12389: 3,
                9009: 3, 132203: 3, 37963: 2, 7922: 1, 4766: 2, 55836: 2, 28573: 2, 16276: 2,
                24940: 2, 51167: 2}  # fmt: skip
USER_ASNS = {3320: 4, 7922: 4, 2856: 2, 3215: 2, 8881: 2, 16509: 1}
TAIL_NAMES, TAIL_ADDRESSES, SCANNERS, USERS = 3000, 400, 1500, 120

JA4 = {
    "python": "t13d1812h2_e8a523a41297_8c9ee8a6f6c6",
    "requests": "t13d1812h1_85036bcba153_375ca2c5e164",
    "node": "t13d1513h2_8daaf6152771_02713d6af862",
    "go": "t13d1311h2_e8f1e7e78f70_b26ce05bbdd6",
    "curl": "t13d3112h2_e8f1e7e78f70_ce5650b735ce",
    "chrome": "t13d1516h2_8daaf6152771_e5627efa2ab1",
}

# Who talks: (container or None for the host, image, [(process, runtime, exe, cmdline, uid)],
# share of the flows, {destination group: weight}). "svc:NAME" is another container's port.
HOST_IP, HOST_IP6 = "10.20.0.15", "2a01:4f8:c0c:1a2b::15"
Proc = tuple[str, str, str, str, int]
CLIENTS: list[tuple[str | None, str, list[Proc], float, dict[str, float]]] = [
    (None, "", [("dockerd", "go", "/usr/bin/dockerd",
                 "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", 0)],
     14, {"dns": 30, "hub": 1}),
    (None, "", [("systemd-resolve", "go", "/usr/lib/systemd/systemd-resolved",
                 "/usr/lib/systemd/systemd-resolved", 991)], 4, {"dns": 1}),
    (None, "", [("chronyd", "go", "/usr/sbin/chronyd", "/usr/sbin/chronyd -F 1", 104)],
     0.6, {"ntp": 1}),
    (None, "", [("http", "curl", "/usr/lib/apt/methods/http", "/usr/lib/apt/methods/http", 42),
                ("unattended-upgr", "python", "/usr/bin/python3",
                 "/usr/bin/python3 /usr/bin/unattended-upgrade", 0)], 0.4, {"apt": 1}),
    (None, "", [("containerd", "go", "/usr/bin/containerd", "/usr/bin/containerd", 0)],
     0.4, {"hub": 1}),
    (None, "", [("tailscaled", "go", "/usr/sbin/tailscaled",
                 "/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state", 0)],
     1.2, {"telemetry": 1}),
    (None, "", [("snapd", "go", "/usr/lib/snapd/snapd", "/usr/lib/snapd/snapd", 0)],
     0.2, {"telemetry": 1}),
    (None, "", [("python3", "python", "/usr/bin/python3",
                 "/usr/bin/python3 /opt/ops/sync_models.py --all", 1000),
                ("huggingface-cli", "python", "/usr/local/bin/huggingface-cli",
                 "/usr/local/bin/huggingface-cli download meta-llama/Llama-3.1-8B-Instruct", 1000),
                ("git", "curl", "/usr/lib/git-core/git-remote-https",
                 "git-remote-https origin https://github.com/org/infra.git", 1000),
                ("curl", "curl", "/usr/bin/curl", "curl -fsSL https://example.com/install.sh",
                 1000)], 0.8, {"hub": 3, "upload": 0.3, "tail": 1, "llm": 0.5}),
    ("ollama", "ollama/ollama:0.12.3", [("ollama", "go", "/usr/bin/ollama",
                                         "/usr/bin/ollama serve", 0)],
     0.7, {"hub": 3, "telemetry": 0.3}),
    ("vllm-llama", "vllm/vllm-openai:v0.11.0", [("python3", "python", "/usr/bin/python3",
     "python3 -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-8B-Instruct",
     0)], 0.5, {"hub": 2, "telemetry": 1}),
    ("vllm-qwen", "vllm/vllm-openai:v0.11.0", [("python3", "python", "/usr/bin/python3",
     "python3 -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-32B-Instruct-AWQ", 0)],
     0.5, {"hub": 2, "telemetry": 1}),
    ("tgi", "ghcr.io/huggingface/text-generation-inference:3.3.4",
     [("text-generation", "go", "/usr/local/bin/text-generation-router",
       "text-generation-router --port 80 --model-id mistralai/Mistral-7B-Instruct-v0.3", 0)],
     0.4, {"hub": 2, "telemetry": 1}),
    ("text-embeddings", "ghcr.io/huggingface/text-embeddings-inference:1.8",
     [("text-embeddings", "go", "/usr/local/bin/text-embeddings-router",
       "text-embeddings-router --model-id BAAI/bge-m3", 0)], 0.2, {"hub": 1}),
    ("open-webui", "ghcr.io/open-webui/open-webui:main",
     [("python3", "python", "/usr/local/bin/python3",
       "python3 -m uvicorn open_webui.main:app --host 0.0.0.0 --port 8080", 0)],
     9, {"llm": 4, "tail": 3, "hub": 0.2, "svc:ollama": 3, "telemetry": 0.2}),
    ("dify-api-1", "langgenius/dify-api:1.9.1",
     [("gunicorn", "python", "/usr/local/bin/python3.12",
       "/app/api/.venv/bin/python /app/api/.venv/bin/gunicorn --bind 0.0.0.0:5001 app:app", 0)],
     16, {"llm": 6, "telemetry": 1, "svc:postgres": 4, "svc:redis": 3, "svc:qdrant": 2,
          "svc:dify-sandbox-1": 0.5, "svc:vllm-llama": 2}),
    ("dify-worker-1", "langgenius/dify-api:1.9.1",
     [("celery", "python", "/usr/local/bin/python3.12",
       "/app/api/.venv/bin/python /app/api/.venv/bin/celery -A app.celery worker", 0)],
     9, {"llm": 4, "tail": 2, "svc:postgres": 2, "svc:redis": 2, "svc:qdrant": 1, "hub": 0.2}),
    ("dify-web-1", "langgenius/dify-web:1.9.1",
     [("node", "node", "/usr/local/bin/node", "node server.js", 1001)], 0.3, {"telemetry": 1}),
    ("dify-sandbox-1", "langgenius/dify-sandbox:0.2.12",
     [("python3", "python", "/usr/local/bin/python3", "python3 /tmp/code/main.py", 65537),
      ("sandbox", "go", "/main", "/main", 0)], 2.5, {"tail": 4, "hub": 1}),
    ("dify-plugin-daemon-1", "langgenius/dify-plugin-daemon:0.3.0-local",
     [("main", "go", "/app/main", "/app/main", 0),
      ("uv", "curl", "/usr/local/bin/uv", "uv pip install -r requirements.txt", 0)],
     1.5, {"hub": 1, "llm": 2}),
    ("litellm", "ghcr.io/berriai/litellm:main-stable",
     [("litellm", "python", "/usr/bin/python3",
       "/usr/bin/python3 /usr/bin/litellm --port 4000 --config /app/config.yaml", 0)],
     12, {"llm": 8, "telemetry": 0.5, "svc:vllm-qwen": 3, "svc:postgres": 1}),
    ("langfuse-web", "langfuse/langfuse:3",
     [("node", "node", "/usr/local/bin/node", "node web/server.js", 1001)],
     2.5, {"svc:postgres": 1, "svc:clickhouse": 1, "telemetry": 0.3}),
    ("langfuse-worker", "langfuse/langfuse-worker:3",
     [("node", "node", "/usr/local/bin/node", "node worker/dist/index.js", 1001)],
     4, {"svc:clickhouse": 2, "svc:redis": 1, "svc:minio": 1, "telemetry": 0.2}),
    ("n8n", "docker.n8n.io/n8nio/n8n:1.114.0",
     [("node", "node", "/usr/local/bin/node", "node /usr/local/bin/n8n", 1000)],
     6, {"llm": 2, "tail": 4, "telemetry": 0.5, "svc:postgres": 1}),
    ("searxng", "searxng/searxng:latest",
     [("granian", "python", "/usr/local/bin/python3",
       "granian --interface wsgi searx.webapp:app", 977)], 7, {"tail": 1}),
    ("crawl4ai", "unclecode/crawl4ai:0.7.4",
     [("python3", "python", "/usr/local/bin/python3", "python3 -m crawl4ai.server", 1000),
      ("chrome", "chrome", "/opt/google/chrome/chrome",
       "/opt/google/chrome/chrome --headless=new --no-sandbox", 1000)], 5, {"tail": 1}),
    ("jupyter", "quay.io/jupyter/pytorch-notebook:cuda12-latest",
     [("jupyter-lab", "python", "/opt/conda/bin/python3.12",
       "/opt/conda/bin/python3.12 /opt/conda/bin/jupyter-lab --ip=0.0.0.0", 1000),
      ("python3", "requests", "/opt/conda/bin/python3.12", "python3 finetune.py", 1000),
      ("pip", "requests", "/opt/conda/bin/python3.12", "pip install -U transformers", 1000),
      ("git", "curl", "/usr/lib/git-core/git-remote-https", "git-remote-https origin", 1000),
      ("curl", "curl", "/usr/bin/curl", "curl -LO https://example.org/data.tar.gz", 1000)],
     2.5, {"hub": 2, "tail": 1, "llm": 0.5, "upload": 0.15}),
    ("comfyui", "yanwk/comfyui-boot:cu124-slim",
     [("python3", "python", "/usr/bin/python3", "python3 ComfyUI/main.py --listen", 0)],
     0.6, {"hub": 1, "tail": 0.2}),
    ("whisper", "onerahmet/openai-whisper-asr-webservice:latest-gpu",
     [("python3", "python", "/usr/bin/python3", "python3 -m uvicorn app.webservice:app", 0)],
     0.1, {"hub": 1}),
    ("flowise", "flowiseai/flowise:3.0.7",
     [("node", "node", "/usr/local/bin/node", "node /usr/local/bin/flowise start", 0)],
     1.5, {"llm": 2, "tail": 1, "telemetry": 0.3}),
    ("mlflow", "ghcr.io/mlflow/mlflow:v3.4.0",
     [("gunicorn", "python", "/usr/local/bin/python", "gunicorn mlflow.server:app", 0)],
     0.8, {"svc:minio": 1, "svc:postgres": 1}),
    ("minio", "minio/minio:RELEASE.2025-09-07T16-13-09Z",
     [("minio", "go", "/usr/bin/minio", "minio server /data --console-address :9001", 0)],
     0.3, {"upload": 1}),
    ("qdrant", "qdrant/qdrant:v1.15.4",
     [("qdrant", "go", "/qdrant/qdrant", "./qdrant", 0)], 0.05, {"telemetry": 1}),
    ("traefik", "traefik:v3.5", [("traefik", "go", "/usr/local/bin/traefik", "traefik", 0)],
     0.1, {"hub": 1, "telemetry": 1}),
    ("watchtower", "containrrr/watchtower:1.7.1",
     [("watchtower", "go", "/watchtower", "/watchtower --interval 3600", 0)], 0.6, {"hub": 1}),
    ("prometheus", "prom/prometheus:v3.6.0",
     [("prometheus", "go", "/bin/prometheus", "/bin/prometheus --config.file=/etc/prometheus/"
       "prometheus.yml", 65534)], 3,
     {"svc:node-exporter": 1, "svc:cadvisor": 1, "svc:dcgm-exporter": 0.5, "telemetry": 2}),
    ("grafana", "grafana/grafana:12.2.0",
     [("grafana", "go", "/usr/share/grafana/bin/grafana", "grafana server", 472)],
     1.2, {"telemetry": 0.3, "svc:prometheus": 1}),
    ("blackbox-exporter", "prom/blackbox-exporter:v0.27.0",
     [("blackbox_export", "go", "/bin/blackbox_exporter", "/bin/blackbox_exporter", 65534)],
     1.8, {"ping": 1.5, "tail": 0.2}),
    ("promtail", "grafana/promtail:3.5.5",
     [("promtail", "go", "/usr/bin/promtail", "/usr/bin/promtail -config.file=/etc/promtail"
       "/config.yml", 0)], 0.8, {"telemetry": 1}),
    ("uptime-kuma", "louislam/uptime-kuma:2",
     [("node", "node", "/usr/local/bin/node", "node server/server.js", 0)],
     1, {"tail": 0.5, "ping": 0.5}),
    ("portainer", "portainer/portainer-ce:2.33.2",
     [("portainer", "go", "/portainer", "/portainer", 0)], 0.05, {"hub": 1}),
    # Only connected to: servers for the others.
    ("postgres", "postgres:16-alpine",
     [("postgres", "go", "/usr/local/bin/postgres", "postgres", 70)], 0, {}),
    ("redis", "redis:7-alpine",
     [("redis-server", "go", "/usr/local/bin/redis-server", "redis-server *:6379", 999)], 0, {}),
    ("clickhouse", "clickhouse/clickhouse-server:25.8",
     [("clickhouse-serv", "go", "/usr/bin/clickhouse", "/usr/bin/clickhouse-server", 101)],
     0, {}),
    ("node-exporter", "prom/node-exporter:v1.9.1",
     [("node_exporter", "go", "/bin/node_exporter", "/bin/node_exporter", 65534)], 0, {}),
    ("cadvisor", "gcr.io/cadvisor/cadvisor:v0.52.1",
     [("cadvisor", "go", "/usr/bin/cadvisor", "/usr/bin/cadvisor -logtostderr", 0)], 0, {}),
    ("dcgm-exporter", "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04",
     [("dcgm-exporter", "go", "/usr/bin/dcgm-exporter", "/usr/bin/dcgm-exporter", 0)], 0, {}),
]  # fmt: skip
SERVICES = {"postgres": 5432, "redis": 6379, "qdrant": 6333, "ollama": 11434, "clickhouse": 8123,
            "minio": 9000, "vllm-llama": 8000, "vllm-qwen": 8000, "dify-sandbox-1": 8194,
            "node-exporter": 9100, "cadvisor": 8080, "dcgm-exporter": 9400,
            "prometheus": 9090}  # fmt: skip
"""Containers other containers connect to (their port): the internal flows."""
INGRESS_SHARE = 0.05
"""Share of flows initiated from outside: scanners (4/5 of them) and users of the reverse proxy."""


@dataclass(frozen=True, slots=True)
class Dest:
    """One destination: a server name (or none: a raw address) and where its addresses are."""

    name: str | None
    ips: tuple[str, ...]
    ips6: tuple[str, ...]
    port: int
    proto: str
    named_by: str | None
    country: str | None
    city: str | None
    asn: int | None
    group: str


@dataclass(slots=True)
class Group:
    """Destinations of one kind, most popular first, with their cumulative weights (Zipf)."""

    dests: list[Dest]
    cum: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        weights = [1 / (i + 1) ** 1.1 for i in range(len(self.dests))]
        self.cum = list(_accumulate(weights))

    def pick(self, rng: random.Random) -> Dest:
        return self.dests[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


@dataclass(frozen=True, slots=True)
class Client:
    """A container (or the host) and its processes, with where they connect."""

    name: str | None
    cid: str | None
    image: str | None
    ip: str
    procs: list[Proc]
    pids: list[int]
    groups: list[str]
    cum: list[float]


def _accumulate(weights: list[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _weighted(rng: random.Random, table: dict[Any, float]) -> Any:
    return rng.choices(list(table), weights=list(table.values()))[0]


class World:
    """Every destination, client and remote initiator, drawn once from the seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.prefixes = {asn: self._prefixes() for asn in ASNS}
        self.groups = self._groups()
        self.clients = self._clients()
        self.by_name = {c.name: c for c in self.clients if c.name}
        self.client_cum = list(_accumulate([c[3] for c in CLIENTS]))
        self.scanners = [self._remote(SCANNER_ASNS) for _ in range(SCANNERS)]
        self.users = [self._remote(USER_ASNS) for _ in range(USERS)]
        self.traefik = self.by_name["traefik"]

    def _groups(self) -> dict[str, Group]:
        resolvers = [("1.1.1.1", 13335), ("8.8.8.8", 15169), ("1.0.0.1", 13335),
                     ("8.8.4.4", 15169), ("9.9.9.9", 19281)]  # fmt: skip
        pool = [_weighted(self.rng, TAIL_ASNS) for _ in range(40)]
        return {
            "llm": self._named(LLM, "llm"),
            "hub": self._named(HUB, "hub"),
            "apt": self._named(APT, "apt", port=80, named_by="http"),
            "telemetry": self._named(TELEMETRY, "telemetry"),
            "upload": self._named(UPLOAD, "upload"),
            "tail": self._tail(),
            "dns": Group([self._fixed(ip, asn, 53, "udp", "dns") for ip, asn in resolvers]),
            "ntp": Group(
                [self._dest("2.debian.pool.ntp.org", a, "ntp", 123, "udp", "dns") for a in pool]
            ),
            "ping": Group([self._fixed(ip, asn, 0, "icmp", "ping") for ip, asn in resolvers[:2]]),
        }

    def _prefixes(self) -> tuple[list[str], str]:
        rng = self.rng
        v4 = []
        while len(v4) < 3:
            a = rng.randrange(2, 224)
            if a not in (10, 100, 127, 169, 172, 192, 198, 203):
                v4.append(f"{a}.{rng.randrange(256)}")
        return v4, f"2a{rng.randrange(16):02x}:{rng.randrange(0x1000, 0x10000):x}"

    def _address(self, asn: int, v6: bool = False) -> str:
        v4, six = self.prefixes[asn]
        rng = self.rng
        if v6:
            return f"{six}:{rng.randrange(0x10000):x}::{rng.randrange(1, 0x10000):x}"
        return f"{rng.choice(v4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def _dest(self, name: str | None, asn: int, group: str, port: int = 443, proto: str = "tcp",
              named_by: str | None = "sni") -> Dest:  # fmt: skip
        rng = self.rng
        country = _weighted(rng, dict(ASNS[asn][1]))
        city = rng.choice(CITIES[country]) if rng.random() < 0.8 else None
        ips = tuple(self._address(asn) for _ in range(rng.randint(1, 4)))
        ips6 = tuple(self._address(asn, True) for _ in range(2)) if asn in V6_ASNS else ()
        return Dest(name, ips, ips6, port, proto, named_by if name else None, country, city, asn,
                    group)  # fmt: skip

    def _fixed(self, ip: str, asn: int, port: int, proto: str, group: str) -> Dest:
        return Dest(None, (ip,), (), port, proto, None, "US" if asn != 19281 else "CH", None, asn,
                    group)  # fmt: skip

    def _named(self, names: list[tuple[str, int]], group: str, port: int = 443,
               named_by: str = "sni") -> Group:  # fmt: skip
        return Group([self._dest(n, asn, group, port, "tcp", named_by) for n, asn in names])

    def _tail(self) -> Group:
        """The popular web names first, then thousands of made-up ones and raw addresses, in a
        seeded order (Zipf: a few are visited a lot, most rarely)."""
        rng = self.rng
        names: set[str] = {n for n, _ in WEB}
        others: list[Dest] = []
        while len(others) < TAIL_NAMES:
            name = _made_up_name(rng)
            if name in names:
                continue
            names.add(name)
            asn = _tail_asn(rng, name)
            http = rng.random() < 0.08
            others.append(self._dest(name, asn, "tail", 80 if http else 443, "tcp",
                                     "http" if http else "sni"))  # fmt: skip
        for _ in range(TAIL_ADDRESSES):
            port, proto = rng.choice(
                [(443, "tcp")] * 5 + [(80, "tcp")] * 2 + [(8080, "tcp"), (8443, "tcp"),
                 (22, "tcp"), (3478, "udp"), (51820, "udp"), (9000, "tcp")]
            )  # fmt: skip
            others.append(self._dest(None, _weighted(rng, TAIL_ASNS), "tail", port, proto))
        rng.shuffle(others)
        return Group([self._dest(n, asn, "tail") for n, asn in WEB] + others)

    def _clients(self) -> list[Client]:
        rng = self.rng
        out = []
        for i, (name, image, procs, _share, groups) in enumerate(CLIENTS):
            cid = f"{rng.getrandbits(256):064x}" if name else None
            ip = f"172.18.0.{i + 2}" if name else HOST_IP
            pids = [rng.randrange(300, 4_000_000) for _ in procs]
            out.append(Client(name, cid, image or None, ip, procs, pids, list(groups),
                              list(_accumulate(list(groups.values())))))  # fmt: skip
        return out

    def _remote(self, asns: dict[int, float]) -> tuple[str, str, int]:
        """An outside initiator: its address, country and ASN."""
        asn = _weighted(self.rng, asns)
        return self._address(asn), _weighted(self.rng, dict(ASNS[asn][1])), asn

    def service(self, name: str) -> Client:
        return self.by_name[name]


def _made_up_name(rng: random.Random) -> str:
    w1, w2 = rng.choice(WORDS), rng.choice(WORDS)
    tld = _weighted(rng, TLDS)
    form = rng.randrange(6)
    base = f"{w1}{w2}{rng.randrange(100) if rng.random() < 0.3 else ''}.{tld}"
    return [base, f"www.{base}", f"api.{base}", f"cdn.{base}", f"{w1}-{w2}.{tld}",
            f"{rng.choice(WORDS)}.{base}"][form]  # fmt: skip


def _tail_asn(rng: random.Random, name: str) -> int:
    if name.endswith(".cn"):
        return rng.choice([37963, 4134, 4837, 132203])
    if name.endswith(".ru"):
        return rng.choice([13238, 12389])
    return int(_weighted(rng, TAIL_ASNS))


# --- the flows ------------------------------------------------------------------------------

_UID_TABLE = bytes(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[b % 62]
                   for b in range(256))  # fmt: skip


def _uid(rng: random.Random) -> str:
    return "C" + rng.getrandbits(136).to_bytes(17, "big").translate(_UID_TABLE).decode()


def _volumes(group: str, rng: random.Random) -> tuple[int, int, float]:
    """(bytes out, bytes in, duration in seconds) of one flow to a destination of ``group``."""
    lnv = rng.lognormvariate
    if group == "hub":
        got = min(int(lnv(math.log(2e6), 2.5)), 40_000_000_000)
        return int(lnv(math.log(3e4), 1)), got, 0.3 + got / rng.uniform(20e6, 120e6)
    if group == "upload":
        sent = min(int(lnv(math.log(2e8), 1.5)), 20_000_000_000)
        return sent, int(lnv(math.log(5e4), 1)), 1 + sent / rng.uniform(10e6, 60e6)
    if group == "llm":
        return int(lnv(math.log(6e3), 1.2)), int(lnv(math.log(12e3), 1)), lnv(1.0, 1)
    if group in ("telemetry", "apt"):
        return int(lnv(math.log(4e3), 1)), int(lnv(math.log(3e3), 1.5)), lnv(-0.7, 0.8)
    if group == "tail":
        return int(lnv(math.log(2e3), 0.8)), int(lnv(math.log(8e4), 1.8)), lnv(0.4, 1)
    if group == "svc":
        if rng.random() < 0.03:  # a pooled connection: minutes to half an hour
            return (
                int(lnv(math.log(5e5), 1.5)),
                int(lnv(math.log(2e6), 1.5)),
                rng.uniform(300, 1800),
            )
        return int(lnv(math.log(3e3), 1.5)), int(lnv(math.log(8e3), 2)), lnv(-1.6, 1.5)
    if group == "ingress":
        return int(lnv(math.log(2e4), 1.5)), int(lnv(math.log(3e5), 2)), lnv(3.4, 1.5)
    return 0, 0, 0.0  # dns, ntp, ping, scanners: set by the caller


_TCP_STATES = (("SF", "ShADadFf", 93), ("RSTO", "ShADadR", 3), ("S0", "S", 2),
               ("REJ", "Sr", 1), ("RSTR", "ShADadr", 1))  # fmt: skip
_TCP_CUM = list(_accumulate([s[2] for s in _TCP_STATES]))


def _packets(sent: int, got: int) -> tuple[int, int]:
    pin = got // 1400 + 2 if got else 0
    return max(sent // 1400 + 3, pin // 2), pin


class Flows:
    """Flow records in the order the daemon writes them: by last packet, long flows also every
    60 s while they run (interim updates, ``closed`` False)."""

    def __init__(self, world: World, total: int, days: int) -> None:
        self.world, self.total, self.days = world, total, days
        self.rng = world.rng
        self.pending: list[tuple[float, int, FlowRecord, bool]] = []
        self.seq = 0
        self.alerts: list[Alert] = []
        self.alert_share = ALERTS / total / 1.6  # the rules' weights average about 1.6

    def batches(self) -> Iterator[tuple[list[FlowRecord], list[Alert]]]:
        """Batches of ~BATCH records, each with the alerts its flows raised."""
        batch: list[FlowRecord] = []
        for t in self._starts():
            self._start(t)
            self._due(t, batch)
            if len(batch) >= BATCH:
                yield batch, self._take_alerts()
                batch = []
        self._due(END, batch)
        yield batch, self._take_alerts()

    def _take_alerts(self) -> list[Alert]:
        alerts, self.alerts = self.alerts, []
        return alerts

    def _starts(self) -> Iterator[float]:
        """Start times: more by day than by night, fewer at weekends, sorted."""
        hours = self.days * 24
        start = END - hours * HOUR
        weights = []
        for h in range(hours):
            at = start + h * HOUR
            local = (at / HOUR + 1) % 24  # CET
            weekday = int(at // DAY + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
            w = 1 + 0.6 * math.sin((local - 9) / 24 * 2 * math.pi)
            w *= 0.6 if weekday >= 5 else 1.0
            weights.append(w * self.rng.uniform(0.85, 1.15))
        scale = self.total / sum(weights)
        made = 0.0
        for h, w in enumerate(weights):
            n = round(made + w * scale) - round(made)
            made += w * scale
            at = start + h * HOUR
            yield from sorted(at + self.rng.random() * HOUR for _ in range(n))

    def _due(self, now: float, batch: list[FlowRecord]) -> None:
        pending = self.pending
        while pending and pending[0][0] <= now:
            when, seq, rec, interim = heapq.heappop(pending)
            if not interim:
                batch.append(rec)
                continue
            share = (when - rec.first_seen) / (rec.last_seen - rec.first_seen)
            batch.append(dataclasses.replace(
                rec, last_seen=when, closed=False, state="S1" if rec.protocol == "tcp" else "SF",
                packets_out=max(1, int(rec.packets_out * share)),
                bytes_out=int(rec.bytes_out * share), packets_in=int(rec.packets_in * share),
                bytes_in=int(rec.bytes_in * share)))  # fmt: skip
            if when < END and when + ACTIVE_TIMEOUT < rec.last_seen:
                heapq.heappush(pending, (min(when + ACTIVE_TIMEOUT, END), seq, rec, True))

    def _start(self, t: float) -> None:
        rng = self.rng
        if rng.random() < INGRESS_SHARE:
            rec = self._ingress(t)
        else:
            world = self.world
            client = world.clients[
                bisect.bisect(world.client_cum, rng.random() * world.client_cum[-1])
            ]
            group = client.groups[bisect.bisect(client.cum, rng.random() * client.cum[-1])]
            rec = self._internal(t, client, group[4:]) if group.startswith("svc:") else (
                self._egress(t, client, world.groups[group].pick(rng)))  # fmt: skip
        self.seq += 1
        if rec.last_seen - rec.first_seen > ACTIVE_TIMEOUT or rec.last_seen > END:
            # interim updates; one still running at the end is last written at the end
            first = min(t + ACTIVE_TIMEOUT, END)
            heapq.heappush(self.pending, (first, self.seq, rec, True))
        if rec.last_seen <= END:
            heapq.heappush(self.pending, (rec.last_seen, self.seq, rec, False))
        alert = _maybe_alert(rec, self.alert_share, rng)
        if alert is not None:
            self.alerts.append(alert)

    def _egress(self, t: float, client: Client, d: Dest) -> FlowRecord:
        """An egress flow to ``d``: its size, TCP state and names; one field a line, hence long."""
        rng = self.rng
        v6 = client.name is None and bool(d.ips6) and rng.random() < 0.4
        proto, named_by = d.proto, d.named_by
        quic = proto == "tcp" and d.port == 443 and d.asn in (13335, 15169) and named_by
        if quic and rng.random() < 0.2:
            proto, named_by = "udp", "quic"
        sent, got, duration = self._size(d.group, rng)
        packets_out, packets_in = _packets(sent, got)
        state, history = "SF", "Dd"
        if proto == "tcp":
            state, history, _ = _TCP_STATES[bisect.bisect(_TCP_CUM, rng.random() * 100)]
            if state in ("S0", "REJ"):
                sent, got, duration = 60 * (1 + (state == "S0")), 40 * (state == "REJ"), 0.0
                packets_out, packets_in = sent // 60, int(state == "REJ")
        elif proto == "icmp":
            state, history = "OTH", ""
            packets_out = packets_in = sent // 84
        ping = proto == "icmp"
        name = d.name if named_by else None
        proc = rng.randrange(len(client.procs))
        runtime = client.procs[proc][1]
        return FlowRecord(
            uid=_uid(rng), first_seen=t, last_seen=t + duration,
            interface="eth0" if client.name is None else "br-7e1c2a9f03d4",
            direction=Direction.EGRESS, ip_proto={"tcp": 6, "udp": 17}.get(proto, 58 if v6 else 1),
            protocol="icmp6" if ping and v6 else proto,
            src_ip=HOST_IP6 if v6 else client.ip,
            src_port=8 if ping else rng.randrange(32768, 61000),
            dst_ip=rng.choice(d.ips6 if v6 else d.ips), dst_port=0 if ping else d.port,
            packets_out=packets_out, bytes_out=sent, packets_in=packets_in, bytes_in=got,
            state=state, history=history, closed=True,
            server_name=name, name_source=named_by if name else None,
            dns_name=name if name and (named_by == "dns" or rng.random() < 0.7) else None,
            ja4=JA4[runtime] if named_by in ("sni", "quic") else None,
            alpn=("h3" if named_by == "quic" else "h2,http/1.1" if runtime in ("go", "node",
                  "chrome", "python", "curl") else "http/1.1") if named_by in ("sni", "quic")
            else None,
            country=d.country, city=d.city, asn=d.asn, as_org=ASNS[d.asn][0] if d.asn else None,
            **_attribution(client, proc, rng),
        )  # fmt: skip

    def _size(self, group: str, rng: random.Random) -> tuple[int, int, float]:
        if group == "dns":
            return rng.randint(55, 110), rng.randint(70, 520), rng.uniform(0.002, 0.08)
        if group == "ntp":
            return 76, 76, rng.uniform(0.005, 0.05)
        if group == "ping":
            n = rng.randint(1, 4)
            return 84 * n, 84 * n, n - 1 + rng.uniform(0.005, 0.05)
        return _volumes(group, rng)

    def _internal(self, t: float, client: Client, service: str) -> FlowRecord:
        rng = self.rng
        server = self.world.service(service)
        sent, got, duration = _volumes("svc", rng)
        packets_out, packets_in = _packets(sent, got)
        proc = rng.randrange(len(client.procs))
        return FlowRecord(
            uid=_uid(rng), first_seen=t, last_seen=t + duration, interface="br-7e1c2a9f03d4",
            direction=Direction.INTERNAL, ip_proto=6, protocol="tcp", src_ip=client.ip,
            src_port=rng.randrange(32768, 61000), dst_ip=server.ip, dst_port=SERVICES[service],
            packets_out=packets_out, bytes_out=sent, packets_in=packets_in, bytes_in=got,
            state="SF", history="ShADadFf", closed=True, **_attribution(client, proc, rng),
        )  # fmt: skip

    def _ingress(self, t: float) -> FlowRecord:
        """From outside: scanners (most of them, short, often unanswered) and users of the
        reverse proxy (traefik) on 443."""
        rng, world = self.rng, self.world
        if rng.random() < 0.8:
            src, country, asn = rng.choice(world.scanners)
            port = rng.choice([22] * 5 + [443, 443, 80, 80, 8080, 11434, 3389, 5432, 6379])
            state, history = rng.choice([("S0", "S"), ("S0", "S"), ("REJ", "Sr"),
                                         ("SF", "ShADadFf"), ("RSTO", "ShADR")])  # fmt: skip
            sent = rng.randint(60, 3000) if state in ("SF", "RSTO") else 60
            got = rng.randint(40, 4000) if state in ("SF", "RSTO") else 40 * (state == "REJ")
            duration = rng.uniform(0.05, 8) if state in ("SF", "RSTO") else 0.0
        else:
            src, country, asn = rng.choice(world.users)
            port, state, history = 443, "SF", "ShADadFf"
            sent, got, duration = _volumes("ingress", rng)
        packets_out, packets_in = _packets(sent, got)
        proxy = world.traefik if port in (80, 443) else None
        return FlowRecord(
            uid=_uid(rng), first_seen=t, last_seen=t + duration, interface="eth0",
            direction=Direction.INGRESS, ip_proto=6, protocol="tcp", src_ip=src,
            src_port=rng.randrange(1024, 65536), dst_ip=HOST_IP, dst_port=port,
            packets_out=packets_out, bytes_out=sent, packets_in=packets_in, bytes_in=got,
            state=state, history=history, closed=True, country=country,
            city=rng.choice(CITIES[country]) if rng.random() < 0.6 else None, asn=asn,
            as_org=ASNS[asn][0], container_id=proxy.cid if proxy else None,
            container_name=proxy.name if proxy else None, image=proxy.image if proxy else None,
        )  # fmt: skip


def _attribution(client: Client, proc: int, rng: random.Random) -> dict[str, Any]:
    """Container and process fields; the process is unknown for about one flow in ten."""
    out: dict[str, Any] = {"container_id": client.cid, "container_name": client.name,
                           "image": client.image}  # fmt: skip
    if rng.random() < 0.9:
        name, _runtime, exe, cmdline, uid = client.procs[proc]
        user = None if client.name else {0: "root", 1000: "ops"}.get(uid, name)
        out.update(pid=client.pids[proc] + rng.randrange(0, 50), process=name, exe=exe,
                   cmdline=cmdline, user_id=uid, user=user)  # fmt: skip
    return out


_RULES = (  # rule, severity, how much likelier than a plain first-seen destination
    ("inference: denied destination", "high", 8.0),
    ("upload", "high", 40.0),
    ("sandbox: not allowed", "critical", 3.0),
    ("raw-ip", "medium", 2.0),
    ("exposed: reached from outside", "medium", 1.0),
    ("first-seen destination", "low", 1.0),
)


def _rule(rec: FlowRecord) -> tuple[str, str, float]:
    if rec.direction == Direction.INGRESS:
        return _RULES[4]
    if rec.country in ("CN", "RU"):
        return _RULES[0]
    if rec.bytes_out > 50_000_000:
        return _RULES[1]
    if rec.container_name == "dify-sandbox-1":
        return _RULES[2]
    if rec.server_name is None and rec.protocol == "tcp":
        return _RULES[3]
    return _RULES[5]


def _maybe_alert(rec: FlowRecord, share: float, rng: random.Random) -> Alert | None:
    """An alert on ``rec`` with a probability of ``share`` times its rule's weight."""
    draw = rng.random()
    if draw >= share * 40 or rec.direction == Direction.INTERNAL:
        return None
    rule, severity, weight = _rule(rec)
    if draw >= share * weight:
        return None
    source = rec.container_name or rec.process or rec.src_ip
    destination = rec.server_name or rec.dst_ip
    key = f"{rule}|{source}|{destination}|{rec.dst_port}"
    who = f"container {rec.container_name}" if rec.container_name else "host"
    where = f"{rec.dst_ip}:{rec.dst_port}" + (f" ({rec.server_name})" if rec.server_name else "")
    summary = f"{who} -> {where} {rec.country or ''} AS{rec.asn or 0}: {rule}"
    evidence = None
    if rng.random() < 0.7:  # the first packets (8 of at most 384 bytes), as live capture keeps
        evidence = rng.randbytes(24 + sum(16 + rng.randint(54, 384) for _ in range(8)))
    return Alert(uid=alert_uid(key, rec.uid), time=rec.first_seen, rule=rule, severity=severity,
                 summary=summary, dedup_key=key, flow=rec, evidence=evidence)  # fmt: skip


# --- the database ---------------------------------------------------------------------------


def _containers(world: World) -> list[tuple[Any, float]]:
    """Docker's description of every container (what /containers shows beside the egress)."""
    from egresswatch.attribution.containers import Container

    socket_users = {"watchtower", "portainer", "traefik"}
    out = []
    for c in world.clients:
        if c.name is None or c.cid is None:
            continue
        out.append((Container(
            id=c.cid, name=c.name, image=c.image or "", network_mode="bridge",
            privileged=c.name == "dify-sandbox-1", docker_socket=c.name in socket_users,
            cap_add=frozenset({"SYS_ADMIN"}) if c.name == "dcgm-exporter" else frozenset(),
        ), END - 60))  # fmt: skip
    return out


def _produce(queue: Any, flows: int, days: int) -> None:
    """The child process: every batch of records with its alerts, in order, then None."""
    gen = Flows(World(random.Random(SEED)), flows, days)
    for batch, alerts in gen.batches():
        queue.put((batch, alerts, gen.seq))
    queue.put(None)


def build(path: Path, flows: int, days: int) -> dict[str, Any]:
    """Write the database at ``path`` (through a temporary file); returns what it holds.
    (Long because the write loop also keeps the time in the store apart and shows progress.)"""
    partial = path.with_name(path.stem + ".partial.db")
    for leftover in (partial, *(Path(f"{partial}{s}") for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    # The records are made in a child process, forked before any database is opened here.
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=16)
    producer = context.Process(target=_produce, args=(queue, flows, days), daemon=True)
    producer.start()
    db = Database(f"sqlite:///{partial}")
    db.upgrade()
    store = waited = 0.0
    records = raised = shown = 0
    try:
        while True:
            t0 = time.perf_counter()
            item = queue.get()
            waited += time.perf_counter() - t0
            if item is None:
                break
            batch, alerts, made = item
            t0 = time.perf_counter()
            db.write_flows(batch)
            if alerts:
                db.write_alerts(alerts, ALERT_WINDOW)
            store += time.perf_counter() - t0
            records += len(batch)
            raised += len(alerts)
            if made * 20 // flows > shown:
                shown = made * 20 // flows
                took = time.perf_counter() - started
                print(f"  ... {made:,} flows ({records:,} records) in {took:.0f} s, "
                      f"{made / took:,.0f} flows/s", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        producer.join(timeout=10)
        if producer.is_alive():
            producer.terminate()
    db.write_containers(_containers(World(random.Random(SEED))))
    old = [r["uid"] for r in db.alerts(AlertFilter(limit=0)) if r["last_time"] < END - 3 * DAY]
    db.acknowledge(old[: len(old) * 9 // 10])
    db.close()
    took = time.perf_counter() - started
    with closing(sqlite3.connect(partial)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for stale in (Path(f"{path}-wal"), Path(f"{path}-shm")):  # an older database's
        stale.unlink(missing_ok=True)
    partial.replace(path)
    return {"version": VERSION, "seed": SEED, "flows": flows, "days": days, "end": END,
            "records": records, "alerts_raised": raised, "seconds": round(took, 1),
            "store_seconds": round(store, 1), "waited_seconds": round(waited, 1),
            "built": time.strftime("%Y-%m-%d %H:%M:%S"), "load": os.getloadavg()[0]}  # fmt: skip


def database(out: Path, flows: int, days: int, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The cached database for these parameters, built first if it is missing or stale."""
    path = out / f"api-{flows}-{days}d.db"
    meta_path = path.with_suffix(".json")
    wanted = {"version": VERSION, "seed": SEED, "flows": flows, "days": days, "end": END}
    if not rebuild and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            meta["reused"] = True
            return path, meta
    print(f"building {path} ({flows:,} flows over {days} days) ...", file=sys.stderr, flush=True)
    meta = build(path, flows, days)
    meta_path.write_text(json.dumps(meta, indent=1))
    return path, meta


def describe(path: Path, meta: dict[str, Any]) -> None:
    """What the database holds and how long it took to build."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        count = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("flows", "flow_hours", "alerts", "containers")}  # fmt: skip
        day = conn.execute("SELECT COUNT(*) FROM flow_hours WHERE hour >= ?", (END - DAY,))
        hours_day = day.fetchone()[0]
        directions = dict(conn.execute("SELECT direction, COUNT(*) FROM flows GROUP BY 1"))
        names = conn.execute("SELECT COUNT(DISTINCT server_name), COUNT(DISTINCT dst_ip), "
                             "COUNT(DISTINCT country), COUNT(DISTINCT asn) FROM flow_hours "
                             "WHERE direction = 'egress'").fetchone()  # fmt: skip
        severities = dict(conn.execute("SELECT severity, COUNT(*) FROM alerts GROUP BY 1"))
    flows, seconds = meta["flows"], meta["seconds"]
    state = "reused, built" if meta.get("reused") else "built"
    print(
        f"database: {path} ({path.stat().st_size / 1e9:.2f} GB; {state} {meta['built']}, "
        f"load {meta['load']:.1f})"
    )
    print(
        f"  build: {flows:,} flows ({meta['records']:,} records with the interim updates) in "
        f"{seconds:,.0f} s: {flows / seconds:,.0f} flows/s, {meta['records'] / seconds:,.0f} "
        f"records/s;\n    of that the store (write_flows + write_alerts) "
        f"{meta['store_seconds']:,.0f} s ({meta['records'] / meta['store_seconds']:,.0f} "
        f"records/s), waiting for the generator (a second process) "
        f"{meta.get('waited_seconds', 0):,.0f} s"
    )
    share = ", ".join(f"{d} {n / count['flows']:.1%}" for d, n in sorted(directions.items()))
    print(
        f"  flows: {count['flows']:,} ({share}); egress to {names[0]:,} server names and "
        f"{names[1]:,} unnamed addresses, {names[2]} countries, {names[3]} ASNs"
    )
    print(
        f"  flow_hours: {count['flow_hours']:,} rows ({count['flow_hours'] / count['flows']:.1%}"
        f" of the flows; {hours_day:,} in the last 24 h); alerts: {count['alerts']:,} rows "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(severities.items()))}) from "
        f"{meta['alerts_raised']:,} raised; containers: {count['containers']}"
    )


# --- serving and timing ---------------------------------------------------------------------


class Server:
    """``egresswatch serve`` on a free loopback port, with an empty config file."""

    def __init__(self, db: Path, out: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = out / "api-bench.toml"
        config.write_text("")
        exe = Path(sys.executable).with_name("egresswatch")
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "egresswatch"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESSWATCH_")}
        self.log = out / "api-serve.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [*argv, "serve", "--listen", f"127.0.0.1:{self.port}", "--db",
                 f"sqlite:///{db}", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        self.command = " ".join([Path(argv[0]).name, *argv[1:], "serve", "..."])
        deadline = time.monotonic() + 60
        while True:
            try:
                with closing(http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)) as c:
                    c.request("GET", "/healthz")
                    if c.getresponse().status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"egresswatch serve did not start: see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Http:
    """One keep-alive connection; ``get`` returns (seconds until the body is read, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def reconnect(self) -> None:
        """A new connection: uvicorn closes one idle for 5 s (as between two cases)."""
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, path: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        took = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
        return took, body


@dataclass
class Case:
    """One request, and the same query through the store in this process."""

    name: str
    path: str
    store: Callable[[Database], object]
    times: list[float] = dataclasses.field(default_factory=list)
    size: int = 0
    store_times: list[float] = dataclasses.field(default_factory=list)
    sql: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    sql_times: list[float] = dataclasses.field(default_factory=list)
    items: int = 0
    first: float = 0.0
    """The first request's time: nothing cached yet (the server just started)."""
    cold: list[float] = dataclasses.field(default_factory=list)
    """Requests as after the hour turned (the API's cache of closed hours partly stale)."""


def _flows(**kw: Any) -> Callable[[Database], object]:
    return lambda db: list(db.flows(FlowFilter(limit=101, **kw)))


def _query(**params: Any) -> str:
    return urlencode({k: (f"{v:.0f}" if isinstance(v, float) else v) for k, v in params.items()})


def _cursor(text: str) -> tuple[float, str]:
    last_seen, uid = json.loads(base64.urlsafe_b64decode(text.encode()))
    return float(last_seen), str(uid)


def _deep_cursor(client: Http, query: str, pages: int) -> tuple[str, int]:
    """The cursor of page ``pages + 1`` (or of the last page, in a small database), following
    next_cursor from the first page, and that page's number."""
    cursor: str | None = None
    client.reconnect()
    for page in range(1, pages + 1):
        path = f"/api/v1/flows?{query}" + (f"&cursor={cursor}" if cursor else "")
        following = json.loads(client.get(path)[1])["next_cursor"]
        if following is None:
            return cursor or "", page
        cursor = following
    return str(cursor), pages + 1


def cases(client: Http, days: int, deep: int) -> list[Case]:
    """Every case, with absolute times before END (the data's end). (Long: it is the list.)"""
    h2, d1, dn = END - 2 * HOUR, END - DAY, END - days * DAY
    top, top_page = _deep_cursor(client, "limit=100", deep)
    mine, mine_page = _deep_cursor(client, "limit=100&container=dify-api-1", deep)
    wide, narrow = cidrs()
    flow_cases = [
        Case("flows: first page", "limit=100", _flows()),
        Case(f"flows: page {top_page} (cursor)", f"limit=100&cursor={top}",
             _flows(before=_cursor(top) if top else None)),
        Case("flows: since=2h", _query(limit=100, since=h2), _flows(since=h2)),
        Case("flows: container=dify-api-1", _query(limit=100, container="dify-api-1"),
             _flows(container="dify-api-1")),
        Case(f"flows: container=dify-api-1, page {mine_page}",
             f"limit=100&container=dify-api-1&cursor={mine}",
             _flows(container="dify-api-1", before=_cursor(mine) if mine else None)),
        Case("flows: country=CN", "limit=100&country=CN", _flows(country="CN")),
        Case("flows: server_name=*.huggingface.co", _query(limit=100,
             server_name="*.huggingface.co"), _flows(server_name="*.huggingface.co")),
        Case("flows: min_bytes_out=100MB", "limit=100&min_bytes_out=100000000",
             _flows(min_bytes_out=100_000_000)),
        Case(f"flows: dst={wide} (wide)", _query(limit=100, dst=wide), _flows(dst=wide)),
        Case(f"flows: dst={narrow} (narrow)", _query(limit=100, dst=narrow), _flows(dst=narrow)),
        Case("flows: process=curl, country=US, since=24h",
             _query(limit=100, process="curl", country="US", since=d1),
             _flows(process="curl", country="US", since=d1)),
    ]  # fmt: skip
    for case in flow_cases:
        case.path = f"/api/v1/flows?{case.path}"
    out = flow_cases
    for label, since in (("24h", d1), (f"{days}d", dn)):
        for group in ("server_name", "country", "asn", "container", "process"):
            out.append(Case(
                f"destinations: {label}, by {group}",
                f"/api/v1/destinations?{_query(since=since, group_by=group)}",
                _totals(group, since),
            ))  # fmt: skip
    return [
        *out,
        Case("alerts: limit=100", "/api/v1/alerts?limit=100",
             lambda db: list(db.alerts(AlertFilter(limit=100)))),
        Case("alerts: severity=high", "/api/v1/alerts?limit=100&severity=high",
             lambda db: list(db.alerts(AlertFilter(limit=100, severity="high")))),
        Case("alerts: acknowledged=false", "/api/v1/alerts?limit=100&acknowledged=false",
             lambda db: list(db.alerts(AlertFilter(limit=100, unacknowledged=True)))),
        Case("containers (all time)", "/api/v1/containers", lambda db: db.containers()),
        Case("containers: since=24h", f"/api/v1/containers?{_query(since=d1)}",
             lambda db: db.containers(d1)),
    ]  # fmt: skip


def _totals(group: str, since: float) -> Callable[[Database], object]:
    return lambda db: list(db.totals(TotalsFilter(group_by=group, since=since)))  # type: ignore[arg-type]


def cidrs() -> tuple[str, str]:
    """A /16 of the CDN most named destinations are behind, and the /24 of a raw address in
    the long tail: a wide and a narrow CIDR filter."""
    world = World(random.Random(SEED))
    wide = world.prefixes[13335][0][0] + ".0.0/16"
    raw = next(d for d in world.groups["tail"].dests if d.name is None and d.proto == "tcp")
    return wide, raw.ips[0].rsplit(".", 1)[0] + ".0/24"


def timed(run: Callable[[], object], most: int, budget: float, warm: int = 3) -> list[float]:
    """Seconds per call: ``warm`` calls unmeasured, then up to ``most`` (fewer when a call takes
    so long that ``most`` would not fit in ``budget`` seconds; at least 10, or ``most``)."""
    start = time.perf_counter()
    for _ in range(warm):
        run()
    each = (time.perf_counter() - start) / warm
    n = max(min(10, most), min(most, int(budget / max(each, 1e-6))))
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


class Statements:
    """The SELECTs the store sends (to time them alone and explain them)."""

    def __init__(self, db: Database) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.on = False
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.on and statement.lstrip().upper().startswith("SELECT") and "FROM" in statement:
            self.seen.append((statement, parameters))

    def of(self, run: Callable[[], object]) -> list[tuple[str, Any]]:
        """The SELECTs of one call of ``run``."""
        self.seen, self.on = [], True
        try:
            run()
        finally:
            self.on = False
        return self.seen


def measure(case: Case, client: Http, db: Database, sql: sqlite3.Connection,
            statements: Statements, args: argparse.Namespace) -> None:  # fmt: skip
    """Time the case over HTTP, then the store call in this process, then its SQL alone."""
    client.reconnect()  # the warm-up requests open it
    t0 = time.perf_counter()
    client.get(case.path)  # the first: nothing cached yet
    case.first = time.perf_counter() - t0
    case.times = timed(lambda: client.get(case.path), args.requests, args.budget)
    body = client.get(case.path)[1]
    case.size, case.items = len(body), len(json.loads(body)["items"])
    case.store(db)  # as warm as the server is: the SQL is what a request sends
    case.sql = statements.of(lambda: case.store(db))
    case.store_times = timed(lambda: case.store(db), 50, args.budget / 4)

    def run_sql() -> None:
        for statement, parameters in case.sql:
            sql.execute(statement, parameters).fetchall()

    case.sql_times = timed(run_sql, 50, args.budget / 4)
    if case.path.startswith(CACHED):
        client.reconnect()  # idle while the store and SQL were timed: uvicorn closed it
        case.cold = []
        for k in range(1, COLD + 1):
            path = moved(case.path, k)
            stale(sql)
            t0 = time.perf_counter()
            client.get(path)
            case.cold.append(time.perf_counter() - t0)


CACHED = ("/api/v1/destinations", "/api/v1/containers")
"""Answered from closed hours kept in memory, and the open hours read afresh."""
COLD = 5


def moved(path: str, hours: int) -> str:
    """The same request with its ``since`` that many hours earlier: a window relative to now
    (since=30d), asked for again after the hour turned."""
    head, _, query = path.partition("?")
    params = dict(urllib.parse.parse_qsl(query))
    if "since" in params:
        params["since"] = f"{float(params['since']) - hours * HOUR:.0f}"
    return f"{head}?{urlencode(params)}" if params else head


def stale(sql: sqlite3.Connection) -> None:
    """The other half of the hour turning: the newest closed hour (in the live hours) is
    written to, as the daemon's late flows do."""
    sql.execute("UPDATE flow_hour_changes SET changes = changes + 1 WHERE hour = ?",
                (math.floor(time.time() / HOUR) * HOUR - 2 * HOUR,))  # fmt: skip
    sql.commit()


def live(path: Path, out: Path) -> tuple[Path, int]:
    """A copy of the database whose last two hours are written again at the present time, as
    the daemon writes them (new uids): the open hours a live box has, which the API reads
    afresh on every request. Returns the copy and how many flows were written."""
    Database(f"sqlite:///{path}").upgrade()  # the cached copy itself, once per migration
    copy = out / "api-live.db"
    for old in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
        old.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    shift = time.time() - END
    fields = [f.name for f in dataclasses.fields(FlowRecord)]
    with closing(sqlite3.connect(copy)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(f"SELECT {', '.join(fields)} FROM flows WHERE last_seen >= ? "
                            "ORDER BY last_seen", (END - 2 * HOUR,)).fetchall()  # fmt: skip
    records = []
    for row in rows:
        values = dict(zip(fields, row, strict=True))
        values["uid"] = "L" + values["uid"][1:]
        values["first_seen"] += shift
        values["last_seen"] += shift
        values["direction"] = Direction(values["direction"])
        records.append(FlowRecord(**values))
    db = Database(f"sqlite:///{copy}")
    try:
        for start in range(0, len(records), 5000):
            db.write_flows(records[start : start + 5000])
    finally:
        db.close()
    return copy, len(records)


def pct(times: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in milliseconds."""
    ordered = sorted(times)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def report(all_cases: list[Case]) -> list[Case]:
    """The table; returns the cases whose p99 missed the goal."""
    print(f"\n{'case':<46} {'n':>4} {'p50':>8} {'p99':>8} {'max':>8} | {'store':>7} "
          f"{'SQL':>7} | {'items':>5} {'KB':>6}  p99 < {GOAL_MS:.0f} ms")  # fmt: skip
    print("-" * 118)
    missed = []
    for c in all_cases:
        p99 = pct(c.times, 99)
        ok = p99 < GOAL_MS
        if not ok:
            missed.append(c)
        print(f"{c.name:<46} {len(c.times):>4} {pct(c.times, 50):>8.1f} {p99:>8.1f} "
              f"{max(c.times) * 1000:>8.1f} | {pct(c.store_times, 50):>7.1f} "
              f"{pct(c.sql_times, 50):>7.1f} | {c.items:>5} {c.size / 1000:>6.1f}  "
              f"{'yes' if ok else 'NO'}")  # fmt: skip
    print(
        "times in ms. p50/p99/max: HTTP GET until the body is read (one keep-alive connection,"
        " n requests after 3 warm-ups);\nstore: p50 of the same Database call in this process "
        "(no HTTP, no JSON); SQL: p50 of the store's SELECTs run alone with sqlite3"
    )
    print(f"\nthe answers built from closed hours kept in memory, when they are not: first: "
          f"the first request after the server started; an hour later: {COLD} requests each "
          "with since an hour earlier and\nthe newest closed hour written to (what the hour "
          "turning does to since=24h or since=30d), p50 and max; ms:")  # fmt: skip
    for c in all_cases:
        if c.cold:
            print(f"  {c.name:<44} first {c.first * 1000:>8.1f}   an hour later: p50 "
                  f"{pct(c.cold, 50):>7.1f}  max {max(c.cold) * 1000:>7.1f}")  # fmt: skip
    return missed


def explain(sql: sqlite3.Connection, missed: list[Case]) -> None:
    """The query plan of each SELECT behind a case over the goal."""
    for c in missed:
        print(f"\n{c.name}: p99 {pct(c.times, 99):.0f} ms; {len(c.sql)} SELECT(s), SQL p50 "
              f"{pct(c.sql_times, 50):.0f} ms")  # fmt: skip
        for statement, parameters in c.sql:
            print("  " + " ".join(statement.split())[:400])
            for row in sql.execute(f"EXPLAIN QUERY PLAN {statement}", parameters):
                print(f"    {row[3]}")


RAW_TOTALS = (
    "SELECT server_name, CASE WHEN server_name IS NULL THEN dst_ip ELSE '' END AS ip, "
    "COUNT(*), SUM(packets_out), SUM(bytes_out) AS out, SUM(packets_in), SUM(bytes_in), "
    "MIN(first_seen), MAX(last_seen) FROM flows {hint} WHERE last_seen >= ? "
    "GROUP BY 1, 2 ORDER BY out DESC, 1, 2 LIMIT 50"
)


HOURLY_TOTALS = (
    "SELECT server_name, dst_ip, SUM(flows), SUM(packets_out), SUM(bytes_out) AS out, "
    "SUM(packets_in), SUM(bytes_in), MIN(first_seen), MAX(last_seen) FROM flow_hours "
    "WHERE hour >= ? GROUP BY 1, 2 ORDER BY out DESC, 1, 2 LIMIT 50"
)


def reference(sql: sqlite3.Connection, all_cases: list[Case], days: int) -> None:
    """What the rollups save: /destinations' totals worked out from the raw flows instead."""
    print("\nreference, sqlite3 in this process:")
    first = all_cases[0]
    print(
        f"  {first.name}: the store's SELECT alone p50 {pct(first.sql_times, 50):.2f} ms, "
        f"p99 {pct(first.sql_times, 99):.2f} ms (n={len(first.sql_times)})"
    )
    # Without statistics SQLite walks ix_flows_server_name through every flow to avoid a sort;
    # over a day, reading that day's flows by last_seen is the better plan.
    for label, since, hint, how in (
        ("24h", END - DAY, "INDEXED BY ix_flows_last_seen", "the day's flows by last_seen"),
        (f"{days}d", END - days * DAY, "", "every flow"),
    ):
        query = RAW_TOTALS.format(hint=hint)
        times = timed(lambda q=query, s=since: sql.execute(q, (s,)).fetchall(), 3, 0, warm=1)
        hourly = timed(lambda s=since: sql.execute(HOURLY_TOTALS, (s,)).fetchall(), 3, 0, warm=1)
        served = next(c for c in all_cases if c.name == f"destinations: {label}, by server_name")
        raw, rolled, warm = pct(times, 50), pct(hourly, 50), pct(served.times, 50)
        print(f"  destinations {label} by server_name as a GROUP BY over the raw flows ({how}): "
              f"p50 {raw:,.0f} ms (n={len(times)}); over flow_hours {rolled:,.1f} ms "
              f"({raw / rolled:,.1f}x faster); the API with its cache {warm:.1f} ms")  # fmt: skip
    raw = sql.execute("SELECT SUM(bytes_out), SUM(bytes_in) FROM flows").fetchone()
    hours = sql.execute("SELECT SUM(bytes_out), SUM(bytes_in) FROM flow_hours").fetchone()
    print(
        f"  rollup check: bytes out/in over all flows {raw[0]:,}/{raw[1]:,}, over flow_hours "
        f"{hours[0]:,}/{hours[1]:,}: {'equal' if tuple(raw) == tuple(hours) else 'DIFFERENT'}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=5_000_000, help="default 5,000,000")
    parser.add_argument("--days", type=int, default=30, help="default 30")
    parser.add_argument("--requests", type=int, default=200, help="per case (default 200)")
    parser.add_argument(
        "--budget", type=float, default=60.0,
        help="seconds per case at most: a slow case gets fewer requests (default 60)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="default bench/out")
    parser.add_argument("--rebuild", action="store_true", help="build the database even if cached")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    path, meta = database(args.out, args.flows, args.days, args.rebuild)
    describe(path, meta)
    try:
        measure_all(path, args)
    except Exception:  # a benchmark prints what went wrong and still exits 0
        traceback.print_exc()
    print(
        f"load average: {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"({os.cpu_count()} CPUs)"
    )
    return 0


def measure_all(path: Path, args: argparse.Namespace) -> None:
    """Serve the database, time every case, print the table, the plans and the reference."""
    path, written = live(path, args.out)
    print(f"live hours: the last 2 hours' {written:,} flows written again at the present time "
          f"into a copy ({path}): the open hours the API reads afresh")  # fmt: skip
    server = Server(path, args.out)
    db = Database(f"sqlite:///{path}")
    try:
        client = Http(server.port)
        all_cases = cases(client, args.days, 50)
        statements = Statements(db)
        with closing(sqlite3.connect(path)) as sql:
            for case in all_cases:
                print(f"  timing {case.name} ...", file=sys.stderr, flush=True)
                measure(case, client, db, sql, statements, args)
            print(f"\nserver: {server.command} (uvicorn, 1 process), data ending "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(END))}; the cases ask for "
                  f"times before that end (since=2h is since={END - 2 * HOUR:.0f})")  # fmt: skip
            missed = report(all_cases)
            worst = max(all_cases, key=lambda c: pct(c.times, 99))
            verdict = "MET" if not missed else f"NOT MET ({len(missed)} of {len(all_cases)} over)"
            print(f"\ngoal: every p99 < {GOAL_MS:.0f} ms on SQLite: {verdict}; worst: {worst.name}"
                  f" {pct(worst.times, 99):,.1f} ms")  # fmt: skip
            explain(sql, missed)
            reference(sql, all_cases, args.days)
    finally:
        db.close()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
