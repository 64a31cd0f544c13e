#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs or starts what the tests need
# (git, Mercurial, PostgreSQL, OpenLDAP, a Python venv with Buildbot and treeherder-client,
# Chromium and playwright-core for the browser test), then
# checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v hg >/dev/null 2>&1 || need_apt+=(mercurial)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The Bugzilla extension's checks: perl, and Template Toolkit to parse its templates.
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
perl -MTemplate -e1 >/dev/null 2>&1 || need_apt+=(libtemplate-perl)
# The LDAP tests run a throwaway OpenLDAP server of their own (tests/common/ldap.rs).
command -v slapd >/dev/null 2>&1 || need_apt+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need_apt+=(ldap-utils)
# Prometheus's linter checks /metrics (tests/status.rs).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): start it if it is down.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

echo "== Python venv: Buildbot master and worker, treeherder-client (scripts/python-env.sh)"
AUTOLAND_VENV="$(scripts/python-env.sh)"
export AUTOLAND_VENV

echo "== browser test dependencies (playwright-core, drives Debian's Chromium)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test (SQLite)"
cargo test 2>&1
echo "== end-to-end suites again on PostgreSQL"
AUTOLAND_TEST_DATABASE=postgres cargo test --test landing --test crash --test hg \
  --test intake --test operations --test status --test bugzilla --test browser --test ci \
  --test bugpage --test gate --test sheriff --test ldap 2>&1
