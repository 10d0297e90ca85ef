package bench

import (
	"os"
	"strconv"
	"testing"
)

// Benchmark names are Request/backend=B/work=W/clients=N/lib=L so that
// benchstat can put the libraries side by side (-col /lib).

var backends = []string{"memory", "redis", "postgres"}

var clientCounts = []int{1, 64}

// contenders returns every contender on backend, ours first.
func contenders(b *testing.B, backend string) []*contender {
	var cs []*contender
	if o := ours(b, backend); o != nil {
		cs = append(cs, o)
	}
	switch backend {
	case "memory":
		cs = append(cs, scsMemory(b)...)
		cs = append(cs, gorillaCookie(), floorMemory())
	case "redis":
		cs = append(cs, scsRedis(b)...)
		cs = append(cs, gorillaRedis(b), floorRedis(b))
	case "postgres":
		cs = append(cs, scsPostgres(b)...)
		cs = append(cs, floorPostgres(b))
	}
	return cs
}

func BenchmarkRequest(b *testing.B) {
	for _, be := range backends {
		b.Run("backend="+be, func(b *testing.B) {
			cs := contenders(b, be)
			for i := range workloads {
				wl := &workloads[i]
				b.Run("work="+wl.name, func(b *testing.B) {
					for _, n := range clientCounts {
						b.Run("clients="+strconv.Itoa(n), func(b *testing.B) {
							for _, c := range cs {
								b.Run("lib="+c.lib, func(b *testing.B) { run(b, c, wl, n) })
							}
						})
					}
				})
			}
		})
	}
}

// BenchmarkStoredBytes reports what one realistic session (user id, email,
// two roles, CSRF token, flash) costs in each contender's store: the value
// and the key it is asked to keep (for gorilla's cookie store, the cookie).
// Its ns/op is meaningless.
func BenchmarkStoredBytes(b *testing.B) {
	for _, be := range backends {
		b.Run("backend="+be, func(b *testing.B) {
			for _, c := range contenders(b, be) {
				if c.stored == nil {
					continue
				}
				b.Run("lib="+c.lib, func(b *testing.B) {
					cl, err := newClient(c, 0)
					if err != nil {
						b.Fatal(err)
					}
					val, key := c.stored(b, cl.value)
					if be == "redis" && c.last != nil {
						// What Redis holds, in the store's own layout.
						v, k := redisValue(b, c.last)
						val, key = len(v), len(k)
					}
					for b.Loop() {
					}
					b.ReportMetric(float64(val), "value-B")
					b.ReportMetric(float64(key), "key-B")
					b.ReportMetric(float64(val+key), "stored-B")
				})
			}
		})
	}
}

// redisValue returns the value Redis holds under the last key written.
func redisValue(tb testing.TB, last *lastWrite) (val []byte, key string) {
	last.mu.Lock()
	key = last.key
	last.mu.Unlock()
	v, err := newRedisClient(tb, nil).Get(ctxBG, key).Bytes()
	if err != nil {
		tb.Fatalf("GET %s: %v", key, err)
	}
	return v, key
}

// scale reports whether the long scale runs are wanted (run.sh -scale).
func scale(b *testing.B) {
	if os.Getenv("BENCH_SCALE") != "1" {
		b.Skip("scale run: set BENCH_SCALE=1 (bash bench/run.sh -scale)")
	}
}
