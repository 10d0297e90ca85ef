go test -run '^$' -bench '^(BenchmarkRequest|BenchmarkStoredBytes)$' -benchtime 250ms -count 10 -timeout 60m .
