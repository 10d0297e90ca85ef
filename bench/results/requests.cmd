go test -run '^$' -bench '^(BenchmarkRequest|BenchmarkStoredBytes)$' -benchtime 250ms -count 8 -timeout 60m .
