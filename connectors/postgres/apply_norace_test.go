//go:build !race

package postgres_test

// raceEnabled: see apply_race_test.go.
const raceEnabled = false
