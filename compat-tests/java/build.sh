#!/usr/bin/env bash
# Builds the Java compat programs (compat-tests/java) into target/: target/classes plus
# target/classpath.txt (the kafka-clients jars in ~/.m2). Quick when nothing changed.
# Usage: compat-tests/java/build.sh   (needs Java 17+ and Maven)
set -euo pipefail
cd "$(dirname "$0")"
command -v mvn >/dev/null || { echo "compat-tests/java: mvn missing (apt-get install maven)" >&2; exit 1; }
mvn -B -q -DskipTests package
test -s target/classpath.txt
