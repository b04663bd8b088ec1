# SyncHub: one image for the scheduler (the default command) and the workers.
#   docker build -t synchub:latest .
# Stage 1 builds the release binary; stage 2 is a slim runtime with the binary,
# CA certificates (TLS to databases) and curl (the health check), run as a
# non-root user.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin synchub \
    && cp target/release/synchub /usr/local/bin/synchub

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /app synchub \
    && mkdir -p /app/data /configs \
    && chown synchub:synchub /app/data
COPY --from=build /usr/local/bin/synchub /usr/local/bin/synchub
USER 10001:10001
WORKDIR /app
# The queue and locks; compose and Kubernetes set their own.
ENV REDIS_URL=redis://redis:6379 \
    SYNCHUB_LOG=info
VOLUME ["/app/data"]
EXPOSE 8001
# The scheduler's HTTP API (the default command). Workers serve no HTTP:
# docker-compose.yml gives them `synchub worker health` instead.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8001/health || exit 1
ENTRYPOINT ["synchub"]
CMD ["scheduler", "start", "--config-dir", "/configs", "--state-dir", "/app/data", \
     "--http-host", "0.0.0.0", "--http-port", "8001"]
