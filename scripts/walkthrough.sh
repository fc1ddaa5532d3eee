#!/usr/bin/env bash
# A replayable walkthrough of the TUI, keyboard only, in tmux: from an empty library, create an
# experiment from scratch (name, two roles renamed, a shared section's text, a new private
# section with a placeholder), save it, set up and run a batch on the offline dryrun backend,
# watch it finish, read its transcript in the conversation browser and export it to HTML.
#
# Each step sends its keys and then waits until the screen shows what the step should lead to
# (tmux capture-pane, polled every 20 ms); the time from the first key to that screen is printed
# per step, and as one JSON object at the end. Nothing is a fixed pause: a step that does not
# reach its screen within WALK_TIMEOUT seconds (default 60) stops the walkthrough and prints the
# screen it was on.
#
#   bash scripts/walkthrough.sh                   # 80x24, the repository's .venv (or python3)
#   WALK_SIZE=100x30 bash scripts/walkthrough.sh  # another terminal size
#   WALK_PYTHON=/path/to/python bash scripts/walkthrough.sh
#   WALK_KEEP=1 bash scripts/walkthrough.sh       # keep the data folder (its path is printed)
#
# It needs tmux (Debian: apt-get install -y tmux). The app runs on a fresh embedded database in
# a temporary folder (SIMULATOR_DATA_DIR), with no MONGODB_URI, so it never touches your data.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v tmux >/dev/null 2>&1; then
    echo "tmux is needed: on Debian or Ubuntu, apt-get install -y tmux" >&2
    exit 2
fi
PYTHON="${WALK_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
SIZE="${WALK_SIZE:-80x24}"
COLS="${SIZE%x*}"
ROWS="${SIZE#*x}"
TIMEOUT="${WALK_TIMEOUT:-60}"
WORK="$(mktemp -d -t walkthrough-XXXXXX)"
SESSION="walkthrough-$$"
STEPS_JSON=""
TOTAL_MS=0

cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    if [ "${WALK_KEEP:-0}" = 1 ]; then
        echo "data kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

screen() { tmux capture-pane -t "$SESSION" -p; }

# shows SPEC: whether the screen shows what SPEC says: texts joined by " && ", each present,
# or absent when it starts with "!" (the footer lists the focused list's keys, "⏎ Edit", so
# "!⏎ Edit && F1 Help" means the focus has left the list).
shows() {
    local spec="$1" now part
    now="$(screen)"
    while [ -n "$spec" ]; do
        part="${spec%% && *}"
        if [ "$part" = "$spec" ]; then spec=""; else spec="${spec#* && }"; fi
        if [ "${part:0:1}" = "!" ]; then
            if grep -qF -- "${part:1}" <<<"$now"; then return 1; fi
        elif ! grep -qF -- "$part" <<<"$now"; then
            return 1
        fi
    done
}

# wait_for SPEC: until the screen shows SPEC; fails after TIMEOUT seconds, printing the screen.
wait_for() {
    local spec="$1" deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
    while ! shows "$spec"; do
        if [ "$(now_ms)" -gt "$deadline" ]; then
            echo "TIMEOUT after ${TIMEOUT}s waiting for: $spec" >&2
            echo "----- the screen -----" >&2
            screen >&2
            exit 1
        fi
        sleep 0.02
    done
}

# step NAME EXPECTED KEY...: send the keys (tmux key names; "text:..." types text literally),
# then wait until the screen shows EXPECTED; print the time from the first key to that screen.
step() {
    local name="$1" expected="$2"
    shift 2
    local started
    started=$(now_ms)
    for key in "$@"; do
        case "$key" in
            text:*) tmux send-keys -t "$SESSION" -l -- "${key#text:}" ;;
            *) tmux send-keys -t "$SESSION" "$key" ;;
        esac
    done
    wait_for "$expected"
    local took=$(( $(now_ms) - started ))
    TOTAL_MS=$(( TOTAL_MS + took ))
    printf '%6d ms  %s\n' "$took" "$name"
    STEPS_JSON="${STEPS_JSON:+$STEPS_JSON, }\"$name\": $took"
}

echo "walkthrough at ${COLS}x${ROWS} in $WORK"
echo "  (time from the step's first key to the screen it leads to)"
mkdir -p "$WORK/data" "$WORK/config" "$WORK/cwd"
started=$(now_ms)
tmux new-session -d -s "$SESSION" -x "$COLS" -y "$ROWS" -c "$WORK/cwd" \
    "env -u MONGODB_URI -u DB_USER -u DB_PASSWORD -u DB_CLUSTER_URL -u MONGODB_DB \
     SIMULATOR_DATA_DIR='$WORK/data' SIMULATOR_CONFIG_DIR='$WORK/config' \
     PYTHONPATH='$ROOT' '$PYTHON' '$ROOT/main.py'; echo \"WALKTHROUGH-EXITED \$?\"; sleep 600"
wait_for "Your library is empty"
took=$(( $(now_ms) - started ))
TOTAL_MS=$(( TOTAL_MS + took ))
printf '%6d ms  %s\n' "$took" "start: the welcome offer on an empty library"
STEPS_JSON="\"start\": $took"

step "start empty (no example)" "0 experiments" n
# The editor opens in its first field, the placeholder name selected: typing replaces it.
step "new experiment: the editor" "New experiment:" n
step "type its name" "Walkthrough study" "text:Walkthrough study"
# Roles: enter edits the highlighted role's name, enter again renames and returns to the list.
# Each step waits for the focus to arrive (the footer changes) before the next keys: keys typed
# ahead of a focus change go where the focus was when they arrived.
step "roles tab, its list focused" "1. Role A && ⏎ Edit" F3
step "edit the first role's name" "!⏎ Edit && F1 Help" Enter
step "rename it, back to the list" "1. Teacher && ⏎ Edit" "text:Teacher" Enter
step "edit the second role's name" "!⏎ Edit && F1 Help" Down Enter
step "rename it, back to the list" "2. Student && ⏎ Edit" "text:Student" Enter
# Sections: enter edits the highlighted section's text, escape comes back to the list.
step "sections tab, its list focused" "Shared · Environment && ⏎ Edit" F4
step "edit the shared section's text" "!⏎ Edit && F1 Help" Enter
step "write it, back to the list" "A quiet classroom && ⏎ Edit" \
    "text:A quiet classroom with <AGENTS_NUM> people." Escape
# + adds a section like the highlighted one (shared) and edits its title; its "Seen by"
# drop-down makes it the first role's private section.
step "add a section: its title" "Shared · New section && !⏎ Edit && F1 Help" "+"
step "title it" "Shared · Guidance" "text:Guidance"
step "open its Seen by list" "one role" Tab Enter
step "make it the teacher's" "Teacher · Guidance" Down Enter
step "back to the list" "⏎ Edit" Escape
step "edit its text" "!⏎ Edit && F1 Help" Enter
step "write it, back to the list" "Explain it to the && ⏎ Edit" \
    "text:Explain it to the <STUDENT_NOUN> kindly." Escape
step "preview the teacher's prompt" "Explain it to the student kindly." F6
step "save" "Created 'Walkthrough study'" C-s
step "a list again (sections)" "⏎ Edit" F4
step "escape from the list: the library" "1 experiment" Escape
step "batch setup" "New batch of 'Walkthrough study' && 21 LLM calls" b
step "4 messages (typed over the 20)" "5 LLM calls" "text:4"
step "start: the confirmation" "Start this batch?" C-s
step "run it to the end (dryrun)" "1/1 done" y
step "back to the library" "1 experiment" Escape
step "the conversation browser, its transcript" "Teacher 1" c
step "read it: the transcript focused" "⏎ Read" Enter
step "to its end" "Summary of day 1" End
step "export it" "Export conversation #1" e
step "written" "Exported to" Enter
exported=$(find "$WORK/cwd/exports" -name 'conversation-1-*.html' 2>/dev/null | head -1)
if [ -z "$exported" ] || ! grep -q "Teacher 1" "$exported"; then
    echo "the exported transcript is missing or does not hold the conversation" >&2
    exit 1
fi
step "escape: the transcript to the list" "!⏎ Read && t Transcript" Escape
step "escape: the list to the library" "1 experiment" Escape
step "quit" "WALKTHROUGH-EXITED 0" C-q
echo "exported: $(basename "$exported") ($(wc -c <"$exported") bytes)"
printf '%6d ms  total\n' "$TOTAL_MS"
LOAD="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ',' || true)"
echo "load average (1, 5, 15 min): ${LOAD:-unknown} on $(nproc 2>/dev/null || echo '?') cores"
echo "{\"size\": \"${COLS}x${ROWS}\", \"total_ms\": $TOTAL_MS, \"load_average\": [${LOAD}], \"steps_ms\": {$STEPS_JSON}}"
