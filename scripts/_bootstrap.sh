# Sourced by scripts/demo and scripts/test: make the machine able to run cloudctl.
# Installs what is missing, nothing more: Debian packages with apt-get, the project in .venv.

# Debian packages the test suite runs for real. Later capabilities add theirs here.
DEBIAN_TEST_PACKAGES=(postgresql)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STARTED=$SECONDS

step() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$((SECONDS - STARTED))"; }
fail() { printf '\033[31mfailed: %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "need root (or sudo) to run: $*"; fi
}

ensure_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq || fail "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]}"
}

find_python() {
  local candidate
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  fail "Python 3.11 or newer is needed (apt-get install python3)"
}

ensure_venv() {
  local python stamp want
  if [ ! -x "$VENV/bin/python" ]; then
    python="$(find_python)"
    if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
      ensure_debian_packages python3-venv
    fi
    step "creating $VENV"
    "$python" -m venv "$VENV" || fail "python -m venv"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  stamp="$VENV/.cloudctl-installed"
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    step "installing cloudctl and its dependencies into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel || fail "pip upgrade"
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" || fail "pip install -e .[dev]"
    echo "$want" > "$stamp"
  fi
}
