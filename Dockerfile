# coldchain: one image with the broker, both daemons and ccctl, built from Debian packages.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential libpaho-mqtt-dev libcivetweb-dev libcjson-dev libsqlite3-dev \
        libssl-dev libcurl4-openssl-dev libjwt-dev mosquitto-dev libmosquitto-dev \
        pkg-config libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean && make all

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        mosquitto libmosquitto1 libpaho-mqtt1.3 libcivetweb1 libcjson1 libsqlite3-0 libpq5 libssl3 libcurl4 \
        libjwt0 ca-certificates postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/build/ingestd /src/build/apid /src/build/ccctl \
     /src/build/coldchain_auth.so /app/build/
COPY broker-config /app/broker-config
COPY web /app/web
COPY tools/broker_conf.sh tools/docker-entry.sh /app/tools/
ENV COLDCHAIN_DB=/data/coldchain.db
VOLUME /data
ENTRYPOINT ["sh", "/app/tools/docker-entry.sh"]
