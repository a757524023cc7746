// Package rootfs builds a Debian or Ubuntu root filesystem from a plan:
// it fetches the packages into a shared cache, unpacks them, writes the
// dpkg database and configures the result inside systemd-nspawn.
package rootfs

import (
	"context"
	"fmt"
	"io"
	"sort"
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
	a := NewArrivals(plan)
	if err := fetchInto(ctx, plan, f, jobs, w, a); err != nil {
		return nil, err
	}
	return a.got, nil
}

// fetchInto is Fetch, telling a about each package as it is in the
// cache, verified. base-files comes first, since unpacking starts with
// it alone, then the largest packages, which take longest.
func fetchInto(ctx context.Context, plan *lockfile.Plan, f *fetch.Fetcher, jobs int, w io.Writer, a *Arrivals) error {
	if jobs <= 0 {
		jobs = 8
	}
	order := make([]*lockfile.Package, len(plan.Packages))
	for i := range plan.Packages {
		order[i] = &plan.Packages[i]
	}
	sort.SliceStable(order, func(i, j int) bool {
		if bi, bj := order[i].Name == "base-files", order[j].Name == "base-files"; bi != bj {
			return bi
		}
		return order[i].Size > order[j].Size
	})
	bar := progress.New(w, "fetch", plan.TotalSize, len(plan.Packages))
	bar.Unit = "packages"
	err := parallel.Each(ctx, len(order), jobs, func(ctx context.Context, i int) error {
		p := order[i]
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
		a.arrived(p.SHA256, path)
		return nil
	})
	bar.Finish()
	a.finish(err)
	return err
}

// Arrivals says where each package of a plan is in the download cache
// as downloads finish, so that Unpack can start on the first packages
// while the others still download (UnpackOptions.Arrivals).
type Arrivals struct {
	mu    sync.Mutex
	got   Fetched
	ready map[string]chan struct{} // closed when got has the package
	done  chan struct{}            // closed when fetching has ended
	err   error                    // why it ended early, set before done
}

// NewArrivals expects the plan's packages.
func NewArrivals(plan *lockfile.Plan) *Arrivals {
	a := &Arrivals{got: Fetched{}, ready: map[string]chan struct{}{}, done: make(chan struct{})}
	for _, p := range plan.Packages {
		a.ready[p.SHA256] = make(chan struct{})
	}
	return a
}

// arrived records a verified package file.
func (a *Arrivals) arrived(sum, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.got[sum]; ok {
		return // the plan has the same file twice
	}
	a.got[sum] = path
	close(a.ready[sum])
}

// finish marks the end of fetching: err, when it failed.
func (a *Arrivals) finish(err error) {
	a.err = err
	close(a.done)
}

// Wait returns the package's file once it is fetched and verified, or
// the error that stopped fetching before it was.
func (a *Arrivals) Wait(ctx context.Context, sum string) (string, error) {
	a.mu.Lock()
	ch, ok := a.ready[sum]
	a.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("not in the plan that was fetched")
	}
	select {
	case <-ch:
	case <-a.done:
		select {
		case <-ch:
		default:
			if a.err != nil {
				return "", fmt.Errorf("not fetched: %w", a.err)
			}
			return "", fmt.Errorf("not in the download cache")
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[sum], nil
}
