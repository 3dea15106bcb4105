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
