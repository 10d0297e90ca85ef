// Command sessionctl is the operator's tool for the session store of an
// app built on github.com/sessionkit/session. It reads the same
// environment as the app (session.ConfigFromEnv: REDIS_URL, DATABASE_URL,
// DIRECT_URL, SESSION_SECRET, SESSION_TABLE, SESSION_REDIS_PREFIX, APP_ENV,
// …), so run it with the app's environment.
//
// Usage:
//
//	sessionctl <command> [flags] [arguments]
//
// Commands:
//
//	migrate          apply the Postgres migrations (DIRECT_URL, else DATABASE_URL)
//	stats            live sessions in each configured backend
//	purge            delete expired Postgres rows now, with a progress line
//	inspect <value>  verify a cookie value with SESSION_SECRET, show its session
//	revoke <value>   verify a cookie value, destroy its session in every backend
//	doctor           probe the backends, say which the app would choose and why
//
// Exit codes, for scripts:
//
//	0  success
//	1  failure: a backend is unreachable or an operation failed
//	2  usage: unknown command, bad flag or argument
//	3  configuration: the environment is invalid or lacks what the command needs
//	4  not found: the value does not verify, or (inspect) no live session has it
//	5  degraded (doctor): a backend is down; the app would fall back to a later one
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitConfig   = 3
	exitNotFound = 4
	exitDegraded = 5
)

// command is one subcommand. New commands register themselves in
// commands (one file each).
type command struct {
	name    string
	args    string // argument synopsis, e.g. "<cookie value>"
	short   string // one line for the command list
	summary string
	run     func(c *cli, fs *flag.FlagSet, args []string) int
	// flags declares the command's flags on fs before parsing.
	flags func(fs *flag.FlagSet)
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// cli is what every command gets: its streams and the environment.
type cli struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	lookup func(string) (string, bool)
}

var quietRedisOnce sync.Once

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	// go-redis logs its reconnection attempts itself; sessionctl reports
	// errors on its own. Its logger is a global that its background dials
	// read, so it is set once, before any client exists.
	quietRedisOnce.Do(func() { redis.SetLogger(quietRedis{}) })
	c := &cli{ctx: ctx, stdout: stdout, stderr: stderr, lookup: lookup}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if cmd := commands[args[1]]; cmd != nil {
				newFlagSet(cmd, stdout).Usage()
				return exitOK
			}
		}
		usage(stdout)
		return exitOK
	}
	cmd := commands[args[0]]
	if cmd == nil {
		fmt.Fprintf(stderr, "sessionctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	fs := newFlagSet(cmd, stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	return cmd.run(c, fs, fs.Args())
}

func newFlagSet(cmd *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sessionctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(out)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: sessionctl %s [flags] %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
		if hasFlags(fs) {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sessionctl <command> [flags] [arguments]

Manage the session store of an app built on github.com/sessionkit/session.
It reads the app's environment: REDIS_URL (or REDIS_HOST/…), DATABASE_URL,
DIRECT_URL, SESSION_SECRET, SESSION_TABLE, SESSION_REDIS_PREFIX, APP_ENV, …

commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cmd := commands[n]
		fmt.Fprintf(w, "  %-26s %s\n", strings.TrimSpace(cmd.name+" "+cmd.args), cmd.short)
	}
	fmt.Fprint(w, `
"sessionctl help <command>" describes a command and its flags.

exit codes: 0 success; 1 failure (backend unreachable, operation failed);
2 usage; 3 configuration invalid or incomplete; 4 not found (value does not
verify, or no live session); 5 degraded (doctor: the app would fall back)
`)
}

// config reads the environment as the app does. On error it reports and
// returns false; the caller exits with exitConfig.
func (c *cli) config() (session.Config, bool) {
	cfg, err := session.ConfigFromEnv(c.lookup)
	if err != nil {
		fmt.Fprintf(c.stderr, "sessionctl: configuration: %v\n", err)
		return session.Config{}, false
	}
	return cfg, true
}

func (c *cli) errorf(format string, a ...any) {
	fmt.Fprintf(c.stderr, "sessionctl: "+format+"\n", a...)
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
