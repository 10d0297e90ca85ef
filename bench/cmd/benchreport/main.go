// Command benchreport reads the raw output of the bench module's
// benchmarks and writes, as Markdown, the headline ratios (ours against
// scs with IdleTimeout and against the floor) and the issue's targets,
// each marked met or missed. Medians are used throughout, as benchstat
// does.
//
//	go run ./cmd/benchreport results/requests.txt [results/scale.txt]
package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// key identifies one benchmark, without its -GOMAXPROCS suffix.
type key struct {
	bench                  string // Request, StoredBytes, ScalePostgresCleanup, ...
	backend, work, clients string
	lib                    string
	layout, live           string // the scale runs' sub-benchmarks
}

type data map[key]map[string][]float64

func read(files []string) (data, error) {
	d := data{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r := benchfmt.NewReader(f, name)
		for r.Scan() {
			res, ok := r.Result().(*benchfmt.Result)
			if !ok {
				continue
			}
			base, parts := res.Name.Parts()
			k := key{bench: string(base)}
			for _, p := range parts {
				kv, ok := bytes.CutPrefix(p, []byte("/"))
				if !ok {
					continue
				}
				name, val, _ := strings.Cut(string(kv), "=")
				switch name {
				case "backend":
					k.backend = val
				case "work":
					k.work = val
				case "clients":
					k.clients = val
				case "lib":
					k.lib = val
				case "layout":
					k.layout = val
				case "live":
					k.live = val
				}
			}
			m := d[k]
			if m == nil {
				m = map[string][]float64{}
				d[k] = m
			}
			for _, v := range res.Values {
				m[v.Unit] = append(m[v.Unit], v.Value)
			}
		}
		f.Close()
		if err := r.Err(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// get returns the median of unit for k, and whether there was any.
func (d data) get(k key, unit string) (float64, bool) {
	vs := slices.Clone(d[k][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// interval returns a distribution-free 95% confidence interval for the
// median of unit for k, as benchstat computes it (order statistics of
// the binomial): with fewer than 6 samples there is none.
func (d data) interval(k key, unit string) (lo, hi float64, ok bool) {
	vs := slices.Clone(d[k][unit])
	if unit == "sec/op" {
		for i := range vs {
			vs[i] *= 1e9
		}
	}
	n := len(vs)
	if n < 6 {
		return 0, 0, false
	}
	slices.Sort(vs)
	// The largest j with P(Binomial(n, 1/2) < j) <= 0.025: the
	// interval is [x(j), x(n+1-j)] in 1-based order statistics.
	j, cum := 0, 0.0
	for i := 0; i <= n; i++ {
		p := binom(n, i) / math.Pow(2, float64(n))
		if cum+p > 0.025 {
			break
		}
		cum += p
		j = i + 1
	}
	if j < 1 {
		j = 1
	}
	return vs[j-1], vs[n-j], true
}

func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// timeInterval is interval for a benchmark's time per op, in ns.
func (d data) timeInterval(k key) (lo, hi float64, ok bool) {
	if lo, hi, ok = d.interval(k, "ns/op"); ok {
		return lo, hi, ok
	}
	return d.interval(k, "sec/op")
}

// costRatio is ours's time over base's (how many times base's cost ours
// is), with a conservative interval from the two medians' intervals.
func costRatio(d data, ours, base key) string { return timeRatio(d, ours, base) }

// speedup is base's time over ours's (how many times faster ours is).
func speedup(d data, ours, base key) string { return timeRatio(d, base, ours) }

// timeRatio is num's median time over den's, and in brackets the range
// of that ratio over the two medians' 95% intervals.
func timeRatio(d data, num, den key) string {
	a, ok1 := ns(d, num)
	b, ok2 := ns(d, den)
	if !ok1 || !ok2 || b == 0 {
		return "—"
	}
	s := fmt.Sprintf("%.2fx", a/b)
	alo, ahi, ok3 := d.timeInterval(num)
	blo, bhi, ok4 := d.timeInterval(den)
	if ok3 && ok4 && blo > 0 && bhi > 0 {
		s += fmt.Sprintf(" [%.2f–%.2f]", alo/bhi, ahi/blo)
	}
	return s
}

func ns(d data, k key) (float64, bool) {
	if v, ok := d.get(k, "ns/op"); ok {
		return v, true
	}
	// benchfmt reports time in seconds.
	v, ok := d.get(k, "sec/op")
	return v * 1e9, ok
}

func fmtNs(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func fmtNum(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

// ratio is how many times faster a is than b (b's time over a's).
func ratio(d data, a, b key) (float64, bool) {
	na, ok1 := ns(d, a)
	nb, ok2 := ns(d, b)
	if !ok1 || !ok2 || na == 0 {
		return 0, false
	}
	return nb / na, true
}

func fmtRatio(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2fx", v)
}

var (
	backends = []string{"memory", "redis", "postgres"}
	works    = []string{"read", "write", "mixed"}
	clients  = []string{"1", "64"}
)

func req(backend, work, cl, lib string) key {
	return key{bench: "Request", backend: backend, work: work, clients: cl, lib: lib}
}

// targetRow writes one row of a targets table: three cells, then met,
// missed or not measured.
func targetRow(w io.Writer, a, b, c string, ok, known bool) {
	fmt.Fprintf(w, "| %s | %s | %s | %s |\n", a, b, c, mark(ok, known))
}

func mark(ok, known bool) string {
	switch {
	case !known:
		return "not measured"
	case ok:
		return "**met**"
	}
	return "**MISSED**"
}

func report(w io.Writer, d data) {
	fmt.Fprintln(w, "### Headline: ours against scs (IdleTimeout set) and the floor")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Throughput ratios are the other's median ns/op over ours: above 1x, ours is faster.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| backend | workload | clients | ours | scs-idle | scs-noidle | floor | ours vs scs-idle | ours vs floor | allocs ours / scs-idle | store rt/op ours (read+write) / scs-idle |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, be := range backends {
		for _, wk := range works {
			for _, cl := range clients {
				o := req(be, wk, cl, "ours")
				s := req(be, wk, cl, "scs-idle")
				sn := req(be, wk, cl, "scs-noidle")
				f := req(be, wk, cl, "floor")
				if _, ok := ns(d, s); !ok {
					continue
				}
				on, ook := ns(d, o)
				sv, _ := ns(d, s)
				snv, snok := ns(d, sn)
				fv, fok := ns(d, f)
				rs, rsok := ratio(d, o, s)
				rf, rfok := ratio(d, o, f)
				oa, oaok := d.get(o, "allocs/op")
				sa, saok := d.get(s, "allocs/op")
				ord, _ := d.get(o, "rd-rt/op")
				owr, owok := d.get(o, "wr-rt/op")
				srd, _ := d.get(s, "rd-rt/op")
				swr, swok := d.get(s, "wr-rt/op")
				rt := "—"
				if owok && swok {
					rt = fmt.Sprintf("%s+%s / %s+%s", fmtNum(ord, true), fmtNum(owr, true), fmtNum(srd, true), fmtNum(swr, true))
				} else if swok {
					rt = fmt.Sprintf("— / %s+%s", fmtNum(srd, true), fmtNum(swr, true))
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n",
					be, wk, cl, fmtNs(on, ook), fmtNs(sv, true), fmtNs(snv, snok), fmtNs(fv, fok),
					fmtRatio(rs, rsok), fmtRatio(rf, rfok), fmtNum(oa, oaok), fmtNum(sa, saok), rt)
			}
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Targets (issue 6)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | case | measured | result |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(target, cas, measured string, ok, known bool) { targetRow(w, target, cas, measured, ok, known) }
	for _, cl := range clients {
		r, ok := ratio(d, req("redis", "read", cl, "ours"), req("redis", "read", cl, "scs-idle"))
		row("Redis read-only: ≥ 1.8x scs-idle throughput", cl+" client(s)", fmtRatio(r, ok), r >= 1.8, ok)
		r, ok = ratio(d, req("redis", "read", cl, "ours"), req("redis", "read", cl, "floor"))
		row("Redis read-only: ≥ 0.9x the raw-GET floor", cl+" client(s)", fmtRatio(r, ok), r >= 0.9, ok)
	}
	for _, be := range []string{"redis", "postgres"} {
		for _, cl := range clients {
			r, ok := ratio(d, req(be, "write", cl, "ours"), req(be, "write", cl, "scs-idle"))
			row("write every request: ≥ 1.0x scs-idle", be+", "+cl+" client(s)", fmtRatio(r, ok), r >= 1.0, ok)
		}
	}
	for _, wk := range works {
		for _, cl := range clients {
			o, s := req("memory", wk, cl, "ours"), req("memory", wk, cl, "scs-idle")
			on, ok1 := ns(d, o)
			sn, ok2 := ns(d, s)
			oa, ok3 := d.get(o, "allocs/op")
			sa, ok4 := d.get(s, "allocs/op")
			known := ok1 && ok2 && ok3 && ok4
			row("memory: ns/op and allocs/op ≤ scs-idle", wk+", "+cl+" client(s)",
				fmt.Sprintf("%s vs %s; %s vs %s allocs", fmtNs(on, ok1), fmtNs(sn, ok2), fmtNum(oa, ok3), fmtNum(sa, ok4)),
				on <= sn && oa <= sa, known)
		}
	}
	for _, be := range backends {
		for _, cl := range clients {
			o := req(be, "read", cl, "ours")
			rd, ok1 := d.get(o, "rd-rt/op")
			wr, ok2 := d.get(o, "wr-rt/op")
			// Round to absorb a stray setup round trip in a long run.
			row("read-only: 1 store round trip, 0 writes", be+", "+cl+" client(s)",
				fmt.Sprintf("%s reads + %s writes", fmtNum(rd, ok1), fmtNum(wr, ok2)),
				rd > 0.99 && rd < 1.01 && wr < 0.01, ok1 && ok2)
		}
	}
	sc := key{bench: "ScalePostgresCleanup"}
	p99r, ok := d.get(sc, "p99-ratio")
	idle, _ := d.get(sc, "idle-p99-µs")
	during, _ := d.get(sc, "cleanup-p99-µs")
	secs, _ := d.get(sc, "cleanup-s")
	rows, _ := d.get(sc, "rows")
	row("cleanup of 1M rows: concurrent p99 Get < 2x idle", fmt.Sprintf("%.0f expired rows", rows),
		fmt.Sprintf("p99 %.0f µs during vs %.0f µs idle (%.2fx); cleanup took %.1f s", during, idle, p99r, secs),
		p99r < 2, ok)
	fmt.Fprintln(w)

	issue15(w, d)

	fmt.Fprintln(w, "### Bytes stored per realistic session")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "User id, email, two roles, a CSRF token and a flash message, after /login: the value and key the store is asked to keep (gorilla's cookie store keeps it all in the cookie).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| backend | lib | value B | key B | total B |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	var sb []key
	for k := range d {
		if k.bench == "StoredBytes" {
			sb = append(sb, k)
		}
	}
	slices.SortFunc(sb, func(a, b key) int {
		return strings.Compare(fmt.Sprint(slices.Index(backends, a.backend), a.lib), fmt.Sprint(slices.Index(backends, b.backend), b.lib))
	})
	for _, k := range sb {
		v, _ := d.get(k, "value-B")
		kb, _ := d.get(k, "key-B")
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.0f |\n", k.backend, k.lib, v, kb, v+kb)
	}
	fmt.Fprintln(w)

	var mem []key
	for k := range d {
		if k.bench == "ScaleRedisMemory" {
			mem = append(mem, k)
		}
	}
	lk, lok := liveBig(d)
	if len(mem) > 0 || ok || lok {
		fmt.Fprintln(w, "### Scale")
		fmt.Fprintln(w)
	}
	if ok {
		idle50, _ := d.get(sc, "idle-p50-µs")
		during50, _ := d.get(sc, "cleanup-p50-µs")
		rps, _ := d.get(sc, "rows/s")
		fmt.Fprintf(w, "Postgres, `PostgresStore.DeleteExpired` of %.0f expired rows (plus 10,000 live ones) while 8 paced loops Get live sessions (about 2,000 Gets/s in all):\n\n", rows)
		fmt.Fprintln(w, "| run | cleanup time | rows/s | Get p50 idle | Get p50 during | Get p99 idle | Get p99 during | p99 ratio |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		m := d[sc]
		for i := range m["p99-ratio"] {
			at := func(u string) float64 {
				if i < len(m[u]) {
					return m[u][i]
				}
				return 0
			}
			fmt.Fprintf(w, "| %d | %.1f s | %.0f | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %.2fx |\n", i+1,
				at("cleanup-s"), at("rows/s"), at("idle-p50-µs"), at("cleanup-p50-µs"), at("idle-p99-µs"), at("cleanup-p99-µs"), at("p99-ratio"))
		}
		fmt.Fprintf(w, "| median | %.1f s | %.0f | %.0f µs | %.0f µs | %.0f µs | %.0f µs | %.2fx |\n\n", secs, rps, idle50, during50, idle, during, p99r)
		fmt.Fprintln(w, "The target is judged on the median p99 ratio; each run's idle p99 is its own baseline.")
		fmt.Fprintln(w)
	}
	if lok {
		fmt.Fprintf(w, "Postgres, `PostgresStore.Get` on a table (our schema) of 10k and of %s live sessions, ids drawn uniformly from all rows, 8 paced loops (about 2,000 Gets/s in all), 15 s after a 3 s warm-up:\n\n", lk.live)
		fmt.Fprintln(w, "| live rows | run | Get p50 | Get p99 | Get p99.9 | Gets | blocks read into shared_buffers per Get | table + indexes | fill time | p99 vs 10k |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, k := range []key{{bench: "ScalePostgresLive", live: "10k"}, lk} {
			m := d[k]
			for i := range m["p99-µs"] {
				at := func(u string) string {
					if i >= len(m[u]) {
						return "—"
					}
					v := m[u][i]
					switch u {
					case "table-B": // reported as table-MB; benchfmt makes it bytes
						v /= 1e6
					case "fill-s", "buf-reads/get":
						return fmt.Sprintf("%.1f", v)
					}
					return fmt.Sprintf("%.0f", v)
				}
				r := "—"
				if i < len(m["p99-vs-10k"]) {
					r = fmt.Sprintf("%.2fx", m["p99-vs-10k"][i])
				}
				fmt.Fprintf(w, "| %s | %d | %s µs | %s µs | %s µs | %s | %s | %s MB | %s s | %s |\n", k.live, i+1,
					at("p50-µs"), at("p99-µs"), at("p999-µs"), at("gets"), at("buf-reads/get"), at("table-B"), at("fill-s"), r)
			}
		}
		fmt.Fprintf(w, "\nThe target is judged on the median p99-vs-10k; each run's 10k p99 (measured just before its %s run) is its own baseline.\n\n", lk.live)
	}
	if len(mem) > 0 {
		slices.SortFunc(mem, func(a, b key) int { return strings.Compare(a.lib, b.lib) })
		fmt.Fprintln(w, "Redis, 1,000,000 live sessions in each library's format, `INFO memory` used_memory delta:")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| lib | bytes per session | value B | key B |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, k := range mem {
			m, _ := d.get(k, "mem-B/session")
			v, _ := d.get(k, "value-B")
			kb, _ := d.get(k, "key-B")
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f |\n", k.lib, m, v, kb)
		}
		fmt.Fprintln(w)
	}
}

// liveBig returns the key of ScalePostgresLive's big table (10M unless
// BENCH_SCALE_LIVE made it another size), and whether it has a ratio.
func liveBig(d data) (key, bool) {
	best := key{bench: "ScalePostgresLive", live: "10M"}
	for k, m := range d {
		if k.bench == "ScalePostgresLive" && len(m["p99-vs-10k"]) > 0 {
			best = k
			if k.live == "10M" {
				break
			}
		}
	}
	_, ok := d.get(best, "p99-vs-10k")
	return best, ok
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchreport results.txt...")
		os.Exit(2)
	}
	d, err := read(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	report(os.Stdout, d)
}

// issue15 writes issue 15's targets: each ratio with the interval made
// of the two medians' 95% intervals (in brackets; "—" when a contender
// has fewer than 6 runs).
func issue15(w io.Writer, d data) {
	fmt.Fprintln(w, "### Targets (issue 15)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "A cost ratio is ours's median ns/op over the other's (below the target is good); a speed-up is the other's over ours (above the target is good). Brackets: the ratio's range over the two medians' 95% confidence intervals.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | measured | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(cas, measured, target string, ok, known bool) { targetRow(w, cas, measured, target, ok, known) }
	cost := func(be, wk, cl, lib string) (float64, bool) {
		a, ok1 := ns(d, req(be, wk, cl, "ours"))
		b, ok2 := ns(d, req(be, wk, cl, lib))
		return a / b, ok1 && ok2 && b > 0
	}
	for _, c := range []struct {
		be, cl string
		max    float64
	}{{"redis", "64", 1.10}, {"redis", "1", 1.05}, {"memory", "1", 2}, {"memory", "64", 2}} {
		r, ok := cost(c.be, "read", c.cl, "floor")
		row(fmt.Sprintf("%s read-only, %s client(s): cost vs the floor", c.be, c.cl),
			costRatio(d, req(c.be, "read", c.cl, "ours"), req(c.be, "read", c.cl, "floor")),
			fmt.Sprintf("≤ %.2fx", c.max), r <= c.max, ok)
	}
	for _, be := range backends {
		o, ok1 := d.get(req(be, "read", "1", "ours"), "allocs/op")
		f, ok2 := d.get(req(be, "read", "1", "floor"), "allocs/op")
		row(fmt.Sprintf("%s read-only: allocations per request", be),
			fmt.Sprintf("%s (floor %s)", fmtNum(o, ok1), fmtNum(f, ok2)),
			fmt.Sprintf("≤ floor + 8 = %s", fmtNum(f+8, ok2)), o <= f+8, ok1 && ok2)
	}
	for _, be := range []string{"redis", "postgres"} {
		for _, cl := range clients {
			o, s := req(be, "write", cl, "ours"), req(be, "write", cl, "scs-idle")
			r, ok := ratio(d, o, s)
			fr, fok := ratio(d, req(be, "write", cl, "floor"), s)
			ceiling := ""
			if fok {
				ceiling = fmt.Sprintf("; the floor itself: %.2fx", fr)
			}
			row(fmt.Sprintf("%s write every request, %s client(s): speed-up vs scs-idle", be, cl),
				speedup(d, o, s)+ceiling, "≥ 1.5x", r >= 1.5, ok)
		}
	}
	for _, layout := range []string{"", "rows", "partitioned"} {
		sc := key{bench: "ScalePostgresCleanup", layout: layout}
		r, ok := d.get(sc, "p99-ratio")
		if !ok {
			continue
		}
		idle, _ := d.get(sc, "idle-p99-µs")
		during, _ := d.get(sc, "cleanup-p99-µs")
		secs, _ := d.get(sc, "cleanup-s")
		name := "Postgres: 1M expired rows cleaned while 8 loops read"
		if layout != "" {
			name += " (" + layout + " table)"
		}
		row(name, fmt.Sprintf("p99 %.2fx idle (%.0f µs vs %.0f µs); cleanup %.1f s", r, during, idle, secs), "p99 ≤ 1.5x idle", r <= 1.5, true)
	}
	for k := range d {
		if k.bench != "ScalePostgresLive" || k.live == "10k" {
			continue
		}
		r, ok := d.get(k, "p99-vs-10k")
		p99, _ := d.get(k, "p99-µs")
		base, _ := d.get(key{bench: "ScalePostgresLive", live: "10k", layout: k.layout}, "p99-µs")
		row(fmt.Sprintf("Postgres: %s live sessions, read-only p99", k.live),
			fmt.Sprintf("%.2fx of 10k (%.0f µs vs %.0f µs)", r, p99, base), "≤ 1.2x of 10k", r <= 1.2, ok)
	}
	fmt.Fprintln(w)
}
