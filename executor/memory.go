package executor

// DefaultMemoryLimit is the soft limit of the Go runtime's memory that a
// Sluice process sets unless told otherwise (sluice serve --memory-limit,
// or GOMEMLIMIT): 200 MiB. What Sluice holds does not grow with a source
// transaction's size (docs/performance.md), but the garbage collector lets
// the heap grow to twice what is live before it collects: the limit makes
// it collect sooner as the heap nears it, so the process stays well under
// 256 MB during a catch-up of millions of rows. A node running many mirrors
// at once may need more (the collector then runs more often, at most half
// the CPU time); runtime/debug.SetMemoryLimit documents the behaviour.
const DefaultMemoryLimit int64 = 200 << 20
