package postgres

import (
	"context"
)

// BuildMemoryForTest runs withBuildMemory on d with a function that reads
// the session's maintenance_work_mem, and returns what it read.
func BuildMemoryForTest(ctx context.Context, d *Destination) (string, error) {
	var during string
	err := d.withBuildMemory(ctx, func() error {
		return d.conn.QueryRow(ctx, "SHOW maintenance_work_mem").Scan(&during)
	})
	return during, err
}

// SettingForTest reads setting name on d's connection.
func SettingForTest(ctx context.Context, d *Destination, name string) (string, error) {
	var v string
	err := d.conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}
