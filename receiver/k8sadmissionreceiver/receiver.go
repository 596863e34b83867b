package k8sadmissionreceiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

// maxBatch bounds the review spans sent to the pipeline in one call.
const maxBatch = 512

// admissionReceiver serves a validating admission webhook that allows
// everything and turns each review into a span in the write request's own
// trace. The data path: HTTPS request -> review -> queue -> span -> next.
// The answer never waits for the pipeline.
type admissionReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Traces
	tel     *metadata.TelemetryBuilder
	obsrecv *receiverhelper.ObsReport
	// propagator reads the traceparent kube-apiserver sends with the call.
	propagator propagation.TextMapPropagator

	queue chan reviewSpan
	// inFlight holds a token per review being read (max_concurrent_reviews).
	inFlight chan struct{}
	server   *http.Server
	// addr is where the server listens, once started.
	addr   string
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newAdmissionReceiver(set receiver.Settings, cfg *Config, next consumer.Traces) (*admissionReceiver, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "https", ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	return &admissionReceiver{
		cfg: cfg, set: set, next: next, tel: tel, obsrecv: obs,
		propagator: propagation.TraceContext{},
		queue:      make(chan reviewSpan, cfg.QueueSize),
		inFlight:   make(chan struct{}, cfg.MaxConcurrentReviews),
	}, nil
}

func (r *admissionReceiver) Start(ctx context.Context, host component.Host) error {
	ln, err := r.cfg.ServerConfig.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("k8sadmission: listen on %s: %w", r.cfg.ServerConfig.NetAddr.Endpoint, err)
	}
	r.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc(r.cfg.Path, r.handle)
	r.server, err = r.cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings, mux)
	if err != nil {
		ln.Close()
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.sendLoop(runCtx) })
	r.wg.Go(func() {
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
	r.set.Logger.Info("k8sadmission: serving the validating webhook", zap.String("endpoint", ln.Addr().String()), zap.String("path", r.cfg.Path))
	return nil
}

func (r *admissionReceiver) Shutdown(ctx context.Context) error {
	var err error
	if r.server != nil {
		err = r.server.Shutdown(ctx)
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	return err
}

// handle answers one review: allowed, always, at once. A bad request gets
// a 400 with the reason and is counted; the span of a good one is queued,
// or dropped and counted when the queue is full.
func (r *admissionReceiver) handle(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	select {
	case r.inFlight <- struct{}{}:
		defer func() { <-r.inFlight }()
	default:
		r.tel.K8sadmissionReviewsBad.Add(req.Context(), 1, metric.WithAttributes(attribute.String("reason", "too_many_concurrent")))
		http.Error(w, "k8sadmission: too many reviews at once", http.StatusTooManyRequests)
		return
	}
	if r.cfg.ServerConfig.MaxRequestBodySize > 0 {
		req.Body = http.MaxBytesReader(w, req.Body, r.cfg.ServerConfig.MaxRequestBodySize)
	}
	rv, err := readReview(req)
	if err != nil {
		var bad *badReview
		reason := reasonNotJSON
		if errors.As(err, &bad) {
			reason = bad.reason
		}
		r.tel.K8sadmissionReviewsBad.Add(req.Context(), 1, metric.WithAttributes(attribute.String("reason", reason)))
		r.set.Logger.Info("k8sadmission: bad review request answered 400", zap.String("reason", reason), zap.String("remote", req.RemoteAddr), zap.Error(err))
		http.Error(w, "k8sadmission: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(allowed(rv.requestUID))
	rv.user = userAttribute(r.cfg.User, rv.user)
	r.tel.K8sadmissionReviews.Add(req.Context(), 1, metric.WithAttributes(attribute.String("operation", rv.operation)))
	parent := trace.SpanContextFromContext(r.propagator.Extract(context.Background(), propagation.HeaderCarrier(req.Header)))
	select {
	case r.queue <- reviewSpan{review: rv, parent: parent, start: start, end: time.Now()}:
	default:
		r.tel.K8sadmissionSpansDropped.Add(req.Context(), 1, metric.WithAttributes(attribute.String("reason", "queue_full")))
		r.set.Logger.Warn("k8sadmission: review span dropped, the queue to the pipeline is full; raise queue_size or look at the pipeline", zap.Int("queue_size", r.cfg.QueueSize))
	}
}

// userAttribute is what of the requesting user's name goes into the span,
// as Config.User says.
func userAttribute(setting, name string) string {
	switch {
	case name == "" || setting == UserNone:
		return ""
	case setting == UserHash:
		sum := sha256.Sum256([]byte(name))
		return "sha256:" + hex.EncodeToString(sum[:8])
	case setting == UserAccounts && !strings.HasPrefix(name, "system:"):
		return PersonUser
	}
	return name
}

// sendLoop sends queued review spans to the pipeline in batches; at
// shutdown it sends what is left.
func (r *admissionReceiver) sendLoop(ctx context.Context) {
	batch := make([]reviewSpan, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			for batch = r.fill(batch[:0]); len(batch) > 0; batch = r.fill(batch[:0]) {
				r.send(batch)
			}
			return
		case s := <-r.queue:
			batch = r.fill(append(batch[:0], s))
			r.send(batch)
		}
	}
}

// fill adds what is queued to batch without waiting, up to maxBatch.
func (r *admissionReceiver) fill(batch []reviewSpan) []reviewSpan {
	for len(batch) < maxBatch {
		select {
		case s := <-r.queue:
			batch = append(batch, s)
		default:
			return batch
		}
	}
	return batch
}

func (r *admissionReceiver) send(batch []reviewSpan) {
	if len(batch) == 0 {
		return
	}
	td := ptrace.NewTraces()
	appendSpans(td, batch)
	ctx := r.obsrecv.StartTracesOp(context.Background())
	err := r.next.ConsumeTraces(ctx, td)
	r.obsrecv.EndTracesOp(ctx, "admission", len(batch), err)
	if err != nil {
		r.tel.K8sadmissionSpansDropped.Add(ctx, int64(len(batch)), metric.WithAttributes(attribute.String("reason", "refused")))
		r.set.Logger.Warn("k8sadmission: the pipeline refused review spans; they are dropped", zap.Int("spans", len(batch)), zap.Error(err))
	}
}
