package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/exampletest"
)

// TestStatsPartitions: for a table partitioned by day, stats lists each
// partition with its bounds, estimated rows and whether cleanup may drop
// it; migrate finds such a table up to date.
func TestStatsPartitions(t *testing.T) {
	conn := exampletest.NeedPostgres(t)
	ctx := context.Background()
	table := exampletest.RandomName("pgpart_ctl_")
	t.Cleanup(func() {
		conn.Exec(ctx, "DROP TABLE IF EXISTS "+table+", "+table+"_schema_migrations")
	})
	store, err := session.OpenPostgres(exampletest.DatabaseURL(), session.PostgresOptions{Table: table, Partitioned: true, DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A finished day whose 100 rows have all expired: droppable.
	y, m, d := time.Now().UTC().Date()
	from := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -3)
	old := table + "_p" + from.Format("20060102")
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
		old, table, from.Format(time.RFC3339), from.AddDate(0, 0, 1).Format(time.RFC3339))); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+table+` (id, data, expires, bucket) SELECT 'old' || i, '{}', now() - interval '1 hour', $1 FROM generate_series(1, 100) AS i`, from); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE `+table); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": exampletest.DatabaseURL(), "SESSION_TABLE": table, "SESSION_SECRET": secret}
	stdout, stderr, code := ctl(t, env, "stats")
	today := table + "_p" + time.Now().UTC().Format("20060102")
	if code != exitOK || !strings.Contains(stdout, "postgres partitions (6):") {
		t.Fatalf("stats: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		old + "  FOR VALUES FROM ('" + from.Format("2006-01-02"),
		table + "_default",
		"DEFAULT",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stats lacks %q:\n%s", want, stdout)
		}
	}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == old:
			if !strings.Contains(line, " 100 ") || !strings.HasSuffix(line, "yes") {
				t.Errorf("the dead day's line: %q, want 100 rows, droppable", line)
			}
		case len(f) > 0 && (f[0] == today || f[0] == table+"_default"):
			if !strings.HasSuffix(line, "no") {
				t.Errorf("%q: want not droppable", line)
			}
		}
	}
	t.Logf("stats:\n%s", stdout)
	stdout, _, code = ctl(t, env, "stats", "-json")
	var got []backendStats
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil || len(got) != 1 || len(got[0].Partitions) != 6 {
		t.Fatalf("stats -json: exit %d, %v\n%s", code, err, stdout)
	}
	if p := got[0].Partitions[0]; p.Name != old || !p.Droppable || p.Rows != 100 {
		t.Errorf("first partition in JSON: %+v", p)
	}
	if p := got[0].Partitions[5]; p.Name != table+"_default" || p.Droppable || p.Bounds != "DEFAULT" {
		t.Errorf("last partition in JSON: %+v", p)
	}
	stdout, stderr, code = ctl(t, env, "migrate")
	if code != exitOK || !strings.Contains(stdout, "is up to date") {
		t.Fatalf("migrate on a partitioned table: exit %d\n%s%s", code, stdout, stderr)
	}
	// A plain table shows no partitions.
	plain := exampletest.RandomName("pgpart_ctlplain_")
	t.Cleanup(func() { conn.Exec(ctx, "DROP TABLE IF EXISTS "+plain+", "+plain+"_schema_migrations") })
	env["SESSION_TABLE"] = plain
	if _, stderr, code := ctl(t, env, "migrate"); code != exitOK {
		t.Fatal(stderr)
	}
	stdout, _, code = ctl(t, env, "stats")
	if code != exitOK || strings.Contains(stdout, "partitions") {
		t.Fatalf("stats on a plain table: exit %d\n%s", code, stdout)
	}
}
