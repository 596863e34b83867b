package k8swatchreceiver

import (
	"strconv"
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// podSteps emits the startup steps of a pod that became true since the last
// observation, each once: schedule, initialize, container start, ready.
func podSteps(st *objectState, at time.Time, history bool) []fragmentSpan {
	p := st.view.pod
	var out []fragmentSpan
	when := func(objectTime time.Time) (time.Time, string) {
		if history && !objectTime.IsZero() {
			return objectTime, fragment.TimeSourceObject
		}
		return at, fragment.TimeSourceWatch
	}
	nodeAgent := nodeAgentOf(&st.view)
	if !p.scheduled {
		return nil
	}
	disc := st.Trigger
	if !st.emitted(fragment.PhasePodSchedule + "/" + disc) {
		end, src := when(p.scheduledAt)
		svc := p.scheduler
		if svc == "" || svc == "default-scheduler" {
			svc = "kube-scheduler"
		}
		out = append(out, stepSpan(st, fragment.PhasePodSchedule, disc, st.TriggerTime, end, src, svc, plainStep))
		st.StepEnd = notBefore(end, st.TriggerTime)
	}
	if p.hasInit && p.initialized && !st.emitted(fragment.PhasePodInitialize+"/"+disc) {
		end, src := when(p.initializedAt)
		out = append(out, stepSpan(st, fragment.PhasePodInitialize, disc, st.StepEnd, end, src, nodeAgent, plainStep))
		st.StepEnd = notBefore(end, st.StepEnd)
	}
	lastStart := st.StepEnd
	allRunning := len(p.containers) > 0
	for i := range p.containers {
		c := &p.containers[i]
		if !c.running {
			allRunning = false
			continue
		}
		cdisc := c.name + "/" + strconv.Itoa(int(c.restarts))
		if st.emitted(fragment.PhaseContainerStart + "/" + cdisc) {
			continue
		}
		end, src := when(c.startedAt)
		s := stepSpan(st, fragment.PhaseContainerStart, cdisc, st.StepEnd, end, src, nodeAgent, &stepPart{container: c.name, image: c.image})
		out = append(out, s)
		if s.end.After(lastStart) {
			lastStart = s.end
		}
	}
	if p.ready && !st.emitted(fragment.PhasePodReady+"/"+disc) {
		start := lastStart
		if !allRunning {
			start = st.StepEnd
		}
		end, src := when(p.readyAt)
		out = append(out, stepSpan(st, fragment.PhasePodReady, disc, start, end, src, nodeAgent, plainStep))
	}
	return out
}
