# Builds the titok binary; docker-compose.yml runs it in its three roles.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin titok

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl ffmpeg \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/titok /usr/local/bin/titok
EXPOSE 8080
CMD ["titok"]
