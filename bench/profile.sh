#!/usr/bin/env bash
# Profiles ours in issue 15's cases and writes each one's top ten (by
# cumulative time within this library and by flat time overall) to
# bench/results/profiles/. From anywhere:
#
#   bash bench/profile.sh
#
# Needs the Redis and Postgres that bench/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")"
out=results/profiles
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for c in "memory read 1" "memory write 1" "redis read 64" "redis write 64" "postgres read 64" "postgres write 64"; do
	read -r be wk cl <<<"$c"
	name=$be-$wk-$cl
	bench="^BenchmarkRequest\$/^backend=$be\$/^work=$wk\$/^clients=$cl\$/^lib=ours\$"
	go test -run '^$' -bench "$bench" -benchtime 3s -cpuprofile "$tmp/$name.prof" -o "$tmp/bench.test" . >"$tmp/$name.bench"
	{
		echo "# $name, from bench/: go test -run '^\$' -bench '$bench' -benchtime 3s -cpuprofile cpu.prof ."
		echo
		grep ns/op "$tmp/$name.bench" | tr -s ' \t' ' '
		echo
		echo "## Top ten, flat: go tool pprof -top -nodecount=10"
		echo
		go tool pprof -top -nodecount=10 "$tmp/bench.test" "$tmp/$name.prof" 2>/dev/null | sed -n '/flat%/,$p'
		echo
		echo "## Top ten of this library, cumulative: go tool pprof -top -cum, lines of package session"
		echo
		go tool pprof -top -cum -nodecount=300 "$tmp/bench.test" "$tmp/$name.prof" 2>/dev/null | sed -n '/flat%/p; /sessionkit\/session\./p' | grep -v 'session/bench\.' | head -11
	} >"$out/$name.txt"
	echo "wrote $out/$name.txt" >&2
done
