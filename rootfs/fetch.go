// Package rootfs builds a Debian or Ubuntu root filesystem from a plan:
// it fetches the packages into a shared cache, unpacks them, writes the
// dpkg database and configures the result inside systemd-nspawn.
package rootfs

import (
	"context"
	"fmt"
	"io"
	"sync"

	"nroot/apt"
	"nroot/internal/progress"
)

// Fetched maps a package's SHA256 to its file in the cache.
type Fetched map[string]string

// Fetch downloads every package of the plan into the content-addressed
// cache, in parallel, verifying each against its signed SHA256. Packages
// already cached are not downloaded again; interrupted downloads resume.
func Fetch(ctx context.Context, plan *apt.Plan, f *apt.Fetcher, jobs int, log io.Writer) (Fetched, error) {
	if jobs <= 0 {
		jobs = 8
	}
	out := Fetched{}
	var mu sync.Mutex
	bar := progress.New(log, "fetch", plan.TotalSize, len(plan.Packages))
	bar.Unit = "packages"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	var firstErr error
	for i := range plan.Packages {
		p := &plan.Packages[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if path, ok := f.Cached("debs", p.Size, p.SHA256); ok {
				mu.Lock()
				out[p.SHA256] = path
				mu.Unlock()
				bar.Cached(p.Size)
				return
			}
			path, err := f.FetchVerified(ctx, []string{p.URL()}, p.Size, p.SHA256, "debs")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("package %s %s: %w", p.Name, p.Version, err)
					cancel()
				}
				return
			}
			out[p.SHA256] = path
			bar.Add(p.Size)
			bar.Item()
		}()
	}
	wg.Wait()
	bar.Finish()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
