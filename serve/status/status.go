// Package status tells which generation each node of an image last
// booted, and when, from the access log of the nginx block nroot pxe
// writes (nginx's combined format):
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// A node's boot is its segment's request (GET /nodes/NAME.img) after a
// generation's kernel or initramfs (GET /generations/N/vmlinuz) from the
// same address: iPXE fetches them in that order. Nodes booting at once
// from behind one address (NAT) cannot be told apart.
package status

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"nroot/serve/image"
	"nroot/serve/pxe"
)

// Node states.
const (
	Current   = "current"    // booted the generation it should
	Stale     = "stale"      // booted another one
	NeverSeen = "never-seen" // no boot in the log
)

// Node is one node's status.
type Node struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	// ExpectedGeneration is the generation it boots now: its pinned
	// one, or the published one.
	ExpectedGeneration int        `json:"expected_generation"`
	Pinned             bool       `json:"pinned"`
	BootedGeneration   int        `json:"booted_generation,omitempty"`
	BootedAt           *time.Time `json:"booted_at,omitempty"`
	BootedFrom         string     `json:"booted_from,omitempty"` // the client address nginx saw
	State              string     `json:"state"`
}

// Report is an image's nodes' status.
type Report struct {
	Image               string `json:"image"`
	PublishedGeneration int    `json:"published_generation"`
	AccessLog           string `json:"access_log"`
	Nodes               []Node `json:"nodes"`
	Current             int    `json:"current"`
	Stale               int    `json:"stale"`
	NeverSeen           int    `json:"never_seen"`
	// SkippedLines are log lines not in the combined format.
	SkippedLines int `json:"skipped_lines"`
}

// Request is one line of the access log.
type Request struct {
	Addr   string
	Time   time.Time
	Method string
	Path   string
	Status int
}

// maxLine bounds a log line; longer ones are skipped.
const maxLine = 16 << 10

// ErrFormat: a line is not in nginx's combined format.
var ErrFormat = errors.New("not an nginx combined log line")

// ParseLine reads one line of the combined format.
func ParseLine(line string) (Request, error) {
	var r Request
	if len(line) > maxLine {
		return r, ErrFormat
	}
	addr, rest, ok := strings.Cut(line, " ")
	if !ok || addr == "" {
		return r, ErrFormat
	}
	r.Addr = addr
	// $remote_user, before the time, is the client's to choose, and nginx
	// leaves its [ and ] as they are but escapes a quote: the time is in
	// the last [...] before the request's opening quote.
	quote := strings.IndexByte(rest, '"')
	if quote < 0 {
		return r, ErrFormat
	}
	open := strings.LastIndexByte(rest[:quote], '[')
	if open < 0 {
		return r, ErrFormat
	}
	end := strings.IndexByte(rest[open+1:quote], ']')
	if end < 0 {
		return r, ErrFormat
	}
	end += open + 1
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", rest[open+1:end])
	if err != nil {
		return r, ErrFormat
	}
	r.Time = t
	rest = rest[end+1:]
	q1 := strings.IndexByte(rest, '"')
	if q1 < 0 {
		return r, ErrFormat
	}
	q2 := strings.IndexByte(rest[q1+1:], '"')
	if q2 < 0 {
		return r, ErrFormat
	}
	req := strings.Fields(rest[q1+1 : q1+1+q2])
	if len(req) < 2 {
		return r, ErrFormat
	}
	r.Method, r.Path = req[0], req[1]
	if i := strings.IndexAny(r.Path, "?#"); i >= 0 {
		r.Path = r.Path[:i]
	}
	f := strings.Fields(rest[q1+q2+2:])
	if len(f) == 0 {
		return r, ErrFormat
	}
	if r.Status, err = strconv.Atoi(f[0]); err != nil || r.Status < 100 || r.Status > 999 {
		return r, ErrFormat
	}
	return r, nil
}

// Boot is a node's boot seen in the log.
type Boot struct {
	Generation int
	Time       time.Time
	Addr       string
}

var (
	genPath  = regexp.MustCompile(`^/generations/([0-9]{1,9})/(vmlinuz|initrd\.img|root\.squashfs|root\.erofs)$`)
	nodePath = regexp.MustCompile(`^/nodes/([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\.img$`)
)

// Boots reads a log and returns each node's last boot, by name, and the
// number of lines it skipped.
func Boots(r io.Reader) (map[string]Boot, int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	boots := map[string]Boot{}
	lastGen := map[string]int{}
	skipped := 0
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			req, perr := ParseLine(line)
			switch {
			case perr != nil:
				skipped++
			case req.Method != "GET" || req.Status != 200 && req.Status != 206 && req.Status != 304:
			default:
				if m := genPath.FindStringSubmatch(req.Path); m != nil {
					g, _ := strconv.Atoi(m[1])
					lastGen[req.Addr] = g
					if len(lastGen) > 1<<20 {
						lastGen = map[string]int{req.Addr: g} // bound the addresses remembered
					}
				} else if m := nodePath.FindStringSubmatch(req.Path); m != nil {
					if g, ok := lastGen[req.Addr]; ok {
						// The later line wins, whatever time it says:
						// nginx appends in order.
						boots[m[1]] = Boot{Generation: g, Time: req.Time, Addr: req.Addr}
						delete(lastGen, req.Addr)
					}
				}
			}
		}
		if err == io.EOF {
			return boots, skipped, nil
		}
		if err != nil {
			return nil, skipped, err
		}
	}
}

// readLine reads a line, dropping what is past maxLine.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if b.Len() <= maxLine {
			b.Write(chunk)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return strings.TrimRight(b.String(), "\r\n"), err
	}
}

// Options of Read.
type Options struct {
	// Log is the access log; "" is the one nroot pxe wrote into the
	// nginx block (IMAGE/nodes.json).
	Log string
}

// Read reports the status of the nodes nroot pxe wrote for the image at
// dir.
func Read(dir string, o Options) (*Report, error) {
	im, err := image.Open(dir)
	if err != nil {
		return nil, err
	}
	pub, err := im.Published()
	if err != nil {
		return nil, err
	}
	ix, err := pxe.ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	rep := &Report{Image: im.Dir, PublishedGeneration: pub, AccessLog: o.Log, Nodes: []Node{}}
	if rep.AccessLog == "" {
		rep.AccessLog = ix.AccessLog
	}
	f, err := os.Open(rep.AccessLog)
	if err != nil {
		return nil, fmt.Errorf("status: the access log: %w (nroot pxe --access-log, nroot status --log)", err)
	}
	defer f.Close()
	boots, skipped, err := Boots(f)
	if err != nil {
		return nil, fmt.Errorf("status: %s: %w", rep.AccessLog, err)
	}
	rep.SkippedLines = skipped
	for _, n := range ix.Nodes {
		s := Node{Name: n.Name, MAC: n.MAC, ExpectedGeneration: pub, State: NeverSeen}
		if n.Generation != "published" {
			s.Pinned = true
			s.ExpectedGeneration, _ = strconv.Atoi(n.Generation)
		}
		if b, ok := boots[n.Name]; ok {
			t := b.Time
			s.BootedGeneration, s.BootedAt, s.BootedFrom = b.Generation, &t, b.Addr
			s.State = Current
			if b.Generation != s.ExpectedGeneration {
				s.State = Stale
			}
		}
		switch s.State {
		case Current:
			rep.Current++
		case Stale:
			rep.Stale++
		default:
			rep.NeverSeen++
		}
		rep.Nodes = append(rep.Nodes, s)
	}
	return rep, nil
}
