package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// TestOwnedShadow checks the record of temporary tables: a shadow gets a
// free name (never a taken or reserved one), is recorded by OID, is
// swapped in, dropped or found again only while its name still has that
// OID, and a table of the same name that Sluice did not create is never
// touched.
func TestOwnedShadow(t *testing.T) {
	ctx := testCtx(t)
	conn := connect(t, dstCluster.NewDB(t))
	if err := postgres.EnsureMetadata(ctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, v text);
		INSERT INTO users VALUES (1, 'live');
		CREATE TABLE users_resync (keep_me text); INSERT INTO users_resync VALUES ('mine');
		CREATE TYPE users_resync_1 AS (a int)`)
	live := connectors.TableName{Schema: "public", Name: "users"}
	// users_resync_2 is reserved: a mirrored table missing on the destination.
	reserved := []connectors.TableName{{Schema: "public", Name: "users_resync_2"}}

	o, err := postgres.CreateOwnedShadow(ctx, conn, "", "m", live, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if o.Name.Name != "users_resync_3" || o.Live != live || o.OID == 0 {
		t.Fatalf("shadow %+v, want users_resync_3 (users_resync taken by a table, _1 by a type, _2 reserved)", o)
	}
	keep := func(when string) {
		t.Helper()
		if got := scalar[string](t, conn, "SELECT keep_me FROM users_resync"); got != "mine" {
			t.Fatalf("%s: users_resync has %q", when, got)
		}
	}
	// A second attempt drops the first shadow (Sluice's) and makes another.
	o2, err := postgres.CreateOwnedShadow(ctx, conn, "", "m", live, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if o2.Name != o.Name || o2.OID == o.OID {
		t.Fatalf("second shadow %+v, first %+v: want the same free name, a new table", o2, o)
	}
	keep("after a second CreateOwnedShadow")

	// The user replaces Sluice's shadow with a table of their own: it is
	// not Sluice's any more, whatever its name.
	mustExec(t, conn, "DROP TABLE users_resync_3; CREATE TABLE users_resync_3 (keep_me text); INSERT INTO users_resync_3 VALUES ('mine too')")
	if _, has, err := postgres.OwnedShadow(ctx, conn, "", "m", live); err != nil || has {
		t.Fatalf("OwnedShadow after the user's replacement: %v, %v; want none", has, err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := postgres.SwapOwned(ctx, tx, o2)
		return err
	})
	if !errors.Is(err, postgres.ErrNoShadow) {
		t.Fatalf("SwapOwned onto the user's table: %v, want ErrNoShadow", err)
	}
	if err := postgres.DropOwned(ctx, conn, "", "m", live); err != nil {
		t.Fatal(err)
	}
	if got := scalar[string](t, conn, "SELECT keep_me FROM users_resync_3"); got != "mine too" {
		t.Fatalf("the user's users_resync_3 has %q after DropOwned", got)
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM _sluice.owned_tables"); n != 0 {
		t.Fatalf("%d records left after DropOwned", n)
	}

	// A recorded shadow is swapped in and dropped; DropAllOwned cleans up
	// what is recorded only.
	o3, err := postgres.CreateOwnedShadow(ctx, conn, "", "m", live, reserved)
	if err != nil {
		t.Fatal(err)
	}
	if o3.Name.Name != "users_resync_4" {
		t.Fatalf("third shadow %s, want users_resync_4", o3.Name)
	}
	mustExec(t, conn, "INSERT INTO users_resync_4 VALUES (2, 'new')")
	if err := postgres.BuildShadowIndexes(ctx, conn, live, o3.Name); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := postgres.SwapOwned(ctx, tx, o3); err != nil {
			return err
		}
		return postgres.ForgetOwned(ctx, tx, "", "m", live)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strs(t, conn, "SELECT v FROM users"), ","); got != "new" {
		t.Fatalf("users after the swap: %q", got)
	}
	other := connectors.TableName{Schema: "public", Name: "acct"}
	mustExec(t, conn, "CREATE TABLE acct (id int PRIMARY KEY)")
	if _, err := postgres.CreateOwnedShadow(ctx, conn, "", "m", other, nil); err != nil {
		t.Fatal(err)
	}
	if err := postgres.DropAllOwned(ctx, conn, "", "m"); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM pg_tables WHERE tablename = 'acct_resync'"); n != 0 {
		t.Fatalf("DropAllOwned left acct_resync")
	}
	keep("at the end")

	// Every candidate taken or reserved: refused before anything is made.
	var all []connectors.TableName
	for k := 1; k < 100; k++ {
		all = append(all, connectors.TableName{Schema: "public", Name: fmt.Sprintf("users_resync_%d", k)})
	}
	if _, err := postgres.CreateOwnedShadow(ctx, conn, "", "m", live, all); !errors.Is(err, postgres.ErrNoFreeName) {
		t.Fatalf("CreateOwnedShadow with every name taken: %v, want ErrNoFreeName", err)
	}
	if n := scalar[int64](t, conn, "SELECT count(*) FROM _sluice.owned_tables"); n != 0 {
		t.Fatalf("%d records after a refused CreateOwnedShadow", n)
	}
}
