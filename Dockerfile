# syntax=docker/dockerfile:1
# keygate: multi-stage build. The dependency layer is cached apart from the source; the runtime
# image is distroless with the binary only, running as uid 65532, read-only-root friendly.

FROM rust:1.95-bookworm AS build
# pingora (libz-ng-sys) and aws-lc-sys need cmake; everything else is in the rust image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies only: build against stub sources so this layer changes only with Cargo.*.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src bench \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > bench/token_cache.rs \
 && cargo build --profile dist --locked \
 && rm -rf src bench

# The source.
COPY src ./src
COPY bench ./bench
RUN touch src/main.rs src/lib.rs \
 && cargo build --profile dist --locked \
 && cp target/dist/keygate /keygate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /keygate /usr/local/bin/keygate
USER 65532:65532
# 8080: proxy (listen); 9090: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/keygate"]
CMD ["run", "--config", "/etc/keygate/config.yaml"]
