#!/usr/bin/env bash
# A private Docker daemon and a registry-free Node image for tsflow's container tests.
#
#   .ci/docker.sh install   apt-get install docker.io (+ busybox-static) when dockerd is missing
#   .ci/docker.sh start     start (or reuse) our dockerd; prints DOCKER_HOST=unix://… on stdout
#   .ci/docker.sh image     build tsflow-node:20 from the host's node binary (skipped when up to date)
#   .ci/docker.sh stop      stop the dockerd that `start` launched (by its pidfile)
#   .ci/docker.sh status    say whether our dockerd answers, and which image is there
#   .ci/docker.sh all       install + start + image
#
# Everything is idempotent: run it twice and the second run only checks. Logs and timings go to
# stderr, so `export "$(.ci/docker.sh start)"` sets DOCKER_HOST. No registry is reachable on CI
# machines, which is why the image is assembled from the host's own files and `docker import`ed.
#
# Environment overrides:
#   TSFLOW_DOCKER_RUN   runtime dir: socket, pidfile, exec-root, log   (default /tmp/tsflow-docker)
#   TSFLOW_DOCKER_DATA  data-root: images persist here between runs    (default /var/lib/tsflow-docker)
#   TSFLOW_NODE_IMAGE   image name                                     (default tsflow-node:20)
set -euo pipefail

RUN_DIR=${TSFLOW_DOCKER_RUN:-/tmp/tsflow-docker}
DATA_DIR=${TSFLOW_DOCKER_DATA:-/var/lib/tsflow-docker}
SOCK=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
LOGFILE=$RUN_DIR/dockerd.log
IMAGE=${TSFLOW_NODE_IMAGE:-tsflow-node:20}
HOST_URL=unix://$SOCK
LABEL=org.tsflow.node-version

log() { printf '[docker.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
# Prints how long a phase took; every phase goes through it so CI logs show where time goes.
timed() {
  local name=$1; shift
  local t0; t0=$(now)
  "$@"
  log "$name took $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }')"
}

# The Debian package puts dockerd in /usr/sbin; the CLI may also come from elsewhere on PATH.
docker_cli() { DOCKER_HOST=$HOST_URL docker "$@"; }
answers() { DOCKER_HOST=$HOST_URL timeout 10 docker info >/dev/null 2>&1; }

do_install() {
  local pkgs=()
  command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
  [ -x /bin/busybox ] || pkgs+=(busybox-static)
  if [ ${#pkgs[@]} -eq 0 ]; then log "install: dockerd and busybox already present"; return; fi
  [ "$(id -u)" = 0 ] || die "install needs root to apt-get install ${pkgs[*]}"
  log "install: apt-get install ${pkgs[*]}"
  # The package's postinst would start the system docker service; we run our own daemon instead.
  local policy=/usr/sbin/policy-rc.d created=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; created=1; fi
  # Without a prior `apt-get update` (fresh machine) the install fails with 404s; retry once after it.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
  fi
  if [ -n "$created" ]; then rm -f $policy; fi
  command -v docker >/dev/null 2>&1 || die "install: no docker CLI on PATH after installing docker.io"
}

# Whether pid runs a command line containing $2: a killed daemon may linger as a zombie (PID 1 in
# a container does not always reap), and after a reboot the pid may belong to something else.
proc_alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat")" != Z ] &&
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}
pid_alive() { proc_alive "$(cat "$PIDFILE" 2>/dev/null)" dockerd; }

# After `kill -9` of dockerd its containerd may survive, or leave a pidfile naming a zombie;
# a new dockerd then waits for that "running" containerd and gives up after 15s.
clean_stale() {
  rm -f "$PIDFILE" "$SOCK"
  local cpidfile=$RUN_DIR/exec/containerd/containerd.pid cpid i
  [ -f "$cpidfile" ] || return 0
  cpid=$(cat "$cpidfile")
  if proc_alive "$cpid" "$RUN_DIR/exec/containerd"; then
    log "start: stopping containerd $cpid left over by a dead dockerd"
    kill -TERM "$cpid" 2>/dev/null || true
    for i in $(seq 1 50); do proc_alive "$cpid" containerd || break; sleep 0.1; done
    proc_alive "$cpid" containerd && kill -KILL "$cpid" 2>/dev/null || true
  fi
  rm -f "$cpidfile"
}

do_start() {
  mkdir -p "$RUN_DIR" "$DATA_DIR"
  if answers; then
    log "start: reusing the dockerd answering on $SOCK"
  else
    command -v dockerd >/dev/null 2>&1 || timed install do_install
    if pid_alive; then
      log "start: dockerd pid $(cat "$PIDFILE") is alive but not answering yet; waiting"
    else
      clean_stale
      log "start: launching dockerd (data-root $DATA_DIR, log $LOGFILE)"
      # setsid: the daemon must outlive this script and not get the CI shell's Ctrl-C.
      setsid dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver vfs \
        --data-root "$DATA_DIR" --exec-root "$RUN_DIR/exec" --pidfile "$PIDFILE" \
        -H "$HOST_URL" >>"$LOGFILE" 2>&1 </dev/null &
    fi
    local i
    for i in $(seq 1 300); do
      answers && break
      if [ "$i" -gt 5 ] && ! pid_alive; then
        tail -n 30 "$LOGFILE" >&2 || true
        die "start: dockerd exited; see $LOGFILE"
      fi
      sleep 0.2
    done
    answers || { tail -n 30 "$LOGFILE" >&2; die "start: dockerd did not answer on $SOCK within 60s"; }
  fi
  echo "DOCKER_HOST=$HOST_URL"
}

# Copies a file into the rootfs at the same path, resolving directory symlinks (Debian's
# /lib -> usr/lib) but keeping the file name the loader asks for (libc.so.6, not libc-2.36.so).
copy_in() {
  local src=$1 root=$2 dir
  dir=$(readlink -f "$(dirname "$src")")
  mkdir -p "$root$dir"
  cp -L "$src" "$root$dir/$(basename "$src")"
}

do_image() {
  answers || do_start >/dev/null
  local node_bin version
  node_bin=$(readlink -f "$(command -v node)") || die "image: node is not on PATH"
  version=$("$node_bin" --version)
  local have
  have=$(docker_cli image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
  if [ "$have" = "$version" ]; then
    log "image: $IMAGE already holds node $version"
  else
    [ -n "$have" ] && log "image: $IMAGE holds node '$have', host has $version: rebuilding"
    local root=$RUN_DIR/rootfs
    rm -rf "$root" && mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,usr/local/bin,etc,tmp,root,proc,sys,dev}
    # Mirror the host's merged-/usr layout so both /lib/... and /usr/lib/... paths resolve.
    local d
    for d in bin lib lib64 sbin; do
      if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$root/$d"; else mkdir -p "$root/$d"; fi
    done
    chmod 1777 "$root/tmp"
    cp "$node_bin" "$root/usr/bin/node"
    ln -sf ../../bin/node "$root/usr/local/bin/node"
    # Exactly what the dynamic loader needs: the libraries ldd lists plus the loader itself.
    local lib
    while read -r lib; do copy_in "$lib" "$root"; done < <(
      ldd "$node_bin" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }'
    )
    # A static busybox gives `sh -c` and the usual tools to commands that need a shell.
    if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
      cp /bin/busybox "$root/usr/bin/busybox"
      for d in sh cat ls mkdir rm cp mv env echo sleep tar gzip gunzip wget id true false test; do
        ln -sf busybox "$root/usr/bin/$d"
      done
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$RUN_DIR/rootfs.tar" .
    log "image: rootfs $(du -sh "$RUN_DIR/rootfs.tar" | cut -f1), importing as $IMAGE"
    docker_cli import \
      -c "LABEL $LABEL=$version" \
      -c "ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/root" \
      -c 'WORKDIR /tmp' \
      -c 'CMD ["node"]' \
      "$RUN_DIR/rootfs.tar" "$IMAGE" >/dev/null
    # Also tag with the exact version so tests can pin it.
    docker_cli tag "$IMAGE" "${IMAGE%%:*}:${version#v}"
    rm -rf "$root" "$RUN_DIR/rootfs.tar"
  fi
  local out
  out=$(docker_cli run --rm --network none "$IMAGE" node -e "console.log(1+1)" 2>&1) || die "image: $IMAGE does not run node: $out"
  [ "$out" = 2 ] || die "image: expected 2 from node in $IMAGE, got: $out"
  log "image: verified, node $version runs in $IMAGE"
}

do_stop() {
  if ! pid_alive; then
    log "stop: no dockerd of ours is running (pidfile $PIDFILE)"
    rm -f "$PIDFILE"
    return
  fi
  local pid i
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid"
  # dockerd stops its containers first (up to 15s each by default), so wait generously.
  for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "stop: dockerd $pid still alive after 30s, sending KILL"; kill -KILL "$pid"; fi
  rm -f "$PIDFILE" "$SOCK"
  log "stop: dockerd $pid stopped"
}

do_status() {
  if answers; then
    log "status: dockerd answers on $SOCK (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'))"
    docker_cli image ls "${IMAGE%%:*}" >&2
    echo "DOCKER_HOST=$HOST_URL"
  else
    log "status: no dockerd answers on $SOCK"
    return 1
  fi
}

case ${1:-} in
  install) timed install do_install ;;
  start) timed start do_start ;;
  image) timed image do_image ;;
  stop) timed stop do_stop ;;
  status) do_status ;;
  all) timed install do_install; timed start do_start; timed image do_image ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
