package bench

import (
	"strconv"
	"testing"
)

// BenchmarkCompareAndSet compares our write path with compare-and-set
// (concurrent requests' writes are merged; the default on every built-in
// store) against the same middleware saving with a plain Set, on the
// write-every-request workload. Issue 8's target: within 10% at 64
// clients.
//
//	go test -run '^$' -bench '^BenchmarkCompareAndSet$' -benchtime 400ms -count 8 . | tee cas.txt
//	go tool benchstat -col /lib cas.txt
func BenchmarkCompareAndSet(b *testing.B) {
	wl := &workloads[1] // write
	for _, be := range backends {
		b.Run("backend="+be, func(b *testing.B) {
			cs := []*contender{oursWith(b, be, true), oursWith(b, be, false)}
			for _, n := range clientCounts {
				b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
					for _, c := range cs {
						b.Run("lib="+c.lib, func(b *testing.B) { run(b, c, wl, n) })
					}
				})
			}
		})
	}
}
