package connectors

import "errors"

// Hinter is an error that says what the user can do about it. A connector's
// connection errors may wrap one; the executor sends its Hint as the SQL
// error's HINT.
type Hinter interface {
	error
	Hint() string
}

// HintOf returns the hint of the first Hinter in err's chain, or "".
func HintOf(err error) string {
	var h Hinter
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}
