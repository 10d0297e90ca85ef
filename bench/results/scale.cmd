BENCH_SCALE=1 go test -run '^$' -bench '^BenchmarkScale' -benchtime 1x -count 2 -timeout 60m .
