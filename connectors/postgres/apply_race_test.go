//go:build race

package postgres_test

// raceEnabled: the race detector slows Go code several times over, so
// throughput figures shrink their batches and mean little.
const raceEnabled = true
