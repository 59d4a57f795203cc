package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// A peer pointed at ClickHouse's HTTP port (8123) instead of the native one
// would wait for an answer to the native handshake that never comes (the
// HTTP server waits for the rest of a request). So when a connection has not
// been made after probeAfter, Sluice asks the port, over a separate
// connection, for GET /ping: a server that answers in HTTP is an HTTP port,
// and the connection attempt is abandoned with ErrHTTPPort. A native server
// that is merely slow closes the probe and the attempt goes on.

// ErrHTTPPort is wrapped by the error of a connection to a port that
// answers in HTTP. It is a connectors.Hinter: its hint is HTTPPortHint.
var ErrHTTPPort error = httpPortError{}

type httpPortError struct{}

func (httpPortError) Error() string {
	return "the port answers in HTTP: this looks like ClickHouse's HTTP port, " +
		"and Sluice needs the native protocol port (tcp_port, default 9000)"
}

func (httpPortError) Hint() string { return HTTPPortHint }

var _ connectors.Hinter = httpPortError{}

// HTTPPortHint is the hint of ErrHTTPPort.
const HTTPPortHint = "Sluice speaks ClickHouse's native protocol: set the peer's port to the server's tcp_port " +
	"(default 9000, or 9440 for TLS), not its http_port (default 8123)."

// probeAfter is how long a connection attempt runs before the port is
// probed; probeTimeout bounds the probe.
const (
	probeAfter   = time.Second
	probeTimeout = time.Second
)

// openProbed runs open (a connection attempt to addr) and, when it has not
// finished after probeAfter, probes addr for HTTP. A connection the
// abandoned attempt makes later is closed.
func openProbed(ctx context.Context, addr string, open func(context.Context) (driver.Conn, error)) (driver.Conn, error) {
	actx, cancel := context.WithCancel(ctx)
	type result struct {
		conn driver.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := open(actx)
		done <- result{conn, err}
	}()
	timer := time.NewTimer(probeAfter)
	defer timer.Stop()
	select {
	case r := <-done:
		cancel()
		return r.conn, r.err
	case <-timer.C:
	}
	if speaksHTTP(ctx, addr) {
		cancel()
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("connect to %s: %w", addr, ErrHTTPPort)
	}
	r := <-done
	cancel()
	return r.conn, r.err
}

// speaksHTTP reports whether the server at addr answers GET /ping in HTTP
// within probeTimeout.
func speaksHTTP(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: probeTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := conn.Write([]byte("GET /ping HTTP/1.0\r\n\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 5)
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	return bytes.Equal(buf[:n], []byte("HTTP/"))
}
