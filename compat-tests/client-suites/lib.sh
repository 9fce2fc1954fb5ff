# Shared by the client-suite scripts (sourced, not run): the broker they test against, and their
# lists of tests not run. Callers set SLUICE_BIN and `work` (a temp dir this file removes on exit).

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_broker PORT: runs $SLUICE_BIN with $work/server.properties (log in $work/broker.log) until
# the script exits, and waits for PORT to accept connections. Fails if the broker does not start.
start_broker() {
  local port=$1
  "$SLUICE_BIN" "$work/server.properties" >"$work/broker.log" 2>&1 &
  broker=$!
  trap stop_broker EXIT
  for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not start on port $port:"
  cat "$work/broker.log"
  return 1
}

stop_broker() {
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
  rm -rf "$work"
}

# read_deselected FILE SUITE: the ids in FILE (one per line, then the reason; # comments), each
# printed as NOT RUN with its reason, into the array DESELECTED.
read_deselected() {
  DESELECTED=()
  local id reason
  while read -r id reason; do
    [[ -z $id || $id == \#* ]] && continue
    echo "$2 suite: NOT RUN: $id ($reason)"
    DESELECTED+=("$id")
  done <"$1"
}
