# syntax=docker/dockerfile:1
# keygate: multi-stage build. The dependency layer is cached apart from the source; the runtime
# image is distroless with the binary only, running as uid 65532, read-only-root friendly.

FROM rust:1.95-bookworm AS build
# No cmake needed: shims/libz-ng-sys replaces zlib-ng (see Cargo.toml), aws-lc-sys builds with cc.
WORKDIR /src

# Dependencies only: build against stub sources so this layer changes only with Cargo.*.
COPY Cargo.toml Cargo.lock ./
COPY shims ./shims
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
