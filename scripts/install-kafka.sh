#!/usr/bin/env bash
# Fetches the Apache Kafka broker (pinned in scripts/kafka/pom.xml) and its
# runtime jars from Maven Central into $RTML_KAFKA_HOME (default
# ~/.cache/rtml/kafka-<version>), for the real-broker integration tests.
# Idempotent: does nothing when the jars are there. Needs java (17+) and mvn.
set -euo pipefail
cd "$(dirname "$0")/kafka"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' pom.xml)
home=${RTML_KAFKA_HOME:-$HOME/.cache/rtml/kafka-$version}
if [ -f "$home/lib/kafka_2.13-$version.jar" ]; then
  echo "install-kafka: Kafka $version present in $home"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "install-kafka: $tool is missing (apt-get install default-jre-headless maven)" >&2; exit 1; }
done
echo "install-kafka: fetching Kafka $version and its dependencies into $home/lib ..."
mkdir -p "$home/lib"
mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$home/lib"
echo "install-kafka: $(ls "$home/lib" | wc -l) jars in $home/lib"
