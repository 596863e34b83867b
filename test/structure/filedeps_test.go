package structure

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/localcluster"
)

// components are the packages whose files are split by stage; within each,
// a file may use what files before it declare, never the other way round.
var components = []string{
	"receiver/k8swatchreceiver",
	"receiver/k8sadmissionreceiver",
	"processor/k8sstitchprocessor",
	"processor/k8snamespaceprocessor",
}

// TestComponentFilesDependOneWay: no cycle between the files of a
// component package, counting a file's use of a package-level name (type,
// func, var, const) another file declares (a method's receiver aside: a
// type's methods may live in the files of their stages). A cycle means two concerns are one knot again (the
// tracker that needed its span builders that needed the tracker).
func TestComponentFilesDependOneWay(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	for _, pkg := range components {
		t.Run(pkg, func(t *testing.T) {
			deps := fileDeps(t, filepath.Join(root, pkg))
			if cycle := findCycle(deps); cycle != nil {
				t.Errorf("%s: files depend on each other in a cycle: %s", pkg, strings.Join(cycle, " -> "))
			}
		})
	}
}

// fileDeps maps each non-test, non-generated file of dir to the files
// whose package-level declarations it uses.
func fileDeps(t *testing.T, dir string) map[string]map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	declaredIn := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, "generated_") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		files[name] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declaredIn[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declaredIn[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declaredIn[n.Name] = name
						}
					}
				}
			}
		}
	}
	deps := map[string]map[string]bool{}
	for name, f := range files {
		deps[name] = map[string]bool{}
		// Not this package's top-level names: names after a dot (fields,
		// methods, another package's), field and parameter names, keys
		// of composite literals, and within a function the names it
		// declares itself (parsing alone cannot tell a shadowed name).
		skip := map[*ast.Ident]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				skip[n.Sel] = true
			case *ast.Field:
				for _, id := range n.Names {
					skip[id] = true
				}
			case *ast.CompositeLit:
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if id, ok := kv.Key.(*ast.Ident); ok {
							skip[id] = true
						}
					}
				}
			case *ast.FuncDecl:
				skipLocals(n, skip)
				// A method may live in the file of its stage, not of its
				// type (the processor's learn, place, release): its
				// receiver is no dependency.
				if n.Recv != nil {
					ast.Inspect(n.Recv, func(r ast.Node) bool {
						if id, ok := r.(*ast.Ident); ok {
							skip[id] = true
						}
						return true
					})
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok || skip[id] || id.Name == "_" {
				return true
			}
			if other, ok := declaredIn[id.Name]; ok && other != name {
				deps[name][other] = true
				if os.Getenv("FILEDEPS_WHY") != "" {
					t.Logf("%s -> %s: %s at %s", name, other, id.Name, fset.Position(id.Pos()))
				}
			}
			return true
		})
	}
	return deps
}

// skipLocals marks every use, within fn, of a name fn declares itself
// (parameters, results, :=, var, range), so that a local named like a
// top-level declaration of another file is not taken for it.
func skipLocals(fn *ast.FuncDecl, skip map[*ast.Ident]bool) {
	local := map[string]bool{}
	add := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, id := range f.Names {
				local[id.Name] = true
			}
		}
	}
	add(fn.Recv)
	add(fn.Type.Params)
	add(fn.Type.Results)
	ast.Inspect(fn, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, e := range n.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						local[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				local[id.Name] = true
			}
		case *ast.FuncLit:
			add(n.Type.Params)
			add(n.Type.Results)
		}
		return true
	})
	ast.Inspect(fn, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && local[id.Name] {
			skip[id] = true
		}
		return true
	})
}

// findCycle is one cycle of the graph, as the files along it, or nil.
func findCycle(deps map[string]map[string]bool) []string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(f string) []string {
		state[f] = open
		stack = append(stack, f)
		next := make([]string, 0, len(deps[f]))
		for g := range deps[f] {
			next = append(next, g)
		}
		sort.Strings(next)
		for _, g := range next {
			switch state[g] {
			case open:
				for i, s := range stack {
					if s == g {
						return append(append([]string{}, stack[i:]...), g)
					}
				}
			case unseen:
				if c := visit(g); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[f] = done
		return nil
	}
	names := make([]string, 0, len(deps))
	for f := range deps {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if state[f] == unseen {
			if c := visit(f); c != nil {
				return c
			}
		}
	}
	return nil
}
