package replication

import (
	"fmt"
	"runtime/debug"
)

// A bug that panics in one mirror's flow must not take the node down with
// every other mirror and session (docs/architecture.md): the flow's own
// goroutines (its step, the stream reader that decodes what the source
// sends, the load workers) turn a panic into a PanicError, which fails
// the step like any error: the mirror shows it, the log has the stack,
// and the step is retried with backoff while the other mirrors go on.
// Goroutines a library starts on its own cannot be covered this way;
// the code that feeds them must be safe (see the Postgres connector's
// copy stream).

// PanicError is a panic of a flow's goroutine, recovered.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack.
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error (a bug in Sluice: please report it with the node's log, which has its stack): %v", e.Value)
}

// protect runs fn, returning its error, or a *PanicError if it panics.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}
