package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "60")
	require.NoError(t, c.Start())
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return c
}

// TestDownSignalsOnlyTheProcessUpStarted: a pid file whose PID now names
// another process (up died, the PID was reused) must not get that process
// killed; the process up started is stopped.
func TestDownSignalsOnlyTheProcessUpStarted(t *testing.T) {
	other := startSleep(t)
	dir := t.TempDir()
	// What up wrote for a process that has exited since: its PID, and the
	// start time of that process, not of the one holding the PID now.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(other.Process.Pid)+" 1\n"), 0o644))
	err := down(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not the process")
	assert.NoError(t, other.Process.Signal(syscall.Signal(0)), "the other process is alive")

	mine := exec.Command("sleep", "60")
	require.NoError(t, mine.Start())
	reaped := make(chan struct{})
	go func() { _ = mine.Wait(); close(reaped) }() // so down sees it gone
	t.Cleanup(func() { _ = mine.Process.Kill(); <-reaped })
	require.NoError(t, writePidFile(filepath.Join(dir, "pid"), mine.Process.Pid))
	require.NoError(t, down(dir))
}
