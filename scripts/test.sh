#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a dev box:
#   1. makes sure PostgreSQL, MariaDB, Redis and ClickHouse answer on loopback (and python3-venv is there), installing
#      them from Debian packages and starting them when they are absent;
#   2. runs every test of the workspace (cargo nextest when installed, else cargo test),
#      the CLI built with the test-only fault-injection feature.
# Extra arguments go to the test runner (e.g. scripts/test.sh -E 'test(/^tamper::/)': the
# end-to-end tests are one binary, tests/e2e, a module per area).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/synchub-target}"
# Issue 18's acceptance: a worker SIGKILLed at a random point, ten times over, nothing lost
# (about 80 s on 2 cores; set it to 1 for a quicker pass).
export SYNCHUB_TEST_KILL_REPEATS="${SYNCHUB_TEST_KILL_REPEATS:-10}"
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up on loopback" >&2
  return 1
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "installing PostgreSQL from Debian packages"
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Tests connect as postgres over TCP without a password.
  if ! grep -q "synchub-tests" "$hba"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # synchub-tests\nhost all all ::1/128 trust # synchub-tests' "$hba"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
  if ! psql -h 127.0.0.1 -U postgres -Atc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
  fi
}

ensure_mariadb() {
  if mysqladmin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then return 0; fi
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing MariaDB from Debian packages"
    apt_install mariadb-server mariadb-client
  fi
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
  wait_for MariaDB mysqladmin -u root ping
  # root over TCP with an empty password, as the tests expect.
  $SUDO mysql -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test; FLUSH PRIVILEGES;" || true
  wait_for "MariaDB (TCP)" mysqladmin -h 127.0.0.1 -P 3306 -u root ping
}

# The Delta tests read tables back with an independent reader (Python deltalake + DuckDB,
# pinned in tests/e2e/delta_reader-requirements.txt) in a virtualenv the test makes.
ensure_python_venv() {
  if python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then return 0; fi
  echo "installing python3-venv from Debian packages"
  apt_install python3 python3-venv
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
  if ! command -v redis-server >/dev/null; then
    echo "installing Redis from Debian packages"
    apt_install redis-server
  fi
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/synchub-tests.log
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
}

# ClickHouse (Debian's 18.16) with a config of its own: loopback only, HTTP on 8123 (the
# connector's port), native protocol on 9000, data under /var/lib/synchub-clickhouse.
ensure_clickhouse() {
  if curl -fsS http://127.0.0.1:8123/ping 2>/dev/null | grep -q Ok; then return 0; fi
  if [ ! -x /usr/sbin/clickhouse-server ]; then
    echo "installing ClickHouse from Debian packages"
    apt_install clickhouse-server clickhouse-client
  fi
  local dir=/var/lib/synchub-clickhouse
  $SUDO mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/log"
  $SUDO tee "$dir/config.xml" >/dev/null <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>8123</http_port>
  <tcp_port>9000</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
  $SUDO tee "$dir/users.xml" >/dev/null <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
XML
  $SUDO start-stop-daemon --start --oknodo --background --chdir "$dir" \
    --exec /usr/sbin/clickhouse-server -- --config-file="$dir/config.xml"
  wait_for ClickHouse curl -fsS http://127.0.0.1:8123/ping
}

command -v pg_isready >/dev/null || apt_install postgresql-client
command -v mysqladmin >/dev/null || apt_install mariadb-client
command -v redis-cli >/dev/null || apt_install redis-tools
command -v curl >/dev/null || apt_install curl
ensure_postgres
ensure_python_venv
ensure_mariadb
ensure_redis
ensure_clickhouse

# The feature is our crates' own: dependencies build with the same features either way.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features synchub/fault-injection,synchub/delta --no-fail-fast "$@"
else
  cargo test --workspace --features synchub/fault-injection,synchub/delta --no-fail-fast "$@"
fi
