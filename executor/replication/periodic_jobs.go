package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// The cluster's periodic work as River periodic jobs
// (docs/cluster.md#where-periodic-work-runs). Work done every few seconds
// for all the mirrors at once (the slot monitor's round, the lag
// history's sample) is one job a period, which whichever node's client
// fetches it runs: N nodes query a source once a period, not N times, and
// a node's death costs at most the rounds until River elects another
// leader.
//
// Every node's client is configured with the same periodic jobs; only
// River's elected leader enqueues them. Their schedule is aligned on the
// period (alignedSchedule: a job at every multiple of it since the Unix
// epoch), and each job names its period's start in its args (At), which
// makes it unique: a leader that changes inserts the period's job again,
// and River keeps the one already there. A job that starts more than two
// periods late (a dead node's, rescued) does nothing: a later one
// measures instead.
//
// Their completed jobs are kept for PeriodicKeepCompleted only (the
// lag_sample job deletes older ones: catalog's DeleteFinishedJobs), failed
// ones for PeriodicKeepFailed, so that the jobs status table shows the last
// minute's rounds and recent failures, not a day of them.

// Kinds of the periodic jobs, as the jobs status table shows them.
const (
	// KindLagSample samples every mirror's lag into the lag history.
	KindLagSample = "lag_sample"
	// KindSlotMonitor measures every mirror's stream on its source.
	KindSlotMonitor = "slot_monitor"
)

const (
	// periodicQueue is the River queue of the periodic jobs, worked by
	// every node.
	periodicQueue = "sluice_periodic"
	// periodicWorkers is how many periodic jobs a node runs at once.
	periodicWorkers = 2
	// periodicTimeout bounds one periodic job.
	periodicTimeout = time.Minute
	// PeriodicKeepCompleted is how long a completed periodic job stays in
	// River's table (and the jobs status table).
	PeriodicKeepCompleted = time.Minute
	// PeriodicKeepFailed is how long a periodic job that failed, or was
	// cancelled, stays.
	PeriodicKeepFailed = time.Hour
)

// PeriodicKinds are the kinds of the periodic jobs.
var PeriodicKinds = []string{KindLagSample, KindSlotMonitor}

// PeriodicWork is work the cluster does once every Every, on one node.
type PeriodicWork struct {
	// Kind is KindLagSample or KindSlotMonitor.
	Kind string
	// Every is the period; at least a millisecond.
	Every time.Duration
	// Run does one period's work. Its error fails the period's job
	// (shown in the jobs status table); the next period runs anyway.
	Run func(ctx context.Context) error
}

// validatePeriodic checks the periodic work of a Config.
func validatePeriodic(work []PeriodicWork) error {
	seen := map[string]bool{}
	for _, w := range work {
		switch {
		case w.Kind != KindLagSample && w.Kind != KindSlotMonitor:
			return fmt.Errorf("replication: unknown periodic job kind %q", w.Kind)
		case seen[w.Kind]:
			return fmt.Errorf("replication: periodic job kind %q given twice", w.Kind)
		case w.Every < time.Millisecond:
			return fmt.Errorf("replication: periodic job %q: period %s is below 1ms", w.Kind, w.Every)
		case w.Run == nil:
			return fmt.Errorf("replication: periodic job %q has no work", w.Kind)
		}
		seen[w.Kind] = true
	}
	return nil
}

// periodicKind names a periodic job's kind, as a type: River registers a
// worker per args type, whose zero value gives the kind.
type periodicKind interface{ kind() string }

// lagSampleKind and slotMonitorKind are the periodicKinds.
type (
	lagSampleKind   struct{}
	slotMonitorKind struct{}
)

func (lagSampleKind) kind() string   { return KindLagSample }
func (slotMonitorKind) kind() string { return KindSlotMonitor }

// periodicArgs is a periodic job of kind K: the period starting At. Unique
// by its args, so one job a period whichever leader inserts it.
type periodicArgs[K periodicKind] struct {
	At time.Time `json:"at" river:"unique"`
}

// Kind implements river.JobArgs.
func (periodicArgs[K]) Kind() string {
	var k K
	return k.kind()
}

// InsertOpts implements river.JobArgsWithInsertOpts: one attempt (the
// next period measures again), unique by args in every state but
// cancelled and discarded.
func (periodicArgs[K]) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: periodicQueue, MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// periodicWorker works the periodic jobs of kind K.
type periodicWorker[K periodicKind] struct {
	river.WorkerDefaults[periodicArgs[K]]
	work PeriodicWork
}

// Work implements river.Worker.
func (w *periodicWorker[K]) Work(ctx context.Context, job *river.Job[periodicArgs[K]]) error {
	if late := time.Since(job.Args.At); late > 2*w.work.Every+time.Second {
		// A rescued job of a dead node, or a queue that was stuck: a
		// later period's job does the work.
		return river.RecordOutput(ctx, map[string]string{"skipped": fmt.Sprintf("%s late", late.Round(time.Millisecond))})
	}
	return w.work.Run(ctx)
}

// Timeout implements river.Worker.
func (w *periodicWorker[K]) Timeout(*river.Job[periodicArgs[K]]) time.Duration {
	return max(periodicTimeout, 3*w.work.Every)
}

// alignedSchedule runs at every multiple of every since the Unix epoch, so
// that any node's leader schedules the same instants.
type alignedSchedule struct{ every time.Duration }

// Next implements river.PeriodicSchedule.
func (s alignedSchedule) Next(t time.Time) time.Time {
	return t.Truncate(s.every).Add(s.every)
}

// addPeriodic registers the workers of work and returns its periodic jobs,
// for the node's River client.
func addPeriodic(workers *river.Workers, work []PeriodicWork) []*river.PeriodicJob {
	var out []*river.PeriodicJob
	for _, w := range work {
		sched := alignedSchedule{every: w.Every}
		switch w.Kind {
		case KindLagSample:
			river.AddWorker(workers, &periodicWorker[lagSampleKind]{work: w})
			out = append(out, periodicJob[lagSampleKind](sched, false))
		case KindSlotMonitor:
			river.AddWorker(workers, &periodicWorker[slotMonitorKind]{work: w})
			out = append(out, periodicJob[slotMonitorKind](sched, true))
		}
	}
	return out
}

// periodicJob is the periodic job of kind K on sched; runOnStart: a leader
// just elected inserts the current period's job at once (unique: a job
// the earlier leader inserted for it is kept instead).
func periodicJob[K periodicKind](sched alignedSchedule, runOnStart bool) *river.PeriodicJob {
	return river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
		// The enqueuer calls this at or just after the period's start, or
		// up to 100 ms before it (its margin), which Truncate alone would
		// count in the period before; a leader's first call (runOnStart)
		// comes at any time, and names the period it is in.
		margin := min(100*time.Millisecond, sched.every/2)
		return periodicArgs[K]{At: time.Now().Add(margin).Truncate(sched.every).UTC()}, nil
	}, &river.PeriodicJobOpts{RunOnStart: runOnStart})
}
