#!/bin/sh
# Runs once in a fresh MySQL replica container (docker-entrypoint-initdb.d): follow the primary
# from its first GTID, so the titok database and user replicate from there.
set -e
mysql -uroot -p"$MYSQL_ROOT_PASSWORD" <<SQL
RESET MASTER;
CHANGE REPLICATION SOURCE TO SOURCE_HOST='mysql', SOURCE_USER='root', SOURCE_PASSWORD='root',
  SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1;
START REPLICA;
SQL
