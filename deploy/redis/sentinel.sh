#!/bin/sh
# A Redis Sentinel for the clustered variant (deploy/compose.cluster.yaml). Sentinel
# rewrites its configuration file, so it is written here, inside the container.
cat > /tmp/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel monitor taskcore redis 6379 2
sentinel down-after-milliseconds taskcore 5000
sentinel failover-timeout taskcore 30000
CONF
exec redis-server /tmp/sentinel.conf --sentinel
