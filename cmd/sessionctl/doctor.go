package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// probeResult is what doctor found about one candidate.
type probeResult struct {
	ops.Attempt
	// Detail is what a working backend told (schema state, latency).
	Detail string `json:"detail,omitempty"`
}

type doctorReport struct {
	Mode       session.Mode  `json:"mode"`
	Production bool          `json:"production"`
	Secret     string        `json:"secret"`
	Candidates []probeResult `json:"candidates"`
	Choice     string        `json:"choice,omitempty"` // the backend (or mode) the app would use
	Verdict    string        `json:"verdict"`
	ExitCode   int           `json:"exit_code"`
}

// outcomeUnused is doctor's own outcome for a backend after the chosen
// one: it works, and an earlier backend is preferred.
const outcomeUnused ops.Outcome = "ok, unused"

// minSecretLen is the shortest secret session.KeyFromSecret takes.
const minSecretLen = 32

func init() {
	var asJSON *bool
	register(&command{
		name:  "doctor",
		short: "probe the backends; say which the app would choose and why",
		summary: `Probe every configured backend the way the app's startup does (same order,
same rules, same SESSION_BACKEND_TIMEOUT) and say which one the app would
choose and why. Read-only: where the app would run Migrate, doctor only
reports the schema's state. Exits 0 when the first configured backend
would be used, 5 when the app would fall back to a later one, 1 when it
would not start.`,
		flags: func(fs *flag.FlagSet) {
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
			rep := doctor(c.ctx, cfg)
			if *asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				enc.Encode(rep)
			} else {
				printDoctor(c.stdout, rep)
			}
			return rep.ExitCode
		},
	})
}

func doctor(ctx context.Context, cfg session.Config) doctorReport {
	rep := doctorReport{Mode: cfg.Mode, Production: cfg.Production}
	if rep.Mode == "" {
		rep.Mode = session.ModeSelect
	}
	switch {
	case len(cfg.Secret) >= minSecretLen:
		rep.Secret = fmt.Sprintf("set (%d bytes)", len(cfg.Secret))
	case len(cfg.Secret) > 0:
		rep.Secret = fmt.Sprintf("too short (%d bytes; at least %d): the app's KeyFromSecret refuses it", len(cfg.Secret), minSecretLen)
	default:
		rep.Secret = "unset: a random key per process, so sessions do not survive a restart"
	}
	cands, err := ops.Candidates(cfg)
	if err != nil {
		rep.Verdict, rep.ExitCode = err.Error(), exitConfig
		return rep
	}
	details := make([]string, len(cands))
	// try runs the app's startup check of candidate i, read-only, with the
	// app's rules (persistence, SESSION_BACKEND_TIMEOUT).
	try := func(i int) ops.Attempt {
		return ops.Try(ctx, cfg, cands[i], probe(cfg, cands[i], &details[i])).(ops.Attempt)
	}
	results := make([]ops.Attempt, len(cands))

	if cfg.Mode == session.ModeTiered {
		// Postgres is required; Redis is a cache the app uses whenever it
		// answers.
		for i := range cands {
			results[i] = try(i)
		}
		rep.Candidates = withDetails(results, details)
		var rd, pg ops.Attempt
		for _, r := range results {
			switch r.Name {
			case "redis":
				rd = r
			case "postgres":
				pg = r
			}
		}
		switch {
		case pg.Outcome != ops.OutcomeChosen:
			rep.Verdict = fmt.Sprintf("the app would not start: tiered mode needs Postgres, and %s", describe(pg))
			rep.ExitCode = exitFailure
		case rd.Outcome != ops.OutcomeChosen:
			rep.Choice = string(session.ModeTiered)
			rep.Verdict = fmt.Sprintf("the app would start in tiered mode serving from Postgres only, because %s; it uses Redis once it answers", describe(rd))
			rep.ExitCode = exitDegraded
		default:
			rep.Choice = string(session.ModeTiered)
			rep.Verdict = "the app would use Redis as a cache in front of Postgres (tiered mode)"
		}
		return markMemory(rep)
	}

	// select and failover: the first candidate that works serves. The
	// persistent candidates after it are probed too, for the operator (in
	// failover mode they are the standbys).
	chosen := -1
	for i, c := range cands {
		switch {
		case chosen < 0:
			results[i] = try(i)
			if results[i].Outcome == ops.OutcomeChosen {
				chosen = i
			}
		case c.Persistent:
			results[i] = try(i)
			if results[i].Outcome == ops.OutcomeChosen {
				results[i].Outcome = outcomeUnused
			}
		default:
			results[i] = ops.Attempt{Name: c.Name, Addr: c.Addr, Outcome: ops.OutcomeNotTried}
		}
		if err := ctx.Err(); err != nil {
			rep.Verdict, rep.ExitCode = "session: selecting a store: "+err.Error(), exitFailure
			return rep
		}
	}
	rep.Candidates = withDetails(results, details)
	if chosen < 0 {
		parts := make([]string, len(results))
		for i, r := range results {
			parts[i] = r.String()
		}
		rep.Verdict = "the app would not start: no session store: " + strings.Join(parts, "; ")
		rep.ExitCode = exitFailure
		return rep
	}
	c := cands[chosen]
	rep.Choice = c.Name
	what := fmt.Sprintf("the app would choose %s", name(c.Name, c.Addr))
	if cfg.Mode == session.ModeFailover {
		what = fmt.Sprintf("the app would start in failover mode with %s active", name(c.Name, c.Addr))
	}
	var because []string
	for _, r := range results[:chosen] {
		because = append(because, describe(r))
	}
	if len(because) == 0 {
		rep.Verdict = what + ", the first configured backend"
	} else {
		rep.Verdict = what + ", because " + strings.Join(because, "; and ")
		rep.ExitCode = exitDegraded
	}
	return markMemory(rep)
}

func markMemory(rep doctorReport) doctorReport {
	if rep.Choice == "memory" {
		rep.Verdict += ". Memory sessions are lost on every restart and not shared between processes"
	}
	return rep
}

func name(n, addr string) string {
	if addr == "" {
		return n
	}
	return n + " (" + addr + ")"
}

func describe(r ops.Attempt) string {
	s := name(r.Name, r.Addr) + " " + string(r.Outcome)
	switch r.Outcome {
	case ops.OutcomeFailed:
		s = name(r.Name, r.Addr) + " failed"
	case ops.OutcomeSkipped:
		s = name(r.Name, r.Addr) + " was skipped"
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

func withDetails(rs []ops.Attempt, details []string) []probeResult {
	out := make([]probeResult, len(rs))
	for i, r := range rs {
		out[i] = probeResult{Attempt: r}
		if i < len(details) && (r.Outcome == ops.OutcomeChosen || r.Outcome == outcomeUnused) {
			out[i].Detail = details[i]
		}
	}
	return out
}

// probe returns a read-only check of candidate c: what the app's Open
// checks, without Migrate. It writes what it learnt into detail.
func probe(cfg session.Config, c ops.Candidate, detail *string) func(context.Context) error {
	switch c.Name {
	case "redis":
		return func(ctx context.Context) error {
			start := time.Now()
			s, err := session.OpenRedis(cfg.RedisURL, cfg.RedisOptions())
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil {
				return diagnoseTCP(scrubErr(err, cfg.RedisURL), c.Addr)
			}
			*detail = fmt.Sprintf("ping %v", time.Since(start).Round(time.Millisecond))
			return nil
		}
	case "postgres":
		return func(ctx context.Context) error {
			start := time.Now()
			po := cfg.PostgresOptions()
			po.DisableCleanup = true
			s, err := session.OpenPostgres(cfg.DatabaseURL, po)
			if err != nil {
				return err
			}
			defer s.Close()
			fail := func(err error) error {
				return scrubErr(scrubErr(err, cfg.DatabaseURL), cfg.DirectURL)
			}
			if err := s.Ping(ctx); err != nil {
				return fail(diagnoseTCP(err, c.Addr))
			}
			lat := time.Since(start).Round(time.Millisecond)
			db := querier(s.Pool())
			if cfg.DirectURL != "" {
				// The app migrates over DIRECT_URL: it must answer too.
				conn, err := pgx.Connect(ctx, cfg.DirectURL)
				if err != nil {
					return fail(fmt.Errorf("direct connection (DIRECT_URL) for Migrate: %w", err))
				}
				defer conn.Close(context.WithoutCancel(ctx))
				db = conn
			}
			state, err := schemaState(ctx, db, po.Table)
			if err != nil {
				return fail(err)
			}
			*detail = fmt.Sprintf("ping %v; %s", lat, state)
			return nil
		}
	}
	// memory: nothing to contact.
	return func(ctx context.Context) error { return ctx.Err() }
}

// diagnoseTCP adds the result of a plain TCP connection to a ping error:
// a ping that timed out says little, "connection refused" says a lot.
func diagnoseTCP(err error, addr string) error {
	if addr == "" {
		return err
	}
	conn, derr := net.DialTimeout("tcp", addr, time.Second)
	if derr != nil {
		return fmt.Errorf("%w (TCP connect to %s: %v)", err, addr, unwrapOp(derr))
	}
	conn.Close()
	return fmt.Errorf("%w (TCP connect to %s works: the server accepts connections but does not answer as expected)", err, addr)
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func querier(q queryer) queryer { return q }

// schemaState says how far the table's migrations are, read-only.
func schemaState(ctx context.Context, db queryer, table string) (string, error) {
	all, err := ops.Migrations()
	if err != nil {
		return "", err
	}
	applied, err := appliedVersions(ctx, db, table)
	if err != nil {
		return "", err
	}
	pending := 0
	for _, m := range all {
		if !applied[m.Version] {
			pending++
		}
	}
	switch {
	case len(applied) == 0:
		return fmt.Sprintf("table %s not created yet: the app creates it at startup (or run sessionctl migrate)", table), nil
	case pending > 0:
		return fmt.Sprintf("table %s: %d migration(s) pending, applied at the app's startup (or run sessionctl migrate)", table, pending), nil
	}
	return fmt.Sprintf("table %s up to date (%d migrations)", table, len(all)), nil
}

func printDoctor(w io.Writer, rep doctorReport) {
	env := "development"
	if rep.Production {
		env = "production"
	}
	fmt.Fprintf(w, "mode:    %s, %s\n", rep.Mode, env)
	fmt.Fprintf(w, "secret:  %s\n\n", rep.Secret)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tADDRESS\tRESULT\tDETAIL")
	for _, c := range rep.Candidates {
		d := c.Detail
		if c.Reason != "" {
			d = strings.TrimSpace(c.Reason + " " + d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Addr, c.Outcome, d)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nverdict: %s\n", rep.Verdict)
}
