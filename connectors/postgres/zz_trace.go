package postgres

import (
	"fmt"
	"os"
	"time"
)

var traceOn = os.Getenv("SLUICE_TRACE") != ""

func trace(what string, since time.Time) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "TRACE %s %v\n", what, time.Since(since).Round(100*time.Microsecond))
	}
}
