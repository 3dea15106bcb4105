# Shared helpers for qemu-ft's scripts. Source it; do not run it.
# shellcheck shell=bash

QEMU_FT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export QEMU_FT_ROOT

die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*" >&2; }

# java_major PATH-TO-JAVA: prints the feature release number (17, 25, ...) or nothing.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9][0-9]*\).*/\1/p' | head -n1
}

# Selects a JDK >= 22 (FFM is final since 22) and exports JAVA_HOME and PATH for it.
# Order: $JAVA_HOME if it qualifies, then every JDK under /usr/lib/jvm, newest first.
select_jdk() {
  local candidates=() home major
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  while IFS= read -r home; do candidates+=("$home"); done < <(ls -d /usr/lib/jvm/*/ 2>/dev/null | sed 's:/$::' | sort -Vr)
  for home in "${candidates[@]}"; do
    [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || continue
    major=$(java_major "$home/bin/java")
    if [ -n "$major" ] && [ "$major" -ge 22 ]; then
      export JAVA_HOME="$home" PATH="$home/bin:$PATH"
      return 0
    fi
  done
  die "no JDK 22 or newer found (looked at \$JAVA_HOME='${JAVA_HOME:-}' and /usr/lib/jvm/*).
qemu-ft needs Java >= 22 for the Foreign Function & Memory API; on these machines Temurin 25
lives in /usr/lib/jvm/temurin-25-jdk-amd64. Install a JDK >= 22 and/or set JAVA_HOME to it."
}

# Runs Maven with the selected JDK, quietly unless QEMU_FT_VERBOSE is set.
mvn_ft() {
  select_jdk
  local quiet=(-q)
  [ -n "${QEMU_FT_VERBOSE:-}" ] && quiet=()
  MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow" \
    mvn -B -Dstyle.color=never "${quiet[@]}" -f "$QEMU_FT_ROOT/pom.xml" "$@"
}

# leftovers_snapshot: what of ours exists now (QEMUs, NFS servers, controllers, qft* namespaces
# and links, qemuft* rings), one "kind name" per line. Take one before a run, then call
# leftovers_removed with it afterwards.
leftovers_snapshot() {
  {
    pgrep -f '^(/usr/bin/)?qemu-system-x86_64 ' | sed 's/^/pid /' || true
    pgrep -x ganesha.nfsd | sed 's/^/pid /' || true
    pgrep -x rpcbind | sed 's/^/pid /' || true
    pgrep -f 'org\.qemuft\.' | sed 's/^/pid /' || true
    ip netns list 2>/dev/null | awk '$1 ~ /^qft/ {print "netns " $1}'
    ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); if ($2 ~ /^qft/) print "link " $2}'
    ls /dev/shm 2>/dev/null | grep '^qemuft' | sed 's/^/shm /' || true
  } | sort -u
}

# leftovers_removed BEFORE WHO: reports and removes what appeared since the snapshot BEFORE
# (WHO names the culprit in the message); returns 1 if there was anything.
leftovers_removed() {
  local leaks kind what
  sleep 1   # let processes that are exiting on their own finish
  leaks=$(comm -13 <(echo "$1") <(leftovers_snapshot) | grep -v "^pid $$\$" || true)
  [ -z "$leaks" ] && return 0
  printf '%s: %s left these behind (removed now; a leak fails the run):\n%s\n' "$(basename "$0")" "$2" "$leaks" >&2
  while read -r kind what; do
    case "$kind" in
      pid) ps -o pid=,args= -p "$what" >&2 || true; kill -9 "$what" 2>/dev/null || true ;;
      netns) ip netns delete "$what" 2>/dev/null || true ;;
      link) ip link delete "$what" 2>/dev/null || true ;;
      shm) rm -f "/dev/shm/$what" ;;
    esac
  done <<< "$leaks"
  return 1
}
