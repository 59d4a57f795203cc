package executor

import (
	"context"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// mirrorStatement answers the mirror statements, which are parsed but not
// yet executed by this version.
func (s *session) mirrorStatement(_ context.Context, st sqlext.Statement, _ server.ResultWriter) error {
	if _, ok := st.(*sqlext.ExecuteMirror); ok {
		return sqlerr.New(pgerrcode.FeatureNotSupported,
			"EXECUTE MIRROR (PeerDB query replication) is not supported")
	}
	return sqlerr.New(pgerrcode.FeatureNotSupported, "%s is not implemented yet in this version of Sluice", verb(st))
}
