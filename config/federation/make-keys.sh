#!/bin/sh
# Development keys for the federation example (config/federation/{sg,th}.toml).
#
# Writes, under var/federation/ (never committed):
#   keys/sg-at-th.key  the key SG's gateway presents to TH's gateway (TH knows it as SG's)
#   keys/th-at-sg.key  the key TH's gateway presents to SG's gateway (SG knows it as TH's)
#   keys/th-nsw.key    the key TH's NSW simulator presents to TH's gateway
#   sg.env, th.env     the SHA-256 digests each gateway checks, as ASW_* overrides
# Run from the repository root; needs the project's virtualenv (make run sets it up).
set -eu
ASW="${ASW:-.venv/bin/asw-gateway}"
dir=var/federation
mkdir -p "$dir/keys" "$dir/sg" "$dir/th"   # the SQLite journals do not make their folder
umask 077

new_key() { # party file -> prints the digest
    "$ASW" keys new --party "$1" --json | python3 -c '
import json, sys
k = json.load(sys.stdin)
open(sys.argv[1], "w").write(k["key"] + "\n")
print(k["sha256"])' "$2"
}

sg_at_th=$(new_key SG "$dir/keys/sg-at-th.key")
th_at_sg=$(new_key TH "$dir/keys/th-at-sg.key")
th_nsw=$(new_key TH "$dir/keys/th-nsw.key")

printf 'ASW_PARTIES__TH__API_KEY_SHA256=%s\n' "$th_at_sg" > "$dir/sg.env"
printf 'ASW_PARTIES__SG__API_KEY_SHA256=%s\nASW_PARTIES__TH__API_KEY_SHA256=%s\n' \
    "$sg_at_th" "$th_nsw" > "$dir/th.env"
echo "keys in $dir/keys; digests in $dir/sg.env and $dir/th.env"
