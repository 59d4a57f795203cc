package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// VALIDATE MIRROR as a River job (docs/cluster.md#jobs). A validation
// holds the mirror's running flow at a source snapshot (validate.go), so it
// must run on the node that runs the flow: the statement, on any node,
// enqueues a validate job in the River queue of the node holding the
// mirror's stream lease (nodeQueue: each node's client works its own queue
// besides the shared ones), and waits for it. The job's worker hands the
// request to the flow there, summarizes the source, compares, records the
// result in mirror_validations and returns it as the job's output, which
// the statement returns. The stream does not move.
//
// A mirror has one validate job waiting or running at a time (unique by
// mirror in those states): a second VALIDATE MIRROR of it fails at once,
// saying which node runs the first, as a second request to one flow did
// before jobs. The statement's end (its context: a cancel request, the
// client gone) cancels the job, wherever it runs. A job waiting in the
// queue of a node that no longer holds its mirror (the node died, or
// handed the stream over) is moved to the new holder's queue by every
// node's rescue loop (routeValidations); one that waited past its until
// (the statement's wait) is cancelled there. A node that dies while it
// runs one has it made available again like any job, then moved.

const (
	// validateKind is the kind of a validation's job.
	validateKind = "validate"
	// nodeWorkers is how many jobs of its own queue a node runs at once.
	nodeWorkers = 4
	// validatePoll is how often the statement reads its job's state.
	validatePoll = 50 * time.Millisecond
)

// nodeQueue returns the River queue of node's own jobs: node_<id>, or,
// for an id a queue name cannot hold as it is (characters other than
// lower-case letters, digits, _ and -, or longer than 40), its first 40
// characters so cleaned and a hash of the whole id.
func nodeQueue(node string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(node) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id != node || len(id) > 40 {
		h := fnv.New64a()
		h.Write([]byte(node))
		id = fmt.Sprintf("%.40s_%016x", id, h.Sum64())
	}
	return "node_" + id
}

// validateArgs is a validate job: one VALIDATE MIRROR.
type validateArgs struct {
	Mirror string `json:"mirror" river:"unique"`
	// Table is the one source table to compare ("": all), as
	// TableName.String renders it (shown in the jobs status table).
	Table    string `json:"table,omitempty"`
	Checksum bool   `json:"checksum"`
	// Until is when the statement stops waiting for a node to take the
	// job: a job taken later fails, one still queued then is cancelled.
	Until time.Time `json:"until"`
}

// Kind implements river.JobArgs.
func (validateArgs) Kind() string { return validateKind }

// InsertOpts implements river.JobArgsWithInsertOpts: one attempt (the
// statement reports its error; a node's death makes it available again
// regardless), unique by mirror while it waits or runs.
func (validateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateRetryable,
		rivertype.JobStateScheduled}}}
}

// ValidateOutcome is a validation recorded: its consistent point, as the
// source's kind renders it, its mode and its rows, as mirror_validations
// holds them.
type ValidateOutcome struct {
	Position string               `json:"position"`
	Mode     string               `json:"mode"`
	Rows     []catalog.Validation `json:"rows"`
}

// validateWorker works validate jobs: this node runs the mirror's flow.
type validateWorker struct {
	river.WorkerDefaults[validateArgs]
	e *Engine
}

// Work implements river.Worker.
func (w *validateWorker) Work(ctx context.Context, job *river.Job[validateArgs]) error {
	a := job.Args
	if time.Now().After(a.Until) {
		return fmt.Errorf("%w: no node took the request before %s (its flow may have been moving between nodes)",
			ErrNotStreaming, a.Until.Format(time.RFC3339))
	}
	req := ValidateRequest{Checksum: a.Checksum}
	if a.Table != "" {
		t, err := connectors.ParseTableName(a.Table)
		if err != nil {
			return river.JobCancel(err)
		}
		req.Tables = []connectors.TableName{t}
	}
	if !w.e.Running(a.Mirror) {
		h, err := w.e.cfg.Store.GetLeaseHolder(ctx, a.Mirror)
		if err == nil && h.Node != "" && h.Node != w.e.cfg.Node {
			// The stream moved since the job was queued here: the rescue
			// loop moves the job to its node's queue meanwhile
			// (routeValidations). A snooze is not an attempt.
			return river.JobSnooze(time.Second)
		}
	}
	out, err := w.e.validateAndRecord(ctx, a.Mirror, req)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely) {
			return fmt.Errorf("node %s stopped during the validation: %w", w.e.cfg.Node, err)
		}
		return err
	}
	return river.RecordOutput(ctx, out)
}

// validateAndRecord validates the mirror through its flow here and records
// the result in mirror_validations.
func (e *Engine) validateAndRecord(ctx context.Context, name string, req ValidateRequest) (ValidateOutcome, error) {
	res, err := e.validateHere(ctx, name, req)
	if err != nil {
		return ValidateOutcome{}, err
	}
	out := ValidateOutcome{Position: res.Position, Mode: "count", Rows: make([]catalog.Validation, len(res.Tables))}
	if req.Checksum {
		out.Mode = "checksum"
	}
	for i, t := range res.Tables {
		out.Rows[i] = catalog.Validation{SourceTable: t.Table.String(), SourceRows: t.SourceRows, DestinationRows: t.DestinationRows,
			MismatchedRanges: t.Mismatched, Status: t.Status()}
	}
	if err := e.cfg.Store.RecordValidation(ctx, name, out.Mode, out.Position, out.Rows); err != nil {
		return ValidateOutcome{}, err
	}
	e.cfg.Logger.InfoContext(ctx, "mirror validated", "mirror", name, "mode", out.Mode, "position", out.Position)
	return out, nil
}

// Validate compares the mirror's tables on both sides at one consistent
// point and records the result (validate.go), on the node running the
// mirror's flow, as a validate job (see the file's comment); it waits for
// the job, and cancels it when ctx ends. It fails with an error wrapping
// ErrNotStreaming when no node streams the mirror's changes to take the
// request. An engine never started (no River client) validates through
// its own flow, if it runs one. Safe for concurrent use.
func (e *Engine) Validate(ctx context.Context, name string, req ValidateRequest) (ValidateOutcome, error) {
	e.mu.Lock()
	j := e.jobs
	e.mu.Unlock()
	if j == nil {
		return e.validateAndRecord(ctx, name, req)
	}
	h, err := e.cfg.Store.GetLeaseHolder(ctx, name)
	if err != nil {
		return ValidateOutcome{}, err
	}
	if h.Node == "" {
		return ValidateOutcome{}, fmt.Errorf("%w: its flow is not running", ErrNotStreaming)
	}
	wait := 2*e.cfg.NodeTimeout + takeTimeout
	args := validateArgs{Mirror: name, Checksum: req.Checksum, Until: time.Now().Add(wait).UTC()}
	if len(req.Tables) == 1 {
		args.Table = req.Tables[0].String()
	}
	res, err := j.client.Insert(ctx, args, &river.InsertOpts{Queue: nodeQueue(h.Node)})
	if err != nil {
		return ValidateOutcome{}, fmt.Errorf("enqueue the validation: %w", err)
	}
	if res.UniqueSkippedAsDuplicate {
		where := "waiting for its node"
		if n := res.Job.AttemptedBy; len(n) > 0 && res.Job.State == rivertype.JobStateRunning {
			where = "on node " + n[len(n)-1]
		}
		return ValidateOutcome{}, fmt.Errorf("another validation of mirror %q is under way (%s)", name, where)
	}
	id := res.Job.ID
	done := false
	defer func() {
		if !done {
			// The statement ended first: the job goes too, wherever it
			// runs (River tells its node).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			defer cancel()
			if _, err := j.client.JobCancel(cctx, id); err != nil && !errors.Is(err, river.ErrNotFound) {
				e.cfg.Logger.ErrorContext(cctx, "cancel the validation's job", "mirror", name, "job", id, "err", err)
			}
		}
	}()
	tick := time.NewTicker(validatePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ValidateOutcome{}, ctx.Err()
		case <-tick.C:
		}
		s, err := e.cfg.Store.GetJob(ctx, id)
		if err != nil {
			return ValidateOutcome{}, err
		}
		switch s.State {
		case "completed":
			done = true
			var out ValidateOutcome
			if err := json.Unmarshal(s.Output, &out); err != nil {
				return ValidateOutcome{}, fmt.Errorf("read the validation's result: %w", err)
			}
			return out, nil
		case "discarded", "cancelled":
			done = true
			return ValidateOutcome{}, jobError(s.Error)
		case "available", "scheduled", "retryable":
			if time.Now().After(args.Until) {
				return ValidateOutcome{}, fmt.Errorf("%w: no node took the request within %s (its flow may be moving between nodes)",
					ErrNotStreaming, wait)
			}
		}
	}
}

// jobError is the error a validate job's worker returned, from its text:
// ErrNotStreaming again when it was one.
func jobError(msg string) error {
	if rest, ok := strings.CutPrefix(msg, ErrNotStreaming.Error()); ok {
		return fmt.Errorf("%w%s", ErrNotStreaming, rest)
	}
	if msg == "" {
		msg = "the validation's job was cancelled"
	}
	return errors.New(msg)
}

// routeValidations moves the validate jobs waiting in the queue of a node
// that no longer holds their mirror's lease to the holder's, and cancels
// those that waited past their until (their statement gave up). Every
// node does it each heartbeat, after the rescue of gone nodes' jobs.
func (e *Engine) routeValidations(ctx context.Context, j *jobs) error {
	queued, err := e.cfg.Store.QueuedJobs(ctx, validateKind)
	if err != nil {
		return err
	}
	for _, q := range queued {
		switch {
		case q.Expired:
			if _, err := j.client.JobCancel(ctx, q.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("cancel an expired validation: %w", err)
			}
		case q.Holder != "" && q.Queue != nodeQueue(q.Holder):
			if _, err := e.cfg.Store.MoveJob(ctx, q.ID, nodeQueue(q.Holder)); err != nil {
				return err
			}
		}
	}
	return nil
}
