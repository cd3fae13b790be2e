// KEDA's own client against Conclave's external scaler: the generated `externalscaler`
// package from KEDA's module, called exactly as KEDA's external-push scaler calls it
// (GetMetricSpec, GetMetrics, IsActive, StreamIsActive), on a scripted telemetry sequence
// fed to `conclave run --keda` in event time. Run by `make test-keda` (CONCLAVE_BIN set).
package keda

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// conclave is a running `conclave run --keda 127.0.0.1:0`.
type conclave struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	seen   []string
	client pb.ExternalScalerClient
	conn   *grpc.ClientConn
	dir    string
}

func start(t *testing.T, policy string) *conclave {
	t.Helper()
	bin := os.Getenv("CONCLAVE_BIN")
	if bin == "" {
		t.Fatal("CONCLAVE_BIN is not set (make test-keda sets it to the built conclave binary)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "run", "--policy", policy, "--telemetry", "-", "--time", "event", "--quiet",
		"--audit", filepath.Join(dir, "audit.jsonl"), "--dead-letters", filepath.Join(dir, "dead.jsonl"),
		"--actions", filepath.Join(dir, "actions.log"), "--keda", "127.0.0.1:0")
	cmd.Dir = root
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &conclave{cmd: cmd, stdin: stdin, lines: make(chan string, 100), dir: dir}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			c.lines <- s.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	line := c.waitLine(t, "keda: external scaler listening on ")
	addr := strings.TrimPrefix(line, "keda: external scaler listening on ")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c.conn = conn
	c.client = pb.NewExternalScalerClient(conn)
	return c
}

// waitLine waits (a generous bound, not a measurement) for a stderr line with prefix.
func (c *conclave) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		for _, l := range c.seen {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("conclave exited without printing %q; it printed %q", prefix, c.seen)
			}
			c.seen = append(c.seen, l)
		case <-deadline:
			t.Fatalf("no %q on stderr; saw %q", prefix, c.seen)
		}
	}
}

// send writes telemetry for `web` at `sec` seconds past 10:00.
func (c *conclave) send(t *testing.T, points ...[3]float64) {
	t.Helper()
	for _, p := range points {
		sec, cpu, replicas := int(p[0]), p[1], int(p[2])
		line := fmt.Sprintf(`{"type": "metrics", "schema_version": 1, "service": "web", "ts": "2026-11-29T10:%02d:%02d.000Z", "rate_in": 100.0, "rate_out": 100.0, "backlog": 0, "latency_p50_ms": 12.5, "latency_p99_ms": 90.0, "error_rate": 0.0, "cpu": %v, "replicas": %d}`, sec/60, sec%60, cpu, replicas)
		if _, err := fmt.Fprintln(c.stdin, line); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *conclave) finish(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	for l := range c.lines {
		c.seen = append(c.seen, l)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("conclave run: %v; stderr %q", err, c.seen)
	}
}

func ref(target string) *pb.ScaledObjectRef {
	md := map[string]string{}
	if target != "" {
		md["target"] = target
	}
	return &pb.ScaledObjectRef{Name: "web-consumer", Namespace: "shop", ScalerMetadata: md}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// metricValue polls GetMetrics until it answers `want` (decisions reach the scaler
// asynchronously after their window closes).
func (c *conclave) metricValue(t *testing.T, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := c.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref("web"), MetricName: "s0-conclave-replicas-web"})
		if err == nil && len(r.MetricValues) == 1 && r.MetricValues[0].MetricValueFloat == want {
			if r.MetricValues[0].MetricValue != int64(want) || r.MetricValues[0].MetricName != "s0-conclave-replicas-web" {
				t.Fatalf("GetMetrics: %v", r)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetMetrics never answered %v; last %v, %v", want, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	s, _ := status.FromError(err)
	if s.Code() != code || s.Message() != msg {
		t.Fatalf("got %v %q, want %v %q", s.Code(), s.Message(), code, msg)
	}
}

func TestScalesKubernetesOnEnactedDecisions(t *testing.T) {
	c := start(t, "tests/fixtures/keda/policy.yaml")

	spec, err := c.client.GetMetricSpec(ctx(t), ref("web"))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].MetricName != "conclave-replicas-web" || spec.MetricSpecs[0].TargetSizeFloat != 1 || spec.MetricSpecs[0].TargetSize != 1 {
		t.Fatalf("GetMetricSpec: %v", spec)
	}
	// Nothing decided yet: not active, and no value to give.
	if a, err := c.client.IsActive(ctx(t), ref("web")); err != nil || a.Result {
		t.Fatalf("IsActive before any decision: %v %v", a, err)
	}
	_, err = c.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref("web"), MetricName: "s0-conclave-replicas-web"})
	wantStatus(t, err, codes.Unavailable, "ScaledObject `shop/web-consumer`: no scale of `web` has been carried out yet; KEDA keeps the current replicas")

	stream, err := c.client.StreamIsActive(ctx(t), ref("web"))
	if err != nil {
		t.Fatal(err)
	}
	next := func() bool {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("StreamIsActive: %v", err)
		}
		return m.Result
	}
	if next() {
		t.Fatal("the stream starts inactive")
	}

	// Hot: the window ending 10:00:10 scales web from 2 to 4.
	c.send(t, [3]float64{0, 0.9, 2}, [3]float64{5, 0.9, 2}, [3]float64{12, 0.9, 4})
	if !next() {
		t.Fatal("the stream did not turn active on the scale-up")
	}
	c.metricValue(t, 4)
	if a, err := c.client.IsActive(ctx(t), ref("web")); err != nil || !a.Result {
		t.Fatalf("IsActive after the scale-up: %v %v", a, err)
	}
	// Idle: the window ending 10:00:30 scales web to zero.
	c.send(t, [3]float64{15, 0.6, 4}, [3]float64{22, 0, 4}, [3]float64{25, 0, 4}, [3]float64{32, 0, 0})
	if next() {
		t.Fatal("the stream did not turn inactive on the scale to zero")
	}
	c.metricValue(t, 0)

	// What KEDA gets wrong is refused with why.
	_, err = c.client.GetMetricSpec(ctx(t), ref(""))
	wantStatus(t, err, codes.InvalidArgument, "ScaledObject `shop/web-consumer`: metadata has no `target` (the Conclave target it follows)")
	_, err = c.client.IsActive(ctx(t), ref("nope"))
	wantStatus(t, err, codes.NotFound, "ScaledObject `shop/web-consumer`: target `nope` is not in policy `keda`")
	_, err = c.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref("batch"), MetricName: "s0-conclave-replicas-batch"})
	wantStatus(t, err, codes.FailedPrecondition, "ScaledObject `shop/web-consumer`: policy `keda` does not give target `batch` to the scaler agent")
	_, err = c.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: ref("web"), MetricName: "s0-cpu"})
	wantStatus(t, err, codes.InvalidArgument, "ScaledObject `shop/web-consumer`: unknown metric `s0-cpu` (this ScaledObject's metric is `conclave-replicas-web`)")
	_, err = c.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{MetricName: "s0-conclave-replicas-web"})
	wantStatus(t, err, codes.InvalidArgument, "GetMetricsRequest has no scaledObjectRef")

	c.finish(t)
	actions, err := os.ReadFile(filepath.Join(c.dir, "actions.log"))
	if err != nil || !strings.Contains(string(actions), "scale to 4 replicas") || !strings.Contains(string(actions), "scale to 0 replicas") {
		t.Fatalf("the actuator log: %q %v", actions, err)
	}
}

func TestShadowModeAnswersTheReactiveValueAndRecordsItsOwn(t *testing.T) {
	c := start(t, "tests/fixtures/keda/policy-shadow.yaml")
	c.send(t, [3]float64{0, 0.9, 2}, [3]float64{5, 0.9, 2}, [3]float64{12, 0.9, 4})
	c.metricValue(t, 4)
	c.waitLine(t, "")
	found := false
	deadline := time.Now().Add(30 * time.Second)
	for !found && time.Now().Before(deadline) {
		for _, l := range c.seen {
			if strings.Contains(l, "ScaledObject `shop/web-consumer`: shadow: answered 4 for `web` (reactive), would have answered 4 (d-scaler-web-1795946410000)") {
				found = true
			}
		}
		select {
		case l, ok := <-c.lines:
			if ok {
				c.seen = append(c.seen, l)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !found {
		t.Fatalf("no shadow record on stderr: %q", c.seen)
	}
	c.finish(t)
	// Nothing was carried out in shadow mode.
	actions, _ := os.ReadFile(filepath.Join(c.dir, "actions.log"))
	if strings.TrimSpace(string(actions)) != "" {
		t.Fatalf("shadow mode carried something out: %q", actions)
	}
}
