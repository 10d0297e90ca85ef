#!/usr/bin/env bash
# Measures what the Redis server spends per call on variants of the
# compare-and-set script (cas.go) against a plain SET, for a 300-byte
# value: redis-benchmark runs each, INFO commandstats gives usec_per_call.
# The figures in bench/NOTES.md ("Why the write targets are out of
# reach") come from it. It uses the keys sessionbench:cas:* and deletes
# them.
#
#   bash bench/casscript.sh [host:port]     (default 127.0.0.1:6379)
set -euo pipefail
addr=${1:-127.0.0.1:6379}
cli() { redis-cli -h "${addr%:*}" -p "${addr##*:}" "$@"; }
key=sessionbench:cas:k
v=$(printf 'x%.0s' $(seq 300))
val="1893456000000|$v"
sha=$(printf '%s' "$v" | sha1sum | cut -d' ' -f1)
cli SET "$key" "$val" >/dev/null
load() { cli SCRIPT LOAD "$1"; }
current=$(load "local cur = redis.call('GET', KEYS[1])
if cur and not string.find(string.sub(cur, 1, 14), '^%d%d%d%d%d%d%d%d%d%d%d%d%d|\$') then cur = false end
if (not cur) or redis.sha1hex(string.sub(cur, 15)) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1")
byvalue=$(load "local cur = redis.call('GET', KEYS[1])
if (not cur) or string.byte(cur, 14) ~= 124 or string.sub(cur, 15) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1")
setget=$(load "local cur = redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3], 'GET')
if cur and string.byte(cur, 14) == 124 and string.sub(cur, 15) == ARGV[1] then return 1 end
if cur then redis.call('SET', KEYS[1], cur, 'PXAT', string.sub(cur, 1, 13)) else redis.call('DEL', KEYS[1]) end
return 0")
empty=$(load "return 1")
run() { # name, command...
	local name=$1 cmd=$2
	shift
	cli CONFIG RESETSTAT >/dev/null
	redis-benchmark -h "${addr%:*}" -p "${addr##*:}" -q -n 50000 -c 4 "$@" >/dev/null 2>&1
	printf '%-28s %s\n' "$name" "$(cli INFO commandstats | tr -d '\r' | grep "^cmdstat_$(echo "$cmd" | tr 'A-Z' 'a-z'):" | grep -o 'usec_per_call=[0-9.]*')"
}
run "cas.go's script (SHA-1)" EVALSHA "$current" 1 "$key" "$sha" "$val" 1893456000000
run "compare the value" EVALSHA "$byvalue" 1 "$key" "$v" "$val" 1893456000000
run "SET ... GET, restore" EVALSHA "$setget" 1 "$key" "$v" "$val" 1893456000000
run "empty script" EVALSHA "$empty" 0
run "plain SET" SET "$key" "$val" PXAT 1893456000000
cli DEL "$key" >/dev/null
