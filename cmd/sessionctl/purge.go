package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

func init() {
	var batch *int
	var quiet *bool
	register(&command{
		name:  "purge",
		short: "delete expired Postgres rows now, with a progress line",
		summary: `Delete the expired rows of the Postgres table now, in batches, each its
own short statement, so a large purge never holds long locks. Expired
sessions are never served either way: purging frees space. A progress line
goes to stderr. Redis expires keys by itself and needs no purge.
Ctrl-C stops it; the batches already done stay done.`,
		flags: func(fs *flag.FlagSet) {
			batch = fs.Int("batch", 5000, "rows deleted per statement")
			quiet = fs.Bool("q", false, "no progress line")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			if len(args) != 0 || *batch <= 0 {
				fs.Usage()
				return exitUsage
			}
			cfg, ok := c.config()
			if !ok {
				return exitConfig
			}
			if cfg.DatabaseURL == "" {
				if cfg.RedisURL != "" {
					fmt.Fprintln(c.stdout, "nothing to purge: Redis expires sessions by itself (no DATABASE_URL configured)")
					return exitOK
				}
				c.errorf("purge needs DATABASE_URL")
				return exitConfig
			}
			po := cfg.PostgresOptions()
			table := po.Table
			po.DisableCleanup, po.CleanupBatchSize = true, *batch
			store, err := session.OpenPostgres(cfg.DatabaseURL, po)
			if err != nil {
				c.errorf("%v", err)
				return exitConfig
			}
			defer store.Close()
			p := newProgress(c, *quiet)
			start := time.Now()
			n, err := ops.PurgeExpired(c.ctx, store, p.update)
			p.done()
			if err != nil {
				c.errorf("purge of %s stopped after %d rows: %v", table, n, scrubErr(err, cfg.DatabaseURL))
				return exitFailure
			}
			fmt.Fprintf(c.stdout, "purged %d expired sessions from %s in %v\n", n, table, time.Since(start).Round(time.Millisecond))
			return exitOK
		},
	})
}

// progress draws "purging: N rows deleted (R/s)" on stderr: redrawn in
// place on a terminal, at most one line per second otherwise.
type progress struct {
	c        *cli
	off      bool
	tty      bool
	start    time.Time
	last     time.Time
	drawn    bool
	interval time.Duration
}

func newProgress(c *cli, quiet bool) *progress {
	p := &progress{c: c, off: quiet, start: time.Now(), interval: time.Second}
	if f, ok := c.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 100*time.Millisecond
		}
	}
	return p
}

func (p *progress) update(deleted int64) {
	if p.off || time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	rate := float64(deleted) / max(time.Since(p.start).Seconds(), 0.001)
	line := fmt.Sprintf("purging: %d rows deleted (%.0f/s)", deleted, rate)
	if p.tty {
		fmt.Fprintf(p.c.stderr, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.c.stderr, line)
	}
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.c.stderr, "\r\033[K")
	}
}
