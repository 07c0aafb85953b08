#!/usr/bin/env bash
# Entrypoint of the drift-detector-spark image.
#
# Spark's Kubernetes scheduler starts every executor pod with the single argument `executor` and
# describes the executor in environment variables (set by BasicExecutorFeatureStep of
# spark-kubernetes 4.3.0): this script turns those into a JVM running
# org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend, with pyspark's jars (the wheel
# carries Spark, spark-kubernetes and the fabric8 client) on the classpath. A cluster-mode driver (what
# the Spark operator starts: `driver --properties-file ... --class ... <file> <args>`, its pod IP in
# SPARK_DRIVER_BIND_ADDRESS) runs spark-submit in client mode inside its pod. Anything else runs the
# drift detector: `python -m drift_detector "$@"`.
set -euo pipefail

# The directory holding Spark's jars: SPARK_HOME when set, else the installed pyspark package.
spark_home() {
  if [[ -n "${SPARK_HOME:-}" ]]; then
    printf '%s\n' "$SPARK_HOME"
    return
  fi
  python -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("pyspark").origin))'
}

# The JVM of the image: JAVA_HOME's when set, else the first java on PATH.
java_binary() {
  if [[ -n "${JAVA_HOME:-}" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java
  fi
}

require() {
  local name
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then
      echo "spark-entrypoint: $name is not set (Spark's Kubernetes backend sets it on its pods)" >&2
      exit 64
    fi
  done
}

# The driver passes the executor's JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... (one option
# per variable, values may hold spaces), in index order.
java_options() {
  local index=0 name
  while name="SPARK_JAVA_OPT_$index" && [[ -n "${!name+set}" ]]; do
    JAVA_OPTIONS+=("${!name}")
    index=$((index + 1))
  done
}

run_executor() {
  require SPARK_DRIVER_URL SPARK_EXECUTOR_ID SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY \
    SPARK_APPLICATION_ID SPARK_EXECUTOR_POD_IP
  local home classpath
  home="$(spark_home)"
  # SPARK_CONF_DIR (the driver's mounted settings, log4j's too) first, then spark.executor.extraClassPath.
  classpath="${SPARK_CONF_DIR:+$SPARK_CONF_DIR:}$home/jars/*${SPARK_CLASSPATH:+:$SPARK_CLASSPATH}"
  if [[ -n "${SPARK_EXECUTOR_LIBRARY_PATH:-}" ]]; then
    export LD_LIBRARY_PATH="$SPARK_EXECUTOR_LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  JAVA_OPTIONS=()
  java_options
  exec "$(java_binary)" "${JAVA_OPTIONS[@]}" \
    -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
    -cp "$classpath" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "$SPARK_DRIVER_URL" \
    --executor-id "$SPARK_EXECUTOR_ID" \
    --cores "$SPARK_EXECUTOR_CORES" \
    --app-id "$SPARK_APPLICATION_ID" \
    --hostname "$SPARK_EXECUTOR_POD_IP" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
    --podName "${SPARK_EXECUTOR_POD_NAME:-${HOSTNAME:-}}"
}

# The driver pod of cluster mode: spark-submit (pyspark's, on PATH) finishes the submission in client
# mode here, bound to the pod's IP.
run_driver() {
  require SPARK_DRIVER_BIND_ADDRESS
  exec spark-submit --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" --deploy-mode client "$@"
}

case "${1:-}" in
  executor)
    shift
    run_executor
    ;;
  driver)
    shift
    run_driver "$@"
    ;;
esac
exec python -m drift_detector "$@"
