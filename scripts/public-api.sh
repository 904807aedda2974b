#!/usr/bin/env bash
# The public API of tower-opik (all features), one item per line: docs/public-api.txt.
#
#   scripts/public-api.sh                          # print the listing
#   scripts/public-api.sh > docs/public-api.txt    # after a change to the public API
#   scripts/public-api.sh --check                  # CI: fail, with the diff, if they differ
#
# How: rustdoc's JSON output (`cargo doc --all-features` with RUSTDOCFLAGS="-Z
# unstable-options --output-format json", which writes target/doc/tower_opik.json), read by
# scripts/public_api.py (python3, standard library only). Not `cargo public-api`: it builds
# the JSON with a nightly toolchain (the CI machine has only stable, and no toolchain can be
# fetched here), each of its releases reads only the JSON format versions of its day, and
# `cargo install` would compile it and its dependencies on every fresh CI machine, minutes
# of CI time; the Python script installs nothing and checks the JSON's `format_version`.
#
# rustdoc JSON is unstable: on stable rustc it needs RUSTC_BOOTSTRAP=1. That variable is
# given to rustdoc alone, through RUSTDOC pointing back at this script. Set for all of cargo
# it would reach build scripts too (proc-macro2, anyhow and thiserror read it), change their
# output, and so rebuild every proc macro and everything above it in the shared target dir,
# now and again at the next plain cargo command. This way the JSON reuses the dependencies
# that `cargo doc --workspace --all-features` (CI's docs step) or clippy already built, and a
# warm regeneration re-documents only the workspace's own crates (only those that changed).
set -euo pipefail

# Called by cargo as RUSTDOC: run the real rustdoc with unstable options allowed.
if [[ -n "${TOWER_OPIK_PUBLIC_API_RUSTDOC:-}" ]]; then
  RUSTC_BOOTSTRAP=1 exec "$TOWER_OPIK_PUBLIC_API_RUSTDOC" "$@"
fi

usage() { echo "usage: $0 [--check]" >&2; exit 2; }
check=false
case $# in
  0) ;;
  1) [[ $1 == --check ]] || usage; check=true ;;
  *) usage ;;
esac

self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
root="$(cd "$(dirname "$self")/.." && pwd)"
cd "$root"

# The workspace's target dir (CARGO_TARGET_DIR and .cargo/config.toml included).
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
json="$target_dir/doc/tower_opik.json"

# cargo runs RUSTDOC directly: call this script through bash if its execute bit is lost.
rustdoc_wrapper="$self"
if [[ ! -x "$self" ]]; then
  rustdoc_wrapper="$target_dir/public-api-rustdoc"
  mkdir -p "$target_dir"
  printf '#!/usr/bin/env bash\nexec bash %q "$@"\n' "$self" >"$rustdoc_wrapper.$$"
  chmod +x "$rustdoc_wrapper.$$"
  mv -f "$rustdoc_wrapper.$$" "$rustdoc_wrapper"
fi

# One run at a time: another run's rustdoc would rewrite the JSON while this one reads it.
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$target_dir"
  exec 9>"$target_dir/public-api.lock"
  flock 9
fi

# The packages and features of CI's "docs" step (`cargo doc --workspace --no-deps
# --all-features`): the same feature unification, so the same dependency builds, reused
# (`--package tower-opik` alone unifies tokio's and reqwest's features differently and
# builds a second set). RUSTDOCFLAGS is set, not added to, so that the listing does not
# depend on the caller's environment.
env -u CARGO_ENCODED_RUSTDOCFLAGS \
  RUSTDOCFLAGS="-Z unstable-options --output-format json" \
  TOWER_OPIK_PUBLIC_API_RUSTDOC="${RUSTDOC:-rustdoc}" RUSTDOC="$rustdoc_wrapper" \
  cargo doc --quiet --workspace --no-deps --all-features --lib

if ! $check; then
  exec python3 "$root/scripts/public_api.py" "$json"
fi

listing="$(mktemp)"
trap 'rm -f "$listing"' EXIT
python3 "$root/scripts/public_api.py" "$json" >"$listing"
if ! diff -u --label docs/public-api.txt --label "the code (scripts/public-api.sh)" \
  docs/public-api.txt "$listing"; then
  echo "the public API changed: review the diff, then run scripts/public-api.sh > docs/public-api.txt" >&2
  exit 1
fi
echo "docs/public-api.txt matches the public API ($(grep -vcE '^#( |$)' docs/public-api.txt) items)"
