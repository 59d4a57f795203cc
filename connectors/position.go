package connectors

// Position is a point in a source's change history, as the source encodes
// it: an LSN for Postgres, a GTID set or a binlog file and offset for
// MySQL. Flows compare, store and hand positions back; they never parse
// them. A source encodes its positions so that they order bytewise: p < q
// (string comparison) means p is earlier. Postgres writes an LSN as 16
// upper-case hexadecimal digits. The zero Position, "", is before every
// other and means "none".
type Position string

// Before reports whether p is earlier than q.
func (p Position) Before(q Position) bool { return p < q }

// MaxPosition returns the later of a and b.
func MaxPosition(a, b Position) Position { return max(a, b) }

// MinPosition returns the earlier of a and b.
func MinPosition(a, b Position) Position { return min(a, b) }
