package postgres

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/connectors"
)

// SetRetainChanges makes a keep copies of at most n changes of a
// transaction for a redo (see Applier.Add), so tests reach the guarded
// flushes with small transactions.
func SetRetainChanges(a *Applier, n int) { a.retain = n }

// CopyInts copies the rows 0..n-1 into a one-column int4 table with the
// COPY statement sql, through the stream the applier uses (copyRows),
// calling encoded(i) as row i is encoded: a test can hold the stream in
// the middle of the COPY. After CopyInts returns, the rows' values are
// cleared, as the applier's rollback does.
func CopyInts(ctx context.Context, conn *pgconn.PgConn, sql string, n int, encoded func(i int)) error {
	rows := make([]stagedRow, n)
	for i := range rows {
		rows[i] = stagedRow{e: &entry{vals: []connectors.Value{{Kind: connectors.Binary, Data: binary.BigEndian.AppendUint32(nil, uint32(i))}}}}
	}
	err := copyRows(ctx, conn, sql, rows, func(b []byte, r stagedRow) []byte {
		v := r.e.vals[0].Data // a row cleared while still read panics here
		encoded(int(binary.BigEndian.Uint32(v)))
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...)
	})
	for i := range rows {
		rows[i].e.vals = nil
	}
	return err
}
