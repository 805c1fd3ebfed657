# bptt-serve with an Iris checkpoint trained while the image is built (README, "Serving").
#   docker build -t bptt-serve .
#   docker run --rm -p 8000:8000 bptt-serve
#   curl -s localhost:8000/v1/models/iris/predict -d '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
FROM python:3.11-slim

# No network at run time: the Iris data is bundled, so datasets must not look for the hub.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_UPDATE_DOWNLOAD_COUNTS=0

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bptt

# The package with the serve extra, installed by root; the sources stay root-owned.
WORKDIR /opt/bptt
COPY pyproject.toml README.md ./
COPY bptt ./bptt
COPY checkpointing ./checkpointing
COPY tasks ./tasks
RUN pip install ".[serve]"

USER bptt
WORKDIR /home/bptt
# Train the bundled checkpoint: bptt-bench's Iris recipe (seed 42, 80 epochs, about a second).
RUN bptt-bench --task iris --quiet --save /home/bptt/models/iris && mkdir -p /home/bptt/logs

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["bptt-serve", "/home/bptt/models", "--host", "0.0.0.0", "--port", "8000", \
     "--log-file", "/home/bptt/logs/requests.jsonl"]
