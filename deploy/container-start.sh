#!/usr/bin/env bash
# The container's small supervisor: the web page and the scheduler side by side.
#
# It brings the database's schema up to date (onboarding init is safe to run again), starts
# both, forwards SIGTERM/SIGINT to both (each finishes its work in progress), and when either
# stops on its own it stops the other and exits with that one's status, so the container's
# restart policy starts a whole, healthy pair again. Logs: one JSON object per line on stderr.
set -u

: "${ONBOARDING_DB:=/data/onboarding.db}"
: "${ONBOARDING_PORT:=8000}"
: "${ONBOARDING_HOST:=0.0.0.0}"
: "${ONBOARDING_INTERVAL:=60}"
: "${ONBOARDING_SCHEDULER_MAX_AGE:=300}"
: "${ONBOARDING_LOG_FORMAT:=json}"
export ONBOARDING_DB ONBOARDING_SCHEDULER_MAX_AGE ONBOARDING_LOG_FORMAT

onboarding init --db "$ONBOARDING_DB" >&2 || exit $?

onboarding scheduler run --interval "$ONBOARDING_INTERVAL" &
scheduler=$!
onboarding serve --host "$ONBOARDING_HOST" --port "$ONBOARDING_PORT" ${ONBOARDING_SERVE_OPTIONS:-} &
web=$!

stop() {
    kill -TERM "$scheduler" "$web" 2>/dev/null
}
trap 'stop' TERM INT

# The first to end (or a signal) wakes us; then both are stopped and waited for.
wait -n "$scheduler" "$web"
status=$?
stop
wait "$scheduler"; scheduler_status=$?
wait "$web"; web_status=$?
# Stopped by a signal: exit 0 when both ended cleanly (uvicorn ends with the signal it got,
# 143 for SIGTERM, after a graceful shutdown); otherwise the status of the first to end.
clean() { [ "$1" -eq 0 ] || [ "$1" -eq 143 ] || [ "$1" -eq 130 ]; }
if [ "$status" -gt 128 ] && clean "$scheduler_status" && clean "$web_status"; then
    exit 0
fi
exit "$status"
