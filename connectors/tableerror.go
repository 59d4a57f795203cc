package connectors

import (
	"errors"
	"fmt"
)

// TableError is an apply error that belongs to one table of the mirror,
// not to the mirror: the destination table was dropped or renamed, a value
// no longer converts to its column's type, a constraint added on the
// destination rejects a row. The flow holds that table (its changes wait
// on the source) and the other tables go on; an error that is not a
// *TableError (a lost connection, the destination down) stops the batch
// and the mirror retries it.
//
// Appliers return it (wrapped or not) from Add and Commit, after rolling
// the destination transaction back as for any error. Which errors belong
// to a table is the connector's to say (its database's error codes).
type TableError struct {
	Table TableName // the source table
	Err   error
}

// Error names the table and the cause.
func (e *TableError) Error() string { return fmt.Sprintf("table %s: %v", e.Table, e.Err) }

// Unwrap returns the cause.
func (e *TableError) Unwrap() error { return e.Err }

// AsTableError returns the *TableError in err's chain, if any.
func AsTableError(err error) (*TableError, bool) {
	var te *TableError
	if errors.As(err, &te) {
		return te, true
	}
	return nil, false
}
