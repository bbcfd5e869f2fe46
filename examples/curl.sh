#!/usr/bin/env bash
# Skein's Threads API with curl alone.
#
#   SKEIN_BASE_URL=http://127.0.0.1:8080 SKEIN_API_KEY=sk_... bash examples/curl.sh
#
# Creates a thread, adds a message, asks for a response in the thread, streams another, lists
# the messages and deletes the thread. `make run` prints a key and serves the echo model.
set -euo pipefail
BASE="${SKEIN_BASE_URL:-http://127.0.0.1:8080}"
KEY="${SKEIN_API_KEY:?set SKEIN_API_KEY (make run prints one)}"
api() { curl -sS --fail-with-body -H "X-API-Key: $KEY" -H 'Content-Type: application/json' "$@"; }

# A thread; its id is the first "id" of the answer.
thread=$(api -X POST "$BASE/v1/threads" -d '{"title": "From curl"}')
id=$(printf '%s' "$thread" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
echo "thread $id"

# A message without a model call: "content" is a string or a list of text blocks.
api -X POST "$BASE/v1/threads/$id/messages" \
  -d '{"role": "user", "content": "Remember: my name is Ada."}' >/dev/null

# A response in the thread. Inputs take "texts" (the Freddy SDK's shape) or "content".
answer=$(api -X POST "$BASE/v1/model/response" \
  -d "{\"thread_id\": \"$id\", \"inputs\": [{\"role\": \"user\", \"texts\": [{\"text\": \"What is my name?\"}]}]}")
printf 'answer: %s\n' "$(printf '%s' "$answer" | sed -n 's/.*"text":"\([^"]*\)".*/\1/p')"

# A streamed response: server-sent events, one `data:` line per event (-N: no buffering).
echo "stream:"
api -N -X POST "$BASE/v1/model/response" \
  -d "{\"thread_id\": \"$id\", \"stream\": true, \"inputs\": [{\"role\": \"user\", \"content\": \"Thanks!\"}]}" \
  | grep '^data: ' | grep -o '"event":"[a-z_.]*"' | sort | uniq -c

# The messages, oldest first.
count=$(api "$BASE/v1/threads/$id/messages?order=asc&limit=100" | grep -o '"role":"' | wc -l)
echo "$count messages"

api -X DELETE "$BASE/v1/threads/$id" -o /dev/null -w 'deleted: HTTP %{http_code}\n'
