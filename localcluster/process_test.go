package localcluster

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcessLogsAndReportsItsExit(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	require.NoError(t, os.WriteFile(log, []byte("before\n"), 0o644))
	p, err := StartProcess(ProcessOptions{Name: "echo", Bin: "/bin/sh", Args: []string{"-c", "echo hello; echo oops >&2; exit 3"}, Log: log, AppendLog: true})
	require.NoError(t, err)
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no exit reported")
	}
	assert.True(t, p.Exited())
	assert.ErrorContains(t, p.Err(), "exit status 3")
	assert.Equal(t, "before\nhello\noops", LogTail(log, 10), "appended, stdout and stderr")
	assert.NoError(t, p.Stop(syscall.SIGTERM, time.Second), "an exited process is left alone")

	p, err = StartProcess(ProcessOptions{Name: "echo", Bin: "/bin/sh", Args: []string{"-c", "echo again"}, Log: log})
	require.NoError(t, err)
	<-p.Done()
	assert.Equal(t, "again", LogTail(log, 10), "truncated without AppendLog")
}

func TestProcessStopsItsGroupWithinGrace(t *testing.T) {
	dir := t.TempDir()
	// The shell's child would outlive a signal sent to the shell alone.
	p, err := StartProcess(ProcessOptions{Name: "sleeper", Bin: "/bin/sh", Args: []string{"-c", "sleep 60 & wait"}, Log: filepath.Join(dir, "log")})
	require.NoError(t, err)
	pgid, err := syscall.Getpgid(p.PID())
	require.NoError(t, err)
	assert.Equal(t, p.PID(), pgid, "it leads a group of its own")
	start := time.Now()
	require.NoError(t, p.Stop(syscall.SIGTERM, 20*time.Second))
	assert.Less(t, time.Since(start), 10*time.Second, "SIGTERM ended it, not the grace period")
	assert.True(t, p.Exited())
}

func TestProcessIsKilledAfterGrace(t *testing.T) {
	p, err := StartProcess(ProcessOptions{Name: "stubborn", Bin: "/bin/sh", Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`}, Log: filepath.Join(t.TempDir(), "log")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return LogTail(p.Log, 1) == "ready" }, 10*time.Second, 20*time.Millisecond, "the trap is set")
	err = p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	assert.ErrorIs(t, err, ErrKilled)
	assert.ErrorContains(t, err, "stubborn")
	assert.True(t, p.Exited())
}

func TestProcessSameGroupSignalsItAlone(t *testing.T) {
	p, err := StartProcess(ProcessOptions{Name: "one", Bin: "sleep", Args: []string{"60"}, Log: filepath.Join(t.TempDir(), "log"), SameGroup: true})
	require.NoError(t, err)
	pgid, err := syscall.Getpgid(p.PID())
	require.NoError(t, err)
	assert.Equal(t, syscall.Getpgrp(), pgid, "in this process's group")
	require.NoError(t, p.Stop(syscall.SIGTERM, 10*time.Second))
}
