package k8swatchreceiver

import (
	"context"
	"os"
	"sync"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaderElector runs lead only while this replica holds the Lease, and goes
// back to campaigning when it loses it, until its context ends. Its lock
// keeps one lead running at a time, even across terms (a term's lead may
// outlive it briefly).
type leaderElector struct {
	cfg    LeaderElectionConfig
	logger *zap.Logger
	mu     sync.Mutex
}

func newLeaderElector(cfg LeaderElectionConfig, logger *zap.Logger) *leaderElector {
	return &leaderElector{cfg: cfg, logger: logger}
}

// run campaigns until ctx ends, running lead while leading.
func (l *leaderElector) run(ctx context.Context, kc kubernetes.Interface, lead func(context.Context)) {
	le := l.cfg
	id := le.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	for ctx.Err() == nil {
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1ObjectMeta(le.LeaseName, le.LeaseNamespace),
			Client:     kc.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		}
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            le.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					l.logger.Info("k8swatch: leading, watching", zap.String("identity", id))
					l.mu.Lock()
					defer l.mu.Unlock()
					lead(lctx)
				},
				OnStoppedLeading: func() {
					l.logger.Info("k8swatch: lease lost, stopped watching", zap.String("identity", id))
				},
			},
		})
	}
}

func metav1ObjectMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace}
}
