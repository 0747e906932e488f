# Sourced by the bench/run_*.sh scripts: release_build BUILD_DIR TARGET JOBS configures BUILD_DIR
# as a Release tree if it is not one yet (Ninja when available) and builds TARGET in it.
release_build() {
  local repo build="$1" target="$2" jobs="$3" cached_type generator=()
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cached_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)"
  if [[ "$cached_type" != "Release" ]]; then
    if [[ ! -f "$build/CMakeCache.txt" ]] && command -v ninja >/dev/null; then
      generator=(-G Ninja)
    fi
    cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build" --target "$target" -j "$jobs"
}
