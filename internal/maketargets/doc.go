// Package maketargets holds no code: its tests check the Makefile targets and
// scripts a newcomer runs first (make run, make test, make clickhouse), with
// the real make and the real scripts.
package maketargets
