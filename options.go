package session

import (
	"fmt"
	"time"
)

// The rule for every numeric option of this package (durations, sizes,
// counts): zero means the documented default and a negative value is
// invalid. Constructors that return an error return one naming the struct
// and the field; the few that cannot ([NewMemoryStore], health.Handler)
// panic, as time.NewTicker does for a non-positive interval, and
// health.Check reports it in its result. Where "off" is a feature it has
// a field of its own (MemoryOptions.DisableCleanup,
// PostgresOptions.DisableCleanup), never a negative number.

// checkNonNegative returns an error naming the first of fields, given as
// name, value pairs, whose value is negative.
func checkNonNegative(structName string, fields ...any) error {
	for i := 0; i+1 < len(fields); i += 2 {
		var neg bool
		switch v := fields[i+1].(type) {
		case time.Duration:
			neg = v < 0
		case int:
			neg = v < 0
		case int64:
			neg = v < 0
		default:
			panic(fmt.Sprintf("session: checkNonNegative: %T", v))
		}
		if neg {
			return fmt.Errorf("session: %s.%s is negative (%v); use 0 for the default", structName, fields[i], fields[i+1])
		}
	}
	return nil
}

// check returns an error for an invalid (negative) option.
func (o TieredOptions) check() error {
	return checkNonNegative("TieredOptions", "CacheTimeout", o.CacheTimeout, "RetryInterval", o.RetryInterval,
		"MaxPending", o.MaxPending, "TombstoneTTL", o.TombstoneTTL)
}

// check returns an error for an invalid (negative) option.
func (o FailoverOptions) check() error {
	return checkNonNegative("FailoverOptions", "CallTimeout", o.CallTimeout, "FailureThreshold", o.FailureThreshold,
		"ProbeInterval", o.ProbeInterval, "ProbeTimeout", o.ProbeTimeout, "RecoverAfter", o.RecoverAfter,
		"MaxTracked", o.MaxTracked, "Active", o.Active)
}

// check returns an error for an invalid (negative) option of any store or
// mode Open may build, before it connects to anything.
func (o OpenOptions) check() error {
	for _, check := range []func() error{o.Redis.check, o.Postgres.check, o.Memory.check, o.Tiered.check, o.Failover.check} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// check returns an error for an invalid (negative) field of a Config made
// in code rather than by ConfigFromEnv.
func (c Config) check() error {
	return checkNonNegative("Config", "Timeout", c.Timeout)
}
