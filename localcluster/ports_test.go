package localcluster

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// picksPerProcess is how many ports each side of the tests picks: about
// what a whole test/e2e run picks, and enough that independent random
// picks from the ~22,000 ports below the ephemeral range would repeat.
const picksPerProcess = 1500

// TestFreePortNeverRepeatsInProcess: a port picked for a component that
// has not bound it yet (kube-apiserver's is picked before the collectors
// start) must not be handed to another component.
func TestFreePortNeverRepeatsInProcess(t *testing.T) {
	seen := map[int]bool{}
	for range picksPerProcess {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("FreePort handed out port %d twice", p)
		}
		seen[p] = true
	}
}

// TestFreePortNeverSharedAcrossProcesses: test packages run in parallel
// processes, and a port one of them picked must not be picked by another.
func TestFreePortNeverSharedAcrossProcesses(t *testing.T) {
	if os.Getenv("LOCALCLUSTER_PICK_PORTS") == "1" {
		for range picksPerProcess {
			p, err := FreePort()
			if err != nil {
				os.Exit(2)
			}
			os.Stdout.WriteString(strconv.Itoa(p) + "\n")
		}
		// Hold the reservations until the parent has picked its own.
		_, _ = os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestFreePortNeverSharedAcrossProcesses$")
	child.Env = append(os.Environ(), "LOCALCLUSTER_PICK_PORTS=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints its ports, then holds them until its stdin closes.
	childPorts := map[int]bool{}
	sc := bufio.NewScanner(stdout)
	for i := 0; i < picksPerProcess && sc.Scan(); i++ {
		p, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		childPorts[p] = true
	}
	if len(childPorts) != picksPerProcess {
		stdin.Close()
		_ = child.Wait()
		t.Fatalf("child picked %d distinct ports, want %d", len(childPorts), picksPerProcess)
	}
	var shared []int
	for range picksPerProcess {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if childPorts[p] {
			shared = append(shared, p)
		}
	}
	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if len(shared) > 0 {
		t.Errorf("%d ports picked by both processes, e.g. %d", len(shared), shared[0])
	}
}
