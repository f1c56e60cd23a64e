# Sourced by scripts/demo and scripts/test: make the machine able to run cloudctl.
# Installs what is missing, nothing more: Debian packages with apt-get, the project in .venv.

# Debian packages the test suite runs for real. Later capabilities add theirs here (prometheus, nmap, chromium, ...).
DEBIAN_TEST_PACKAGES=(
  postgresql
  prometheus
  chromium fonts-wqy-microhei   # headless browser tests; a CJK font so Chinese labels render
  nmap                          # the security scans, run against loopback only
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.cloudctl-installed"   # sha256 of the pyproject.toml last installed into .venv
STARTED=$SECONDS
APT_UPDATED=

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[31m' PLAIN=$'\033[0m'; else BOLD='' RED='' PLAIN=''; fi

step() { printf '\n%s== %s%s  [%ss]\n' "$BOLD" "$*" "$PLAIN" "$((SECONDS - STARTED))"; }
fail() { printf '%sFAILED: %s%s  [%ss]\n' "$RED" "$*" "$PLAIN" "$((SECONDS - STARTED))" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "need root (or sudo) to run: $*"; fi
}

# ensure_debian_packages PKG...: install those not installed yet; apt-get update at most once, and only if needed.
ensure_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || fail "missing Debian packages ${missing[*]}, and no apt-get to install them"
  step "installing Debian packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -qq || fail "apt-get update"
    APT_UPDATED=1
  fi
  # The packages' own services (prometheus, postgresql, ...) must not start: the suite starts its own on
  # loopback, and a packaged prometheus would listen on every interface. policy-rc.d answering 101 is
  # Debian's way to say "do not start services" to invoke-rc.d; an existing one is left alone.
  local policy=/usr/sbin/policy-rc.d placed=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy" && placed=1
  fi
  local status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    </dev/null || status=$?
  [ -n "$placed" ] && as_root rm -f "$policy"
  [ "$status" -eq 0 ] || fail "apt-get install ${missing[*]}"
}

# find_python: python3.11, else python3 if it is 3.11 or newer.
find_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  fail "Python 3.11 or newer is needed: neither python3.11 nor python3 (>= 3.11) is on PATH"
}

# ensure_venv: .venv with the project installed (editable, with dev extras), reinstalled when pyproject.toml changed.
ensure_venv() {
  local python want
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    python="$(find_python)"
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      ensure_debian_packages python3-venv
    fi
    step "creating .venv with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
    "$python" -m venv --clear "$VENV" || fail "$python -m venv $VENV"
  fi
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    step "installing cloudctl and its dependencies into .venv (pyproject.toml is new or changed)"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]" </dev/null \
      || fail "pip install -e '.[dev]'"
    echo "$want" > "$STAMP"
  fi
}
