// Package parallel runs bounded parallel work where the first error wins:
// the one way nroot fans out downloads, unpacking, index loads and hashing.
package parallel

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// Each calls fn for every index in [0, n), at most limit at once (limit
// below 1 means one). The first error cancels the context the others
// get, no further call starts, and Each returns that error once every
// call has returned. A cancelled ctx stops it likewise.
func Each(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(limit, 1))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return fn(gctx, i)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
