package session

import "testing"

// TestPartitionedSchemaVersion: the partitioned table is created from
// partitionedSchema, not from the migration files, and recorded as having
// applied the migrations up to partitionedSchemaVersion. A new migration
// must be made to work on a partitioned table (and partitionedSchema and
// the version brought up to date) before this passes again.
func TestPartitionedSchemaVersion(t *testing.T) {
	ms, err := loadMigrations("")
	if err != nil {
		t.Fatal(err)
	}
	if last := ms[len(ms)-1].Version; last != partitionedSchemaVersion {
		t.Fatalf("newest migration %04d, partitionedSchema covers up to %04d: see partition.go", last, partitionedSchemaVersion)
	}
}
