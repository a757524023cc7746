// Package ganesha starts a private nfs-ganesha (FSAL VFS) on 127.0.0.1 for
// tests and the end-to-end run, with its own configuration, ports, pid
// file and log, and rpcbind when none is running; Stop ends what it
// started and nothing else.
package ganesha

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nroot/serve/export"
)

// Export is one export of the server, as nroot export renders it.
type Export = export.Export

// Server is a running nfs-ganesha.
type Server struct {
	// Host is the address it answers at; "" is 127.0.0.1 (Start's).
	Host      string
	Dir       string
	NFSPort   int
	MountPort int
	Log       string
	cmd       *exec.Cmd
	rpcbind   *exec.Cmd
}

// Options choose ports; zero picks free ones.
type Options struct {
	NFSPort   int
	MountPort int
	// V4Only turns NFSv3 (and MOUNT) off, as NFSv4-only servers run.
	V4Only bool
	// AttrCache keeps ganesha's attribute cache, as a production server
	// runs (tests that change trees under the server turn it off).
	AttrCache bool
	// NamedOwners runs the server with its default owner settings (no
	// Only_Numeric_Owners): NFSv4 owners go as names (user@domain) from
	// the host's user database, numbers only for ids the host lacks.
	NamedOwners bool
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func nfsv4Block(dir string, namedOwners bool) string {
	lines := []string{"Graceless = true;", "RecoveryBackend = fs;", "RecoveryRoot = " + dir + "/recovery;"}
	if namedOwners {
		return export.GaneshaNFSV4NamedOwners(lines...)
	}
	return export.GaneshaNFSV4(lines...)
}

// Config renders the ganesha configuration.
func Config(dir string, nfsPort, mountPort, nlmPort, rquotaPort int, exports []Export, v4Only, attrCache, namedOwners bool) string {
	var b strings.Builder
	protocols := "3, 4"
	if v4Only {
		protocols = "4"
	}
	fmt.Fprintf(&b, `NFS_CORE_PARAM {
    Protocols = %s;
    Bind_addr = 127.0.0.1;
    NFS_Port = %d;
    MNT_Port = %d;
    NLM_Port = %d;
    Rquota_Port = %d;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
}
%sNFS_KRB5 { Active_krb5 = false; }
LOG { Default_Log_Level = WARN; }
`, protocols, nfsPort, mountPort, nlmPort, rquotaPort, nfsv4Block(dir, namedOwners))
	for _, e := range exports {
		// Tests change trees under the server: serve changes at once.
		e.NoAttrCache = !attrCache
		e.V4Only = e.V4Only || v4Only
		b.WriteString(e.Ganesha())
	}
	return b.String()
}

// Start runs nfs-ganesha with the exports and waits until it answers.
func Start(ctx context.Context, exports []Export, o Options) (*Server, error) {
	bin, err := exec.LookPath("ganesha.nfsd")
	if err != nil {
		return nil, fmt.Errorf("ganesha: ganesha.nfsd not installed (packages nfs-ganesha, nfs-ganesha-vfs)")
	}
	dir, err := os.MkdirTemp("", "nroot-ganesha-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Log: filepath.Join(dir, "ganesha.log"), NFSPort: o.NFSPort, MountPort: o.MountPort}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "recovery"), 0o755); err != nil {
		return fail(err)
	}
	if !listening(111) {
		rb, err := exec.LookPath("rpcbind")
		if err != nil {
			return fail(fmt.Errorf("ganesha: rpcbind not installed and none is running"))
		}
		s.rpcbind = exec.Command(rb, "-f", "-w")
		s.rpcbind.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := s.rpcbind.Start(); err != nil {
			return fail(fmt.Errorf("ganesha: starting rpcbind: %w", err))
		}
		for i := 0; i < 50 && !listening(111); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ports := []*int{&s.NFSPort, &s.MountPort}
	for _, p := range ports {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return fail(err)
			}
		}
	}
	if listening(s.NFSPort) {
		return fail(fmt.Errorf("ganesha: port %d is already in use (another NFS server?)", s.NFSPort))
	}
	nlm, _ := freePort()
	rq, _ := freePort()
	conf := filepath.Join(dir, "ganesha.conf")
	if err := os.WriteFile(conf, []byte(Config(dir, s.NFSPort, s.MountPort, nlm, rq, exports, o.V4Only, o.AttrCache, o.NamedOwners)), 0o644); err != nil {
		return fail(err)
	}
	s.cmd = exec.Command(bin, "-F", "-L", s.Log, "-f", conf, "-p", filepath.Join(dir, "ganesha.pid"))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("ganesha: %w", err))
	}
	if o.V4Only {
		s.MountPort = 0 // no MOUNT service
	}
	deadline := time.Now().Add(20 * time.Second)
	for !listening(s.NFSPort) || (!o.V4Only && !listening(s.MountPort)) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(s.Log)
			return fail(fmt.Errorf("ganesha did not start listening on %d and %d; its log:\n%s", s.NFSPort, s.MountPort, tail(string(log), 30)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop ends ganesha (and rpcbind if Start started it) and removes its
// directory. Each runs in its own process group, which is signalled
// whole: ganesha forks even in the foreground.
func (s *Server) Stop() {
	for _, cp := range []**exec.Cmd{&s.cmd, &s.rpcbind} {
		c := *cp
		if c == nil || c.Process == nil {
			continue
		}
		pg := -c.Process.Pid
		syscall.Kill(pg, syscall.SIGCONT)
		syscall.Kill(pg, syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { c.Wait(); close(waited) }()
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pg, 0) == nil {
			if time.Now().After(deadline) {
				syscall.Kill(pg, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
		}
		// The command is forgotten, not changed: its Wait may still be
		// reading it.
		*cp = nil
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
		s.Dir = ""
	}
}

// Addr is the address clients reach the server at.
func (s *Server) Addr() string {
	if s.Host == "" {
		return "127.0.0.1"
	}
	return s.Host
}

// PID is nfs-ganesha's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Pause stops the server without ending it (SIGSTOP), to play a slow or
// hung server; Resume continues it.
func (s *Server) Pause()  { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP) }
func (s *Server) Resume() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT) }
