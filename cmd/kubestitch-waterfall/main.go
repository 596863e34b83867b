// Command kubestitch-waterfall prints the traces of a file exporter's OTLP
// JSON output as text waterfalls.
//
//	kubestitch-waterfall [-root deployment.rollout] [-width 40] [-full] FILE
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubestitch/kubestitch/internal/waterfall"
)

func main() {
	root := flag.String("root", "", "only traces whose root span has this name")
	width := flag.Int("width", 40, "width of the bars")
	minSpans := flag.Int("min-spans", 2, "only traces with at least this many spans")
	full := flag.Bool("full", false, "print the internals of kube-apiserver requests too")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kubestitch-waterfall [-root NAME] [-width N] [-min-spans N] FILE")
		os.Exit(2)
	}
	td, err := waterfall.ReadTraces(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, t := range waterfall.Build(td) {
		if len(t.Spans) < *minSpans || (*root != "" && (t.Root == nil || t.Root.Name != *root)) {
			continue
		}
		o := waterfall.Options{Width: *width, Collapse: waterfall.CollapseAPIRequests}
		if *full {
			o.Collapse = nil
		}
		waterfall.Render(os.Stdout, t, o)
		fmt.Println()
	}
}
