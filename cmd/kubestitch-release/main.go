// Command kubestitch-release builds what a Kubestitch release ships, with
// Go alone (no container engine): the distribution image as an OCI image
// layout, its push to a registry, and the release's archives, checksums
// and SBOMs. The Makefile's image, push and release targets call it.
//
//	kubestitch-release name                      the image reference of this version
//	kubestitch-release image [-out dist/oci] [-platforms linux/amd64,linux/arm64] [-version V]
//	kubestitch-release push [-layout dist/oci] [IMAGE]
//	kubestitch-release release -version V [-out dist/release]
//
// The version lives in builder-config.yaml (dist.version); -version
// overrides it for a test release. Every time in an artifact is the
// commit's (SOURCE_DATE_EPOCH when set), so one commit gives the same
// bytes run after run.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/kubestitch/kubestitch/internal/ociimage"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "name":
		err = runName(args)
	case "image":
		err = runImage(args)
	case "push":
		err = runPush(args)
	case "release":
		err = runRelease(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubestitch-release:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kubestitch-release name | image [-out DIR] [-platforms P,...] [-version V] | push [-layout DIR] [IMAGE] | release -version V [-out DIR]")
	os.Exit(2)
}

func runName(args []string) error {
	fs := flag.NewFlagSet("name", flag.ExitOnError)
	version := fs.String("version", "", "the version (default: builder-config.yaml's)")
	_ = fs.Parse(args)
	src, err := loadSource(*version)
	if err != nil {
		return err
	}
	fmt.Println(src.imageRef())
	return nil
}

func runImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	out := fs.String("out", "dist/oci", "the OCI image layout to write (replaced)")
	platforms := fs.String("platforms", strings.Join(imagePlatforms, ","), "the image's platforms")
	version := fs.String("version", "", "the version (default: builder-config.yaml's)")
	_ = fs.Parse(args)
	src, err := loadSource(*version)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubestitch-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins, err := src.buildAll(strings.Split(*platforms, ","), work)
	if err != nil {
		return err
	}
	digest, err := src.writeImage(bins, *out)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s@%s\n", *out, src.imageRef(), digest)
	return nil
}

func runPush(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	dir := fs.String("layout", "dist/oci", "the OCI image layout to push")
	_ = fs.Parse(args)
	ref := fs.Arg(0)
	if ref == "" {
		// The name the layout was built with: its version, not the
		// checkout's (make image VERSION=... then make push).
		var err error
		if ref, err = ociimage.LayoutName(*dir); err != nil {
			return err
		}
		if ref == "" {
			return fmt.Errorf("%s has no name: say IMAGE=registry/repository:tag", *dir)
		}
	}
	pushed, err := push(*dir, ref)
	if err != nil {
		return err
	}
	// First line: what was pushed; then each platform's manifest, for
	// attestations that name one platform.
	repo := ref[:strings.LastIndex(ref, ":")]
	fmt.Printf("%s@%s\n", ref, pushed.Digest)
	platforms := make([]string, 0, len(pushed.Platforms))
	for p := range pushed.Platforms {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	for _, p := range platforms {
		fmt.Printf("%s %s@%s\n", p, repo, pushed.Platforms[p])
	}
	return nil
}

func runRelease(args []string) error {
	fs := flag.NewFlagSet("release", flag.ExitOnError)
	out := fs.String("out", "dist/release", "the directory to write the release to (replaced)")
	version := fs.String("version", "", "the version to release (default: builder-config.yaml's)")
	_ = fs.Parse(args)
	src, err := loadSource(*version)
	if err != nil {
		return err
	}
	return src.release(*out)
}
