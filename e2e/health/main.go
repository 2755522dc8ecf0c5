// Command health judges a Kubernetes object the way the GitOps tools do, with their own code:
// Flux's kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute) and Argo CD's Lua
// health check run under gopher-lua, the Lua 5.1 interpreter Argo CD embeds. It reads one object
// as JSON on stdin and prints {"kstatus": {...}, "argocd": {...}} on stdout.
//
//	health --lua docs/argocd/health.lua < object.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type output struct {
	Kstatus verdict `json:"kstatus"`
	Argocd  verdict `json:"argocd"`
}

func main() {
	script := flag.String("lua", "", "the Argo CD health check (Lua) to run")
	flag.Parse()
	if *script == "" {
		fail("--lua is required")
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading the object: %v", err)
	}
	// As a client-go reader decodes it: integers stay int64.
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(input); err != nil {
		fail("reading the object: %v", err)
	}
	object := u.Object
	result, err := status.Compute(u)
	if err != nil {
		fail("kstatus: %v", err)
	}
	argocd, err := argocdHealth(*script, object)
	if err != nil {
		fail("argocd health: %v", err)
	}
	out := output{Kstatus: verdict{string(result.Status), result.Message}, Argocd: argocd}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing: %v", err)
	}
}

// argocdHealth runs the health script as Argo CD does: a fresh state with the safe standard
// libraries, the object as the global `obj` (numbers are float64, as in Argo CD), and the table
// the script returns read for its status and message.
func argocdHealth(path string, object map[string]interface{}) (verdict, error) {
	code, err := os.ReadFile(path)
	if err != nil {
		return verdict{}, err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(string(code)); err != nil {
		return verdict{}, err
	}
	returned, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return verdict{
		Status:  lua.LVAsString(returned.RawGetString("status")),
		Message: lua.LVAsString(returned.RawGetString("message")),
	}, nil
}

func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		// Argo CD's gopher-lua has only float64 numbers.
		return lua.LNumber(float64(v))
	case string:
		return lua.LString(v)
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "health: "+format+"\n", args...)
	os.Exit(1)
}
