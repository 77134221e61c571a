#!/usr/bin/env bash
# Kotlin binding: the UniFFI-generated Kotlin plus JNA, compiled and tested by Maven
# (kotlin-maven-plugin, JUnit 5) against $TARGET/release/libshivya.so; Maven builds into
# $TARGET/kotlin.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need java default-jdk-headless
need mvn maven
cargo build -q --release -p shivya-ffi
say "mvn test (bindings/kotlin)"
mvn -q -B -f bindings/kotlin/pom.xml -Dshivya.target.dir="$TARGET" test
grep -h "Tests run" "$TARGET"/kotlin/surefire-reports/*.txt
