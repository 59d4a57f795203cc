package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/executor/replication"
	"github.com/sluicedb/sluice/server"
	"github.com/sluicedb/sluice/sqlerr"
	"github.com/sluicedb/sluice/sqlext"
)

// Validation modes (VALIDATE MIRROR ... WITH (mode = ...)).
const (
	validateCount    = "count"
	validateChecksum = "checksum"
)

// validateMirror compares a streaming mirror's tables on both sides at one
// consistent point (executor/replication/validate.go, docs/validate.md),
// returns a row per table and records them in mirror_validations: a
// validate job on the node running the mirror's flow does it
// (executor/replication/validate_jobs.go), which this session waits for
// (its end cancels the job). A mirror that does not stream (paused,
// failed, loading, resyncing) is refused: there is no running flow to stop
// at the source's snapshot.
func (s *session) validateMirror(ctx context.Context, st *sqlext.ValidateMirror, w server.ResultWriter) error {
	mode := validateCount
	for _, o := range st.Options {
		if o.Key != "mode" {
			return sqlerr.New(pgerrcode.SyntaxError, "unknown option %q: VALIDATE MIRROR accepts mode", o.Key).WithPosition(int(o.Pos))
		}
		switch v := strings.ToLower(o.Value.Text); v {
		case validateCount, validateChecksum:
			mode = v
		default:
			return sqlerr.New(pgerrcode.InvalidParameterValue, "invalid value for option \"mode\": %q is not count or checksum", o.Value.Text).
				WithPosition(int(o.Value.Pos))
		}
	}
	m, err := s.getMirror(ctx, st.Name, st.NamePos)
	if err != nil {
		return err
	}
	req := replication.ValidateRequest{Checksum: mode == validateChecksum}
	if st.Table.Name != "" {
		t, _, err := s.mirrorTable(ctx, &m, st.Table)
		if err != nil {
			return err
		}
		req.Tables = []connectors.TableName{t}
	}
	if err := notStreaming(m); err != nil {
		return err.WithPosition(int(st.NamePos))
	}
	res, err := s.ex.engine.Validate(ctx, m.Name, req)
	if errors.Is(err, replication.ErrNotStreaming) {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "cannot validate mirror %q: %v", m.Name, err).
			WithPosition(int(st.NamePos)).WithHint("See SELECT status, error FROM mirrors WHERE name = '%s'.", m.Name)
	}
	if err != nil {
		return sqlerr.New(pgerrcode.ObjectNotInPrerequisiteState, "validate mirror %q: %v", m.Name, err).
			WithHint("The mirror goes on streaming.")
	}
	return writeValidation(w, res.Rows, s.resultFormats)
}

// notStreaming refuses a mirror that is not streaming, saying why.
func notStreaming(m catalog.Mirror) *sqlerr.Error {
	state := pgerrcode.ObjectNotInPrerequisiteState
	switch {
	case m.Desired == catalog.DesiredPaused:
		return sqlerr.New(state, "cannot validate mirror %q: it is paused", m.Name).
			WithHint("A validation stops the running stream at the source's snapshot; RESUME MIRROR %s first.", m.Name)
	case m.Phase == replication.PhaseCompleted:
		return sqlerr.New(state, "cannot validate mirror %q: it has completed its initial copy and does not stream", m.Name)
	case m.Resync != "":
		return sqlerr.New(state, "cannot validate mirror %q: it is being resynced (phase %s)", m.Name, m.Phase)
	case m.Phase != catalog.PhaseCDC:
		return sqlerr.New(state, "cannot validate mirror %q: it is in its initial load (%s)", m.Name, m.Phase).
			WithHint("Validate once it streams (mirrors.status RUNNING).")
	case m.Error != "":
		return sqlerr.New(state, "cannot validate mirror %q: it is failing: %s", m.Name, m.Error).
			WithHint("Validate once it streams again (mirrors.status RUNNING).")
	}
	return nil
}

// validationOIDs are the types of VALIDATE MIRROR's columns: text, int8,
// int8, text[], text.
var validationOIDs = []uint32{pgtype.TextOID, pgtype.Int8OID, pgtype.Int8OID, pgtype.TextArrayOID, pgtype.TextOID}

// validationFields describes VALIDATE MIRROR's result.
func validationFields() []pgproto3.FieldDescription {
	names := []string{"table", "source_rows", "destination_rows", "mismatched_ranges", "status"}
	out := make([]pgproto3.FieldDescription, len(names))
	for i, n := range names {
		size := int16(-1)
		if validationOIDs[i] == pgtype.Int8OID {
			size = 8
		}
		out[i] = pgproto3.FieldDescription{Name: []byte(n), DataTypeOID: validationOIDs[i], DataTypeSize: size, TypeModifier: -1}
	}
	return out
}

// writeValidation sends the validation's rows, in formats (Bind's result
// formats: none is all text, one is for every column).
func writeValidation(w server.ResultWriter, rows []catalog.Validation, formats []int16) error {
	if err := w.Fields(validationFields()); err != nil {
		return err
	}
	types := pgtype.NewMap()
	for _, r := range rows {
		var ranges any
		if r.MismatchedRanges != nil {
			ranges = r.MismatchedRanges
		}
		values := []any{r.SourceTable, r.SourceRows, r.DestinationRows, ranges, r.Status}
		row := make([][]byte, len(values))
		for i, v := range values {
			format := int16(pgtype.TextFormatCode)
			switch {
			case len(formats) == 1:
				format = formats[0]
			case len(formats) > i:
				format = formats[i]
			}
			if v == nil {
				continue
			}
			b, err := types.Encode(validationOIDs[i], format, v, nil)
			if err != nil {
				return fmt.Errorf("encode column %d: %w", i+1, err)
			}
			row[i] = b
		}
		if err := w.Row(row); err != nil {
			return err
		}
	}
	return w.Complete(fmt.Sprintf("SELECT %d", len(rows)))
}
