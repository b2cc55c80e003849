# Shared by scripts/start and scripts/test: the build environment, and the installation of
# every tool Parley needs. Each step is skipped when its tool is already there, so running it
# again costs seconds.
#
# Pinned versions (docs/operations.md explains each pin):
#   cargo-leptos 0.3.10, built without its GitHub downloader (0.3.11 needs Rust 1.96);
#   wasm-bindgen-cli: exactly the wasm-bindgen version in Cargo.lock;
#   sass, wasm-opt (binaryen 132) and Playwright from end2end/package-lock.json.
#   Debian's binaryen must not be used: its wasm-opt 108 produces a WASM that fails at run time.

set -euo pipefail

PARLEY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PARLEY_ROOT"

# Builds live outside the clone, so a fresh clone (CI's, or a second checkout) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley/target}"
export PATH="$PARLEY_ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

CARGO_LEPTOS_VERSION="0.3.10"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  say "Installing Debian packages: $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_tools() {
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v chromium >/dev/null || missing+=(chromium chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  # Playwright needs Node.js 20 or newer (Debian 12's own package is 18).
  if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "Node.js 20 or newer is needed (found $(node --version)): install it from" \
      "https://nodejs.org or your distribution's backports, then run this again." >&2
    exit 1
  fi

  if ! command -v cargo >/dev/null; then
    echo "Rust is needed: install it from https://rustup.rs, then run this again." >&2
    exit 1
  fi
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "Adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi

  # `cargo install` gets its own temporary target directory, not Parley's.
  if ! cargo leptos --version 2>/dev/null | grep -qx "cargo-leptos $CARGO_LEPTOS_VERSION"; then
    say "Installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15-25 minutes, once)"
    env -u CARGO_TARGET_DIR cargo install --locked --features no_downloads \
      cargo-leptos --version "$CARGO_LEPTOS_VERSION"
  fi
  local wasm_bindgen
  wasm_bindgen=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p}' Cargo.lock)
  if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $wasm_bindgen"; then
    say "Installing wasm-bindgen-cli $wasm_bindgen (a few minutes, once)"
    env -u CARGO_TARGET_DIR CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
      cargo install wasm-bindgen-cli --version "$wasm_bindgen"
  fi

  if ! (cd end2end && npm ls --silent >/dev/null 2>&1); then
    say "Installing the JavaScript tools (sass, wasm-opt, Playwright)"
    (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
