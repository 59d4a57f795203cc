package executor_test

import (
	"strconv"
	"testing"
)

// TestMirrorLargeTransaction: a source transaction many times the size of
// the chunks the batcher adds to the destination before its commit, with
// updates that leave a TOASTed column alone, key changes, deletes, and a
// column added in its middle (which makes the batcher start the
// destination transaction over); then many small ones.
func TestMirrorLargeTransaction(t *testing.T) {
	f := newMirrorFixture(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text, big text);
		ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
		INSERT INTO t SELECT g, 'v' || g, repeat(md5(g::text), 100) FROM generate_series(1, 2000) g`)
	mustExec(t, f.conn, `CREATE MIRROR big FROM src TO dst WITH TABLE MAPPING (t:t) WITH (max_batch_size = 2000)`)
	f.waitStatus(t, "big", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	mustExec(t, f.src, `BEGIN;
		INSERT INTO t SELECT g, 'v' || g, repeat(md5(g::text), 100) FROM generate_series(2001, 8000) g;
		UPDATE t SET v = 'u' || id WHERE id % 3 = 0;
		UPDATE t SET id = id + 100000 WHERE id % 7 = 0;
		DELETE FROM t WHERE id % 11 = 0;
		ALTER TABLE t ADD COLUMN extra int;
		UPDATE t SET extra = id WHERE id % 5 = 0;
		INSERT INTO t SELECT g, 'w' || g, NULL, g FROM generate_series(8001, 9000) g;
		UPDATE t SET v = 'x' || id WHERE id % 13 = 0;
		COMMIT`)
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	var sql string
	for i := 0; i < 300; i++ {
		sql += "UPDATE t SET extra = coalesce(extra, 0) + 1 WHERE id = " + strconv.Itoa(1+i*7%9000) + "; "
		if i%50 == 0 {
			sql += "DELETE FROM t WHERE id = " + strconv.Itoa(8001+i) + "; "
		}
	}
	mustExec(t, f.src, sql)
	waitEqual(t, f.src, f.dst, "t", "t", "id")
}
