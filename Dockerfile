# wa-support: the gateway, the CLI and Ray in one slim image.
#
#   docker build -t wa-support .
#   docker run --shm-size=512m -p 8080:8080 --env-file wa-support.env wa-support
#
# Ray keeps its object store in /dev/shm. Docker gives a container 64 MB there by
# default, too small for Ray, which then falls back to /tmp and warns that it is slow;
# Ray's documentation asks for `--shm-size` (compose: `shm_size`, Kubernetes: an
# emptyDir with medium: Memory on /dev/shm) larger than the object store. Ours is capped
# at RAY_OBJECT_STORE_MB (150) for a local Ray and at 200 MB by deploy/ray_cluster
# start commands, so 512m leaves room; give it about 30% of the container's memory if you
# raise the cap.
#
# The same image runs a Ray head (`ray start --head --block`), a gateway that joins it
# (deploy/docker/entrypoint.sh with RAY_ADDRESS) or a gateway with a local Ray (no
# RAY_ADDRESS). Configuration comes from the environment only (.env.example lists it).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A compiler, for the few dependencies that may build from source on some platforms.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so a code change does not reinstall Ray.
COPY pyproject.toml README.md ./
RUN mkdir -p actors gateway store config fakes cli loadtest \
    && pip install . && pip uninstall -y wa-support
COPY actors actors
COPY gateway gateway
COPY store store
COPY config config
COPY fakes fakes
COPY cli cli
COPY loadtest loadtest
RUN pip install --no-deps .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/var/lib/wa-support
# procps: `ray stop` and `ray status` look for processes with ps.
RUN apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wa \
    && useradd --system --uid 10001 --gid wa --create-home --home-dir /home/wa wa \
    && mkdir -p /var/lib/wa-support && chown wa:wa /var/lib/wa-support
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/wa-support-entrypoint
USER wa
WORKDIR /home/wa
EXPOSE 8080
# Liveness: GET /health answers while the process runs, even when Postgres is down
# (readiness, GET /api/health, is for the load balancer). No curl in the slim image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=2)"]
# SIGTERM starts the graceful drain (webhooks 503, messages in hand finish); give the
# container at least SHUTDOWN_DRAIN_SECONDS + 10 s to stop (`docker stop -t 40`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["wa-support-entrypoint"]
CMD ["serve"]
