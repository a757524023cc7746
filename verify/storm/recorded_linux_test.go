package storm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/verify/nfsclient"
	"nroot/verify/storm"
)

// shapeTree makes a tree a working set can be replayed on, below dir
// (the working set's first path component is the export's pseudo path):
// a directory for every path another is below or that is listed, a
// symbolic link for every path read as one, and a regular file, sparse,
// as long as its reads reach, for every other path a call works on. A
// name only looked up is left out: the node found it missing, or not.
func shapeTree(ws *storm.WorkingSet, dir string) error {
	kinds := map[string]string{}
	ends := map[string]int64{}
	for _, c := range ws.Calls {
		p := path.Clean(c.Path)
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		if c.Path == "" || len(parts) < 2 || !filepath.IsLocal(filepath.FromSlash(strings.Join(parts[1:], "/"))) {
			continue
		}
		rel := strings.Join(parts[1:], "/")
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			kinds[d] = "dir"
		}
		switch c.Op {
		case "READDIR":
			kinds[rel] = "dir"
		case "READLINK":
			if kinds[rel] != "dir" {
				kinds[rel] = "link"
			}
		case "READ", "OPEN", "CLOSE", "GETATTR", "ACCESS":
			if kinds[rel] == "" {
				kinds[rel] = "file"
			}
			if c.Op == "READ" {
				ends[rel] = max(ends[rel], int64(c.Off)+1)
				if n := ws.Files[p]; n > 0 {
					ends[rel] = max(ends[rel], min(n, int64(c.Off)+int64(c.Count)))
				}
			}
		}
	}
	for rel, k := range kinds {
		full := filepath.Join(dir, filepath.FromSlash(rel))
		switch k {
		case "dir":
			if err := os.MkdirAll(full, 0o755); err != nil {
				return err
			}
		}
	}
	for rel, k := range kinds {
		full := filepath.Join(dir, filepath.FromSlash(rel))
		var err error
		switch k {
		case "link":
			err = os.Symlink("target", full)
		case "file":
			var f *os.File
			if f, err = os.Create(full); err == nil {
				err = f.Truncate(ends[rel])
				f.Close()
			}
		}
		if err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

// TestReplayRecordedBoot replays a recorded boot's working set
// (NROOT_STORM_WORKSET, e.g. docs/storm/workset-tree.json) on a tree
// shaped from it, against nfs-ganesha, each client first fetching a
// kernel and an initramfs of NROOT_STORM_BOOT_MB (default 12,56: a
// trixie node's) from nginx, for NROOT_STORM_TEST_CLIENTS (default 1,3).
// It writes the table and JSON to NROOT_STORM_TEST_OUT when set.
func TestReplayRecordedBoot(t *testing.T) {
	file := os.Getenv("NROOT_STORM_WORKSET")
	if file == "" {
		t.Skip("NROOT_STORM_WORKSET names a recorded working set to replay")
	}
	testenv.Root(t)
	testenv.Command(t, "ganesha.nfsd")
	testenv.Command(t, "nginx")
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := storm.ReadWorkingSet(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	os.Chmod(work, 0o755)
	root := filepath.Join(work, "root")
	if err := shapeTree(ws, root); err != nil {
		t.Fatal(err)
	}
	pseudo := "/" + strings.Split(strings.TrimPrefix(ws.Calls[len(ws.Calls)/2].Path, "/"), "/")[0]
	for _, c := range ws.Calls {
		if c.Path != "" && c.Path != "/" {
			pseudo = "/" + strings.Split(strings.TrimPrefix(c.Path, "/"), "/")[0]
			break
		}
	}
	srv, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 1, Path: root, Pseudo: pseudo}}, ganesha.Options{V4Only: true, AttrCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	// The kernel and initramfs, served by nginx as the export's are.
	sizes := []int64{12, 56}
	if s := os.Getenv("NROOT_STORM_BOOT_MB"); s != "" {
		sizes = nil
		for _, x := range strings.Split(s, ",") {
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil || n < 0 || n > 1024 {
				t.Fatalf("NROOT_STORM_BOOT_MB=%q: megabytes, comma-separated", s)
			}
			sizes = append(sizes, n)
		}
	}
	web := filepath.Join(work, "web")
	os.MkdirAll(filepath.Join(web, "generations", "1"), 0o755)
	port := freeTCPPort(t)
	var urls []string
	for i, mb := range sizes {
		name := []string{"vmlinuz", "initrd.img"}[min(i, 1)]
		if i > 1 {
			name = fmt.Sprintf("extra%d", i)
		}
		b := bytes.Repeat([]byte{byte('a' + i)}, int(mb<<20))
		if err := os.WriteFile(filepath.Join(web, "generations", "1", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/generations/1/%s", port, name))
	}
	nginxPID := startNginx(t, filepath.Join(work, "nginx"), web, port)

	counts := []int{1, 3}
	if s := os.Getenv("NROOT_STORM_TEST_CLIENTS"); s != "" {
		counts = nil
		for _, x := range strings.Split(s, ",") {
			n, err := strconv.Atoi(x)
			if err != nil || n < 1 || n > 100 {
				t.Fatalf("NROOT_STORM_TEST_CLIENTS=%q: from 1 to 100, comma-separated", s)
			}
			counts = append(counts, n)
		}
	}
	var results []storm.Result
	for _, n := range counts {
		res, err := storm.Run(context.Background(), storm.Options{Mode: ws.Mode, Clients: n, WorkingSet: ws, BootURLs: urls,
			NFS: nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.NFSPort, Version: 4}, ServerPIDs: []int{srv.PID(), nginxPID}, Timeout: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors > 0 {
			t.Errorf("%d clients: %d failed, first: %s", n, res.Errors, res.FirstError)
		}
		results = append(results, *res)
	}
	var table bytes.Buffer
	storm.WriteTable(&table, results)
	for _, r := range results {
		fmt.Fprintf(&table, "%d clients: %d opens, %d closes, %d left open; %d calls timed; server CPU %.2fs (ganesha %.2fs, nginx %.2fs), clients' %.2fs; kernel and initramfs by %.2fs (p50), %d bytes each\n",
			r.Clients, r.Opens, r.Closes, r.LeftOpen, r.Calls, r.ServerCPU, r.ServerCPUEach[0], r.ServerCPUEach[1], r.ClientCPU, r.BootP50, r.BootBytes)
	}
	t.Logf("%s: %s\n%s", file, ws.Summary(), table.String())
	if out := os.Getenv("NROOT_STORM_TEST_OUT"); out != "" {
		os.MkdirAll(out, 0o755)
		b, _ := json.MarshalIndent(map[string]any{"workset": filepath.Base(file), "boot_mb": sizes, "results": results}, "", "  ")
		os.WriteFile(filepath.Join(out, "replay.json"), b, 0o644)
		os.WriteFile(filepath.Join(out, "replay.txt"), table.Bytes(), 0o644)
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx serves dir on port and returns the master's pid.
func startNginx(t *testing.T, prefix, dir string, port int) int {
	os.MkdirAll(prefix, 0o755)
	conf := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`user root;
daemon off;
worker_processes 1;
pid %[1]s/pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server { listen 127.0.0.1:%[2]d; root %[3]s; }
}
`, prefix, port, dir)), 0o644)
	cmd := exec.Command("nginx", "-c", conf, "-p", prefix)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
			c.Close()
			return cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("nginx did not listen")
	return 0
}
