# local/zookeeper:3.8: stands in for the official zookeeper:3.8 image on a machine that reaches no
# image registry, from Debian 12's zookeeper package (3.8). Like the official image it runs
# `zkServer.sh start-foreground /conf/zoo.cfg`, its data in /data.
#   docker build --network host --build-arg BASE_IMAGE=local/debian:bookworm \
#     -f tests/docker/standins/zookeeper.Dockerfile -t local/zookeeper:3.8 tests/docker/standins
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /conf /data /datalog
ENV ZOOCFGDIR=/conf \
    PATH=/usr/share/zookeeper/bin:$PATH
EXPOSE 2181
CMD ["zkServer.sh", "start-foreground", "/conf/zoo.cfg"]
