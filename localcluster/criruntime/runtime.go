// Package criruntime serves a container runtime for a real kubelet on a
// machine without a container engine: the CRI fakes of k8s.io/cri-client,
// on a gRPC server instrumented like containerd's (otelgrpc server handler,
// W3C propagation, its own service.name), so its server spans continue the
// kubelet's CRI client spans. Image pulls, sandbox and container starts
// take a configured time, so their bars are visible in a waterfall.
package criruntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"
)

// ServiceName is the service.name of the runtime's spans.
const ServiceName = "cri-runtime"

// Delays are how long the slow CRI calls take.
type Delays struct {
	PullImage       time.Duration
	RunPodSandbox   time.Duration
	CreateContainer time.Duration
	StartContainer  time.Duration
}

// DefaultDelays give each step of a pod start a bar of its own.
var DefaultDelays = Delays{PullImage: 300 * time.Millisecond, RunPodSandbox: 150 * time.Millisecond, CreateContainer: 50 * time.Millisecond, StartContainer: 100 * time.Millisecond}

// Options of a Runtime.
type Options struct {
	// Socket is the unix socket path to serve on.
	Socket string
	// TracingEndpoint is the OTLP gRPC host:port the runtime's spans go to;
	// empty turns tracing off.
	TracingEndpoint string
	Delays          Delays
	Faults          Faults
}

// Faults make the runtime fail as a real one does for a broken image, so
// stuck pod starts can be reproduced: pulls of an image refused, or its
// containers exiting non-zero right after they start (a crash loop).
type Faults struct {
	// PullFails are images whose pulls fail (not found).
	PullFails []string
	// Exits are images whose containers exit with code 1 ExitAfter after
	// they start; 0: before StartContainer returns, so the kubelet never
	// sees them running (and never marks the pod Ready).
	Exits     []string
	ExitAfter time.Duration
}

// Runtime is a running fake CRI runtime and image service.
type Runtime struct {
	*fake.RemoteRuntime
	delays Delays
	faults Faults
	server *grpc.Server
	tp     *sdktrace.TracerProvider
	done   chan struct{}
}

// Start serves the runtime on opts.Socket.
func Start(opts Options) (*Runtime, error) {
	r := &Runtime{RemoteRuntime: fake.NewFakeRemoteRuntime(), delays: opts.Delays, faults: opts.Faults, done: make(chan struct{})}
	var serverOpts []grpc.ServerOption
	if opts.TracingEndpoint != "" {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(opts.TracingEndpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("criruntime: OTLP exporter: %w", err)
		}
		r.tp = sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(ServiceName))),
		)
		serverOpts = append(serverOpts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(r.tp),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)))
	}
	r.server = grpc.NewServer(serverOpts...)
	runtimeapi.RegisterRuntimeServiceServer(r.server, r)
	runtimeapi.RegisterImageServiceServer(r.server, r)

	// What the kubelet needs of a runtime before it runs a pod: ready
	// conditions, a cgroup driver, image filesystem figures, and images
	// with a size (a zero size fails every pod with ImageInspectError).
	rs := r.RuntimeService
	rs.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}
	rs.FakeLinuxConfiguration = &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}
	is := r.ImageService
	is.SetFakeImageSize(16 << 20)
	fsDir := filepath.Dir(opts.Socket)
	usage := []*runtimeapi.FilesystemUsage{{
		Timestamp:  time.Now().UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: fsDir},
		UsedBytes:  &runtimeapi.UInt64Value{Value: 1 << 20},
		InodesUsed: &runtimeapi.UInt64Value{Value: 16},
	}}
	is.SetFakeFilesystemUsage(usage)
	is.SetFakeContainerFilesystemUsage(usage)

	_ = os.Remove(opts.Socket)
	l, err := net.Listen("unix", opts.Socket)
	if err != nil {
		r.shutdownTracing()
		return nil, fmt.Errorf("criruntime: listen on %s: %w", opts.Socket, err)
	}
	go func() {
		defer close(r.done)
		_ = r.server.Serve(l)
	}()
	return r, nil
}

// Stop stops serving and flushes the runtime's spans.
func (r *Runtime) Stop() {
	r.server.Stop()
	<-r.done
	r.shutdownTracing()
}

func (r *Runtime) shutdownTracing() {
	if r.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.tp.Shutdown(ctx)
}

func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PullImage takes Delays.PullImage.
func (r *Runtime) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	if err := pause(ctx, r.delays.PullImage); err != nil {
		return nil, err
	}
	if slices.Contains(r.faults.PullFails, req.GetImage().GetImage()) {
		return nil, status.Errorf(codes.NotFound, "failed to resolve reference %q: not found", req.GetImage().GetImage())
	}
	return r.RemoteRuntime.PullImage(ctx, req)
}

// RunPodSandbox takes Delays.RunPodSandbox.
func (r *Runtime) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if err := pause(ctx, r.delays.RunPodSandbox); err != nil {
		return nil, err
	}
	return r.RemoteRuntime.RunPodSandbox(ctx, req)
}

// CreateContainer takes Delays.CreateContainer and, unlike the fake it
// wraps, reports an absolute log path. With an empty one the kubelet's
// log manager globs its working directory on container removal and
// deletes what it finds.
func (r *Runtime) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if err := pause(ctx, r.delays.CreateContainer); err != nil {
		return nil, err
	}
	resp, err := r.RemoteRuntime.CreateContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	logDir := req.GetSandboxConfig().GetLogDirectory()
	logPath := req.GetConfig().GetLogPath()
	if logDir == "" || logPath == "" || !filepath.IsAbs(logDir) {
		return nil, errors.New("criruntime: CreateContainer without an absolute sandbox log directory and a log path")
	}
	rs := r.RuntimeService
	rs.Lock()
	if c := rs.Containers[resp.ContainerId]; c != nil {
		c.LogPath = filepath.Join(logDir, logPath)
	}
	rs.Unlock()
	return resp, nil
}

// StartContainer takes Delays.StartContainer.
func (r *Runtime) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if err := pause(ctx, r.delays.StartContainer); err != nil {
		return nil, err
	}
	resp, err := r.RemoteRuntime.StartContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	rs := r.RuntimeService
	rs.Lock()
	c := rs.Containers[req.GetContainerId()]
	exits := c != nil && slices.Contains(r.faults.Exits, c.GetImage().GetImage())
	rs.Unlock()
	exit := func() {
		rs.Lock()
		defer rs.Unlock()
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.State, c.ExitCode, c.Reason = runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error"
			c.FinishedAt = time.Now().UnixNano()
		}
	}
	switch {
	case !exits:
	case r.faults.ExitAfter == 0:
		exit()
	default:
		time.AfterFunc(r.faults.ExitAfter, exit)
	}
	return resp, nil
}
