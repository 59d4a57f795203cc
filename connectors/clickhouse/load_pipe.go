package clickhouse

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// loadPipe hands the batches a PartitionReader reads, on the reader's
// goroutine, to a goroutine of its own that writes them with a loadWriter:
// decoding the next batch overlaps converting and sending the last. At
// most two batches are held: the one being written and the next. The
// writer is the pipe's from start to stop.
type loadPipe struct {
	ctx    context.Context
	work   chan [][]connectors.Value
	free   chan [][]connectors.Value // the two batch slices, reused
	failed chan struct{}             // closed when writing failed (err is set)
	done   chan struct{}             // closed when the goroutine returned
	err    error
}

// startLoadPipe starts the goroutine that writes with w on conn. The caller
// stops it (stop) once the read ends.
func startLoadPipe(ctx context.Context, conn driver.Conn, w *loadWriter) *loadPipe {
	p := &loadPipe{ctx: ctx, work: make(chan [][]connectors.Value), free: make(chan [][]connectors.Value, 2),
		failed: make(chan struct{}), done: make(chan struct{})}
	p.free <- nil
	p.free <- nil
	go p.run(conn, w)
	return p
}

// put is the reader's fn (PartitionReader.Read): it copies the batch's
// rows (the reader may reuse the slice, not the rows) and hands them over,
// waiting while the writer is busy with the batch before. It returns the
// writer's error once it failed.
func (p *loadPipe) put(rows [][]connectors.Value) error {
	var buf [][]connectors.Value
	select {
	case buf = <-p.free:
	case <-p.failed:
		return p.err
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	buf = append(buf[:0], rows...)
	select {
	case p.work <- buf:
		return nil
	case <-p.failed:
		return p.err
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// run writes the batches put hands over until stop, ending the open insert
// when no batch came for the writer's idle limit (loadIdle).
func (p *loadPipe) run(conn driver.Conn, w *loadWriter) {
	defer close(p.done)
	idle := time.NewTimer(w.limits.idle)
	defer idle.Stop()
	var n int64
	for {
		select {
		case rows, ok := <-p.work:
			if !ok {
				return
			}
			err := w.add(p.ctx, conn, rows, n)
			n += int64(len(rows))
			clear(rows) // hold no rows while waiting
			p.free <- rows[:0]
			if err != nil {
				p.fail(err)
				return
			}
			idle.Reset(w.limits.idle)
		case <-idle.C:
			if err := w.finish(); err != nil {
				p.fail(err)
				return
			}
		}
	}
}

func (p *loadPipe) fail(err error) {
	p.err = err
	close(p.failed)
}

// stop waits for the goroutine to write what it was handed and returns
// its error. Call it once, after the read returned (put is not called
// after).
func (p *loadPipe) stop() error {
	close(p.work)
	<-p.done
	return p.err
}
