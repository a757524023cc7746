// Package storm measures a boot storm: it records what one node's boot
// asks of its NFS server (a proxy between the node and the server that
// reads every NFSv4 COMPOUND and its reply), and replays that working set
// with many concurrent in-process clients against a server on loopback,
// over NFSv4.1 or, for an image file, over HTTP.
package storm

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// Op is one recorded COMPOUND, reduced to what a replay sends again: its
// main operation, the path it works on (from the server's pseudo root),
// and for READ the byte range.
type Op struct {
	Op    string `json:"op"`             // LOOKUP, OPEN, CLOSE, GETATTR, ACCESS, READDIR, READLINK, READ, or SEQUENCE for any other
	Path  string `json:"path,omitempty"` // "" when the handle was never seen named
	Off   uint64 `json:"off,omitempty"`
	Count uint32 `json:"count,omitempty"`
	Claim string `json:"claim,omitempty"` // OPEN: "fh" for CLAIM_FH (the path is the file), else CLAIM_NULL
	// At is when the node sent the call, in seconds from the recording's
	// first call: a paced replay (Options.Pace) waits for it.
	At float64 `json:"at,omitempty"`
}

// WorkingSet is a recorded boot: every COMPOUND in order, counts by
// operation, and the bytes read from each file.
type WorkingSet struct {
	Mode    string           `json:"mode"`    // what booted: tree, nfs-image
	RPCs    int              `json:"rpcs"`    // COMPOUNDs sent after the session was made
	Ops     map[string]int   `json:"ops"`     // every operation, by name, SEQUENCE included
	Bytes   int64            `json:"bytes"`   // READ payload the server sent
	Files   map[string]int64 `json:"files"`   // bytes read by path
	Unnamed int              `json:"unnamed"` // COMPOUNDs on handles never seen named
	Calls   []Op             `json:"calls"`
	// Each COMPOUND's time at the recorder, from its call passing on to
	// the server to its reply: the server's latency as the node saw it,
	// less the node's own network.
	CallsTimed int64             `json:"calls_timed,omitempty"`
	CallP50    float64           `json:"call_p50_seconds,omitempty"`
	CallP99    float64           `json:"call_p99_seconds,omitempty"`
	Extra      map[string]string `json:"extra,omitempty"`
}

// maxCalls bounds a working set (a boot sends tens of thousands).
const maxCalls = 2_000_000

// maxAt bounds a call's time in a recording, in seconds: a day.
const maxAt = 86400

// ReadWorkingSet decodes a working set and checks it.
func ReadWorkingSet(r io.Reader) (*WorkingSet, error) {
	var ws WorkingSet
	dec := json.NewDecoder(io.LimitReader(r, 512<<20))
	if err := dec.Decode(&ws); err != nil {
		return nil, fmt.Errorf("working set: %w", err)
	}
	if len(ws.Calls) == 0 || len(ws.Calls) > maxCalls {
		return nil, fmt.Errorf("working set: %d calls; a recorded boot has between 1 and %d", len(ws.Calls), maxCalls)
	}
	for i, c := range ws.Calls {
		switch c.Op {
		case "LOOKUP", "OPEN", "CLOSE", "GETATTR", "ACCESS", "READDIR", "READLINK", "READ", "SEQUENCE":
		default:
			return nil, fmt.Errorf("working set: calls[%d]: operation %q is not one a replay sends", i, c.Op)
		}
		if c.Claim != "" && (c.Claim != "fh" || c.Op != "OPEN") {
			return nil, fmt.Errorf("working set: calls[%d]: claim %q; only an OPEN has one, \"fh\"", i, c.Claim)
		}
		if c.Count > 1<<20 {
			return nil, fmt.Errorf("working set: calls[%d]: READ of %d bytes; at most 1 MiB", i, c.Count)
		}
		if !(c.At >= 0 && c.At <= maxAt) { // NaN too
			return nil, fmt.Errorf("working set: calls[%d]: at %v s; from 0 to %d", i, c.At, maxAt)
		}
		if len(c.Path) > 4096 {
			return nil, fmt.Errorf("working set: calls[%d]: a path of %d bytes", i, len(c.Path))
		}
	}
	return &ws, nil
}

// Write encodes the working set.
func (ws *WorkingSet) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(ws)
}

// Summary is the working set's figures, without its calls.
func (ws *WorkingSet) Summary() string {
	type kv struct {
		k string
		v int
	}
	var ops []kv
	for k, v := range ws.Ops {
		ops = append(ops, kv{k, v})
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].v > ops[j].v || ops[i].v == ops[j].v && ops[i].k < ops[j].k })
	s := fmt.Sprintf("%s: %d RPCs, %d bytes read from %d files, %d on unnamed handles; ops:", ws.Mode, ws.RPCs, ws.Bytes, len(ws.Files), ws.Unnamed)
	for i, o := range ops {
		if i == 10 {
			break
		}
		s += fmt.Sprintf(" %s %d", o.k, o.v)
	}
	return s
}
