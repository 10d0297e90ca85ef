package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

type backendStats struct {
	Backend  string `json:"backend"`
	Addr     string `json:"addr,omitempty"`
	Sessions *int64 `json:"sessions,omitempty"`
	Error    string `json:"error,omitempty"`
	// Partitions, for a partitioned Postgres table.
	Partitions []ops.Partition `json:"partitions,omitempty"`
}

func init() {
	var timeout *time.Duration
	var asJSON *bool
	register(&command{
		name:  "stats",
		short: "live sessions in each configured backend",
		summary: `Count the live (unexpired) sessions in each configured backend: Redis
(SCAN of SESSION_REDIS_PREFIX) and Postgres (SESSION_TABLE). For a table
partitioned by day (PostgresOptions.Partitioned), also list its
partitions: bounds, estimated rows, and whether cleanup may drop it (its
day is over and no row in it is live). Exits 1 if a backend cannot be
counted.`,
		flags: func(fs *flag.FlagSet) {
			timeout = fs.Duration("timeout", 30*time.Second, "give up after this long")
			asJSON = fs.Bool("json", false, "print JSON")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			if len(args) != 0 {
				fs.Usage()
				return exitUsage
			}
			cfg, ok := c.config()
			if !ok {
				return exitConfig
			}
			bs, ok := c.persistentBackends(cfg)
			if !ok {
				return exitConfig
			}
			defer closeAll(bs)
			ctx, cancel := context.WithTimeout(c.ctx, *timeout)
			defer cancel()
			code := exitOK
			var out []backendStats
			for _, b := range bs {
				st := backendStats{Backend: b.name, Addr: b.addr}
				n, err := b.store.(session.Counter).Count(ctx)
				if err != nil {
					st.Error = err.Error()
					code = exitFailure
				} else {
					st.Sessions = &n
				}
				if b.name == "postgres" && err == nil {
					ps, _, perr := ops.Partitions(ctx, b.store)
					if perr != nil {
						st.Error = perr.Error()
						code = exitFailure
					}
					st.Partitions = ps
				}
				out = append(out, st)
			}
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.Encode(out)
				return code
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BACKEND\tADDRESS\tLIVE SESSIONS")
			for _, s := range out {
				v := s.Error
				if s.Sessions != nil {
					v = fmt.Sprint(*s.Sessions)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Backend, s.Addr, v)
			}
			tw.Flush()
			for _, s := range out {
				if len(s.Partitions) == 0 {
					continue
				}
				fmt.Fprintf(c.stdout, "\n%s partitions (%d):\n", s.Backend, len(s.Partitions))
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PARTITION\tBOUNDS\tROWS (EST.)\tDROPPABLE")
				for _, p := range s.Partitions {
					rows := fmt.Sprint(p.Rows)
					if p.Rows < 0 {
						rows = "?"
					}
					drop := "no"
					switch {
					case p.Detached:
						drop = "yes (detached, left by a failed drop)"
					case p.Droppable:
						drop = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Bounds, rows, drop)
				}
				tw.Flush()
			}
			return code
		},
	})
}
