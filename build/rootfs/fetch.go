// Package rootfs builds a Debian or Ubuntu root filesystem from a plan:
// it fetches the packages into a shared cache, unpacks them, writes the
// dpkg database and configures the result inside systemd-nspawn.
package rootfs

import (
	"context"
	"fmt"
	"io"
	"sync"

	"nroot/build/lockfile"
	"nroot/internal/fetch"
	"nroot/internal/parallel"
	"nroot/internal/progress"
)

// Fetched maps a package's SHA256 to its file in the cache.
type Fetched map[string]string

// Fetch downloads every package of the plan into the content-addressed
// cache, in parallel, verifying each against its signed SHA256. Packages
// already cached are not downloaded again; interrupted downloads resume.
func Fetch(ctx context.Context, plan *lockfile.Plan, f *fetch.Fetcher, jobs int, w io.Writer) (Fetched, error) {
	if jobs <= 0 {
		jobs = 8
	}
	out := Fetched{}
	var mu sync.Mutex
	bar := progress.New(w, "fetch", plan.TotalSize, len(plan.Packages))
	bar.Unit = "packages"
	err := parallel.Each(ctx, len(plan.Packages), jobs, func(ctx context.Context, i int) error {
		p := &plan.Packages[i]
		path, ok := f.Cached("debs", p.Size, p.SHA256)
		if ok {
			bar.Cached(p.Size)
		} else {
			var err error
			if path, err = f.FetchVerified(ctx, []string{p.URL()}, p.Size, p.SHA256, "debs"); err != nil {
				return fmt.Errorf("package %s %s: %w", p.Name, p.Version, err)
			}
			bar.Add(p.Size)
			bar.Item()
		}
		mu.Lock()
		out[p.SHA256] = path
		mu.Unlock()
		return nil
	})
	bar.Finish()
	if err != nil {
		return nil, err
	}
	return out, nil
}
