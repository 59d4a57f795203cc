package executor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// PeerDB's CREATE MIRROR ... WITH (resync = true) re-creates an existing
// mirror: the mirror is dropped and made again, loading new destination
// tables that replace the old ones when the load is done. Sluice's RESYNC
// MIRROR does exactly that (shadow tables loaded, then swapped in), so
// resync = true on an existing mirror of the same definition runs it. On a
// mirror that does not exist, resync = true creates it as usual.

// wantsResync reports whether st asks for resync (any value that is not
// false: a bad value is reported by validateMirrorOptions).
func wantsResync(st *sqlext.CreateMirror) bool {
	o, ok := st.Options.Get("resync")
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(o.Value.Text)
	return err != nil || b
}

// recreateMirror runs CREATE MIRROR ... WITH (resync = true) on the existing
// mirror m: when st defines m as it is (peers, table mappings, options), it
// starts a full resync as RESYNC MIRROR does; otherwise it refuses and
// changes nothing.
func (s *session) recreateMirror(ctx context.Context, st *sqlext.CreateMirror, m catalog.Mirror, w server.ResultWriter) error {
	opts, notices, err := validateMirrorOptions(st.Name, st.Options)
	if err != nil {
		return optionError(err, st.Options, st.NamePos)
	}
	delete(opts, "resync")
	if st.Source != m.SourcePeer || st.Destination != m.DestinationPeer {
		return differentDefinition(st, fmt.Sprintf("it replicates from %q to %q", m.SourcePeer, m.DestinationPeer))
	}
	srcPeer, err := s.mirrorSource(ctx, st.Source, st.SourcePos)
	if err != nil {
		return err
	}
	var cfg replication.Options
	if err := s.streamObjectOptions(ctx, st, opts, &cfg); err != nil {
		return err
	}
	dstPeer, err := s.mirrorDestination(ctx, st.Destination, st.DestPos)
	if err != nil {
		return err
	}
	dest, err := dstPeer.OpenDestination(ctx, "sluice-validate", st.Name)
	if err != nil {
		return peerConnectError(err, "create mirror %q: cannot connect to destination peer %q", st.Name, st.Destination)
	}
	_, ordered := dest.(connectors.SortingKeys)
	tables, err := normalizeMappings(st, srcPeer.DefaultSchema(), dest.DefaultSchema(), ordered)
	dest.Close(context.Background())
	if err != nil {
		return err
	}
	if why := differentTables(tables, m.Tables); why != "" {
		return differentDefinition(st, why)
	}
	if why := differentOptions(opts, m.Options); why != "" {
		return differentDefinition(st, why)
	}
	for _, n := range notices {
		_ = w.Notice(sqlerr.Notice("%s", n))
	}
	_ = w.Notice(sqlerr.Notice("mirror %q exists: resync = true resyncs it as RESYNC MIRROR does", st.Name))
	return s.resyncMirror(ctx, &sqlext.ResyncMirror{Text: st.Text, Name: st.Name, NamePos: st.NamePos},
		retagWriter{ResultWriter: w, tag: "CREATE MIRROR"})
}

// differentDefinition is the error of resync = true on a mirror that st
// defines otherwise; why says how the mirror differs.
func differentDefinition(st *sqlext.CreateMirror, why string) error {
	return sqlerr.New(pgerrcode.FeatureNotSupported,
		"mirror %q exists with another definition (%s): resync = true re-creates a mirror only as it is defined", st.Name, why).
		WithPosition(int(st.NamePos)).
		WithHint("The mirror is unchanged. Run DROP MIRROR, then CREATE MIRROR with the new definition.")
}

// differentTables says how the mappings differ from the mirror's tables,
// "" when they are the same in the same order.
func differentTables(tables []mapping, have []catalog.MirrorTable) string {
	if len(tables) != len(have) {
		return fmt.Sprintf("it has %d table mappings", len(have))
	}
	for i, t := range tables {
		h := have[i]
		switch {
		case t.source.String() != h.Source || t.dest.String() != h.Destination:
			return fmt.Sprintf("mapping %d is %s:%s", i+1, h.Source, h.Destination)
		case t.key != h.PartitionKey:
			return fmt.Sprintf("the partition key of %s is %q", h.Source, h.PartitionKey)
		case !slices.Equal(orEmpty(t.exclude), orEmpty(h.Exclude)):
			return fmt.Sprintf("%s excludes [%s]", h.Source, strings.Join(h.Exclude, ", "))
		case !slices.Equal(orEmpty(t.orderBy), orEmpty(h.OrderBy)):
			return fmt.Sprintf("the order_by of %s is [%s]", h.Source, strings.Join(h.OrderBy, ", "))
		}
	}
	return ""
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// differentOptions says which option of the mirror (stored, validated)
// differs from opts, "" when none does. A key the mirror does not have (a
// mirror made before the option existed) has the option's default.
func differentOptions(opts, have map[string]string) string {
	for _, k := range optionNames() {
		if k == "resync" {
			continue
		}
		want, got := opts[k], have[k]
		if _, ok := have[k]; !ok {
			got = mirrorOptions[k].def
		}
		if want != got {
			return fmt.Sprintf("its %s is %q", k, got)
		}
	}
	return ""
}

// retagWriter is a ResultWriter whose statement completes with tag.
type retagWriter struct {
	server.ResultWriter
	tag string
}

// Complete ends the statement with the writer's own tag.
func (r retagWriter) Complete(string) error { return r.ResultWriter.Complete(r.tag) }
