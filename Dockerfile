# syntax=docker/dockerfile:1
# The MORE server image: the release more-server, the bundled models and the built site (optimised wasm).
#
#   docker build -t more-server .
#   docker run --rm -p 8080:8080 more-server                 # then open http://localhost:8080/
#   docker run --rm -p 8080:8080 more-server --workers 4 --memory-budget-mb 512
#   docker run --rm -p 8080:8080 -v more-jobs:/var/lib/more/jobs more-server   # jobs survive a restart
#
# Flags after the image name are added to the server's (docs/deploy.md); the server prints its memory
# bound at start. It runs as an unprivileged user and stops gracefully on SIGTERM (finishing open requests).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown \
 && (cargo install wasm-bindgen-cli --version 0.2.130 --locked || cargo install wasm-bindgen-cli --version 0.2.130)
WORKDIR /src
COPY tools/package.json tools/package-lock.json tools/
RUN cd tools && npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN scripts/build-web.sh \
 && cargo build --release --locked -p more-server --bin more-server \
 && mkdir -p /out/srv \
 && cp target/release/more-server /out/ \
 && cp -r index.html web models /out/srv/

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /srv/more --shell /usr/sbin/nologin more \
 && mkdir -p /var/lib/more/jobs && chown -R 10001:10001 /var/lib/more
COPY --from=build /out/more-server /usr/local/bin/more-server
COPY --from=build /out/srv /srv/more
WORKDIR /srv/more
# Training jobs (uploads, records, trained models) are the server's only files: the one writable place,
# owned by the server's user. Mount a volume here to keep jobs across restarts of the container.
VOLUME /var/lib/more/jobs
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# GET /api/v1/health over bash's /dev/tcp (the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /api/v1/health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["more-server", "--addr", "0.0.0.0:8080", "--models", "/srv/more/models", "--web", "/srv/more", \
            "--jobs-dir", "/var/lib/more/jobs", "--log-json"]
