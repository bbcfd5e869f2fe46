# Skein in a container: a multi-stage build of the release binary, run as a
# non-root user. Build: docker build -t skein .
# Run (SQLite in a volume): docker run -p 8080:8080 -v skein-data:/var/lib/skein skein
# With PostgreSQL: see compose.yaml.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p skein \
    && cp target/release/skein /usr/local/bin/skein

FROM debian:bookworm-slim
# curl for the health check; ca-certificates for TLS to model providers and
# managed PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/skein --create-home --uid 10001 skein
COPY --from=build /usr/local/bin/skein /usr/local/bin/skein
USER skein
WORKDIR /var/lib/skein
ENV SKEIN_BIND=0.0.0.0:8080 \
    SKEIN_DATABASE_URL=sqlite:///var/lib/skein/skein.db
VOLUME ["/var/lib/skein"]
EXPOSE 8080
# Ready when the database answers (docs/operations.md, "Health, readiness, metrics").
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["skein"]
CMD ["serve"]
