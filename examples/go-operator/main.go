// drgate-upgrade-gate: the step a Kubernetes operator runs before an upgrade: make sure a DR
// backup of the CommServe ran for this upgrade, and stop the upgrade when it did not succeed.
//
// It is written like a controller's reconcile step: running it again for the same upgrade (after
// a crash, a restart, a requeue) never starts a second backup, because the request_id sent to
// drgate is derived from --upgrade-id.
//
// Exit codes: 0 the backup succeeded; 1 the backup job ended without succeeding (FAILED, KILLED,
// UNKNOWN, or SUCCEEDED_WITH_ERRORS without --accept-errors); 2 usage error; 3 drgate refused
// the request (a code other than UNAVAILABLE); 4 drgate stayed UNAVAILABLE, or a deadline passed.
// The last line on stderr names the failure.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"math/rand"
	"net"
	"os"
	"strings"
	"time"

	drgatev1 "drgate/gen/drgate/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

const prog = "drgate-upgrade-gate"

// bearerToken sends "authorization: Bearer <token>" on every call. The file is read for each call,
// so a rotated token (a re-mounted Kubernetes Secret) is used without a restart.
type bearerToken struct {
	file  string // read per call when set
	token string // else this one (from $DRGATE_TOKEN)
}

func (b bearerToken) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	token := b.token
	if b.file != "" {
		data, err := ioutil.ReadFile(b.file)
		if err != nil {
			return nil, fmt.Errorf("token file: %v", err)
		}
		token = strings.TrimSpace(string(data))
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity is false so that a loopback address may be used without TLS; main
// refuses a token over plaintext to any other address.
func (b bearerToken) RequireTransportSecurity() bool { return false }

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type options struct {
	server, commcell, upgradeID, backupType string
	tokenFile, caFile, certFile, keyFile    string
	serverName                              string
	useTLS, acceptErrors                    bool
	callTimeout, waitTimeout                time.Duration
	backoff                                 Backoff
}

func parseFlags() (options, error) {
	var o options
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	defaultServer := os.Getenv("DRGATE_SERVER")
	if defaultServer == "" {
		defaultServer = "127.0.0.1:50051"
	}
	fs.StringVar(&o.server, "server", defaultServer, "drgate's gRPC address HOST:PORT ($DRGATE_SERVER when set)")
	fs.StringVar(&o.commcell, "commcell", "", "CommCell to back up (may be empty when drgate serves exactly one)")
	fs.StringVar(&o.upgradeID, "upgrade-id", "", "identity of the upgrade, e.g. \"<namespace>/<name>@<generation>\" (required)")
	fs.StringVar(&o.backupType, "type", "full", "full or differential")
	fs.BoolVar(&o.acceptErrors, "accept-errors", false, "treat SUCCEEDED_WITH_ERRORS as success")
	fs.StringVar(&o.tokenFile, "token-file", os.Getenv("DRGATE_TOKEN_FILE"), "file holding the bearer token (default $DRGATE_TOKEN_FILE; else $DRGATE_TOKEN is used when set)")
	fs.BoolVar(&o.useTLS, "tls", false, "TLS, verifying drgate against the system roots")
	fs.StringVar(&o.caFile, "ca-file", "", "TLS, verifying drgate against this PEM CA (implies --tls)")
	fs.StringVar(&o.certFile, "cert", "", "PEM client certificate for mutual TLS (with --key; implies --tls)")
	fs.StringVar(&o.keyFile, "key", "", "PEM key of --cert")
	fs.StringVar(&o.serverName, "server-name", "", "name to verify in drgate's certificate (default: the host of --server)")
	fs.DurationVar(&o.callTimeout, "call-timeout", 30*time.Second, "deadline of each TriggerBackup call")
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 4*time.Hour, "deadline of the whole wait for the job (WatchJob)")
	fs.DurationVar(&o.backoff.Initial, "initial-backoff", 500*time.Millisecond, "first wait before retrying an UNAVAILABLE call")
	fs.DurationVar(&o.backoff.Max, "max-backoff", 30*time.Second, "longest wait between retries")
	fs.IntVar(&o.backoff.Attempts, "attempts", 6, "calls in all (first one included) while drgate answers UNAVAILABLE")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() != 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.upgradeID == "":
		return o, errors.New("--upgrade-id is required")
	case o.backupType != "full" && o.backupType != "differential":
		return o, fmt.Errorf("--type must be full or differential, not %q", o.backupType)
	case (o.certFile == "") != (o.keyFile == ""):
		return o, errors.New("--cert and --key go together")
	case o.callTimeout <= 0 || o.waitTimeout <= 0 || o.backoff.Initial <= 0 || o.backoff.Max <= 0:
		return o, errors.New("timeouts and back-off durations must be positive")
	case o.backoff.Attempts < 1:
		return o, errors.New("--attempts must be at least 1")
	}
	o.useTLS = o.useTLS || o.caFile != "" || o.certFile != ""
	return o, nil
}

func dialOptions(o options) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if o.useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
		if o.caFile != "" {
			pem, err := ioutil.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
			}
		}
		if o.certFile != "" {
			pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
			if err != nil {
				return nil, fmt.Errorf("--cert/--key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}

	token := bearerToken{file: o.tokenFile, token: os.Getenv("DRGATE_TOKEN")}
	if token.file != "" || token.token != "" {
		if !o.useTLS && !isLoopback(o.server) {
			return nil, fmt.Errorf("refusing to send a bearer token in plaintext to %s: use --tls or --ca-file", o.server)
		}
		if token.file != "" {
			if _, err := token.GetRequestMetadata(context.Background()); err != nil {
				return nil, err
			}
		}
		opts = append(opts, grpc.WithPerRPCCredentials(token))
	}
	return opts, nil
}

func main() {
	rand.Seed(time.Now().UnixNano())
	logf := func(format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), prog,
			fmt.Sprintf(format, args...))
	}
	fail := func(code int, format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "%s: FAILED: %s\n", prog, fmt.Sprintf(format, args...))
		os.Exit(code)
	}

	o, err := parseFlags()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fail(2, "%v", err)
	}
	opts, err := dialOptions(o)
	if err != nil {
		fail(2, "%v", err)
	}
	// Dial does not block: connection problems surface as UNAVAILABLE on the calls, and are retried.
	conn, err := grpc.Dial(o.server, opts...)
	if err != nil {
		fail(2, "%v", err)
	}
	defer conn.Close()

	backupType := drgatev1.BackupType_BACKUP_TYPE_FULL
	if o.backupType == "differential" {
		backupType = drgatev1.BackupType_BACKUP_TYPE_DIFFERENTIAL
	}
	gate := &Gate{
		Client:      drgatev1.NewDrBackupServiceClient(conn),
		CommCell:    o.commcell,
		BackupType:  backupType,
		CallTimeout: o.callTimeout,
		WaitTimeout: o.waitTimeout,
		Backoff:     o.backoff,
		Logf:        logf,
	}
	job, err := gate.EnsureBackup(context.Background(), o.upgradeID, o.acceptErrors)
	var jobErr *JobError
	var rpcErr *RPCError
	switch {
	case err == nil:
		logf("upgrade %q may proceed: DR backup job %s on %s %s", o.upgradeID, job.GetJobId(),
			job.GetCommcell(), job.GetState())
	case errors.As(err, &jobErr):
		conn.Close()
		fail(1, "%v", jobErr)
	case errors.As(err, &rpcErr):
		conn.Close()
		code := 3
		if rpcErr.Code == codes.Unavailable || rpcErr.Code == codes.DeadlineExceeded {
			code = 4
		}
		fail(code, "%v", rpcErr)
	default:
		conn.Close()
		fail(4, "%v", err)
	}
}
