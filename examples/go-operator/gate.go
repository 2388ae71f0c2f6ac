package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"time"
	"unicode"

	drgatev1 "drgate/gen/drgate/v1"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RequestID derives drgate's idempotency key from the upgrade's identity: the same upgrade always
// sends the same request_id, so a controller that restarts (or reconciles again) gets the job of
// its first attempt back (deduplicated = true) instead of starting a second backup.
// "upgrade-" plus 28 hex digits of SHA-256 is 36 characters, drgate's limit.
func RequestID(upgradeID string) string {
	sum := sha256.Sum256([]byte(upgradeID))
	return "upgrade-" + hex.EncodeToString(sum[:])[:28]
}

// Backoff is an exponential back-off with full jitter: the n-th wait is uniform in
// [0, min(Initial*2^n, Max)].
type Backoff struct {
	Initial  time.Duration
	Max      time.Duration
	Attempts int // calls in all, the first included; at least 1
}

func (b Backoff) wait(retry int) time.Duration {
	d := b.Initial << uint(retry)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	return time.Duration(rand.Int63n(int64(d) + 1))
}

// Gate ensures a DR backup for one upgrade. Every call has its own deadline: CallTimeout for
// TriggerBackup, WaitTimeout for the whole WatchJob (re-opened after UNAVAILABLE).
type Gate struct {
	Client      drgatev1.DrBackupServiceClient
	CommCell    string
	BackupType  drgatev1.BackupType
	CallTimeout time.Duration
	WaitTimeout time.Duration
	Backoff     Backoff
	Logf        func(format string, args ...interface{})
}

// RPCError is a gRPC call that failed for good: not UNAVAILABLE, or UNAVAILABLE after the last
// attempt. Reason is the google.rpc.ErrorInfo reason drgate attaches to every error.
type RPCError struct {
	Call     string
	Code     codes.Code
	Reason   string
	Message  string
	Attempts int
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("%s failed after %d attempt(s): %s: %s", e.Call, e.Attempts,
		codeAndReason(e.Code, e.Reason), e.Message)
}

// codeAndReason renders "UNAVAILABLE (UPSTREAM_HTTP_5XX)", the names drgate's documentation uses.
func codeAndReason(code codes.Code, reason string) string {
	var name strings.Builder
	for i, r := range code.String() { // "DeadlineExceeded" -> "DEADLINE_EXCEEDED"
		if i > 0 && unicode.IsUpper(r) {
			name.WriteByte('_')
		}
		name.WriteRune(unicode.ToUpper(r))
	}
	if reason == "" {
		reason = "no reason given"
	}
	return name.String() + " (" + reason + ")"
}

// JobError is a backup job that ended without succeeding.
type JobError struct{ Job *drgatev1.Job }

func (e *JobError) Error() string {
	reason := e.Job.GetFailureReason()
	if reason == "" {
		reason = "no failure reason given (CommServe status \"" + e.Job.GetCommservStatus() + "\")"
	}
	return fmt.Sprintf("DR backup job %s on CommCell %s ended %s: %s", e.Job.GetJobId(),
		e.Job.GetCommcell(), e.Job.GetState(), reason)
}

func newRPCError(call string, err error, attempts int) *RPCError {
	st := status.Convert(err)
	e := &RPCError{Call: call, Code: st.Code(), Message: st.Message(), Attempts: attempts}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			e.Reason = info.GetReason()
		}
	}
	return e
}

// retry runs call until it succeeds, fails with a code other than UNAVAILABLE, or runs out of
// attempts. Only UNAVAILABLE is retried: drgate uses it for "try the same call again"
// (CommServe unreachable, a trigger outcome still being reconciled); every other code needs a
// fix or a decision, not a retry.
func (g *Gate) retry(ctx context.Context, name string, call func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil {
			return nil
		}
		rpcErr := newRPCError(name, err, attempt)
		if rpcErr.Code != codes.Unavailable || attempt >= g.Backoff.Attempts {
			return rpcErr
		}
		wait := g.Backoff.wait(attempt - 1)
		g.Logf("%s: %s: %s; retry %d/%d in %s", name, codeAndReason(rpcErr.Code, rpcErr.Reason),
			rpcErr.Message, attempt, g.Backoff.Attempts-1, wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return rpcErr
		}
	}
}

// EnsureBackup triggers (or finds again) the DR backup of upgradeID and follows it to its end.
// It returns the job when it SUCCEEDED (or SUCCEEDED_WITH_ERRORS when acceptErrors), a *JobError
// when it ended otherwise, and an *RPCError when drgate could not be asked.
func (g *Gate) EnsureBackup(ctx context.Context, upgradeID string, acceptErrors bool) (*drgatev1.Job, error) {
	requestID := RequestID(upgradeID)
	var job *drgatev1.Job
	err := g.retry(ctx, "TriggerBackup", func(ctx context.Context) error {
		callCtx, cancel := context.WithTimeout(ctx, g.CallTimeout)
		defer cancel()
		resp, err := g.Client.TriggerBackup(callCtx, &drgatev1.TriggerBackupRequest{
			Commcell:   g.CommCell,
			BackupType: g.BackupType,
			RequestId:  requestID,
		})
		if err != nil {
			return err
		}
		job = resp.GetJob()
		verb := "started"
		if resp.GetDeduplicated() {
			verb = "found again (deduplicated)"
		}
		g.Logf("upgrade %q: request_id %s: DR backup job %s on %s %s, state %s", upgradeID,
			requestID, job.GetJobId(), job.GetCommcell(), verb, job.GetState())
		return nil
	})
	if err != nil {
		return nil, err
	}

	// One deadline for the whole wait; a stream broken by UNAVAILABLE is opened again (WatchJob
	// is a read: repeating it is always safe) and starts with the job's current state.
	watchCtx, cancel := context.WithTimeout(ctx, g.WaitTimeout)
	defer cancel()
	err = g.retry(watchCtx, "WatchJob of job "+job.GetJobId(), func(ctx context.Context) error {
		stream, err := g.Client.WatchJob(ctx, &drgatev1.WatchJobRequest{
			Commcell: job.GetCommcell(),
			JobId:    job.GetJobId(),
		})
		if err != nil {
			return err
		}
		for {
			update, err := stream.Recv()
			if err == io.EOF {
				if isTerminal(job.GetState()) {
					return nil
				}
				return status.Error(codes.Unavailable, "WatchJob ended before a terminal state")
			}
			if err != nil {
				return err
			}
			job = update
			g.Logf("job %s: %s %d%% %s", job.GetJobId(), job.GetState(),
				job.GetPercentComplete(), job.GetCommservStatus())
			if isTerminal(job.GetState()) {
				return nil
			}
		}
	})
	if err != nil {
		return job, err
	}
	switch job.GetState() {
	case drgatev1.JobState_JOB_STATE_SUCCEEDED:
		return job, nil
	case drgatev1.JobState_JOB_STATE_SUCCEEDED_WITH_ERRORS:
		if acceptErrors {
			return job, nil
		}
	}
	return job, &JobError{Job: job}
}

func isTerminal(s drgatev1.JobState) bool {
	switch s {
	case drgatev1.JobState_JOB_STATE_SUCCEEDED, drgatev1.JobState_JOB_STATE_SUCCEEDED_WITH_ERRORS,
		drgatev1.JobState_JOB_STATE_FAILED, drgatev1.JobState_JOB_STATE_KILLED,
		drgatev1.JobState_JOB_STATE_UNKNOWN:
		return true
	}
	return false
}
