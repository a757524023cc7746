package fsroot

import (
	"bytes"
	"path"
	"sync"
)

// WritePool writes small files on several goroutines. Creating an inode
// is slow on many filesystems (network and virtual disks most of all) but
// overlaps well, so while one goroutine reads archives others create the
// files. Memory held by queued files is bounded.
type WritePool struct {
	max    int64 // largest file queued
	jobs   chan func()
	wg     sync.WaitGroup
	mu     sync.Mutex
	cond   *sync.Cond
	budget int64 // bytes that may still be queued
}

// NewWritePool starts workers goroutines with budget bytes of queue.
func NewWritePool(workers int, budget int64) *WritePool {
	p := &WritePool{max: budget / 4, jobs: make(chan func()), budget: budget}
	p.cond = sync.NewCond(&p.mu)
	for range workers {
		go func() {
			for job := range p.jobs {
				job()
			}
		}()
	}
	return p
}

// MaxFile is the size of the largest file to queue: a quarter of the
// budget, so that several big files are written at once and none waits
// for the whole queue to drain. Larger ones are written by the reader.
func (p *WritePool) MaxFile() int64 { return p.max }

// Close stops the workers once queued work is done.
func (p *WritePool) Close() { close(p.jobs) }

func (p *WritePool) reserve(n int64) {
	p.mu.Lock()
	for p.budget < n {
		p.cond.Wait()
	}
	p.budget -= n
	p.mu.Unlock()
}

func (p *WritePool) release(n int64) {
	p.mu.Lock()
	p.budget += n
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Batch tracks one archive's queued writes, so hard links wait for their
// target and the archive's unpack waits for all of them.
type Batch struct {
	pool    *WritePool
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	pending map[string]chan struct{}
}

// MaxFile is the pool's MaxFile.
func (b *Batch) MaxFile() int64 { return b.pool.max }

// Batch starts a group of writes to wait for together.
func (p *WritePool) Batch() *Batch {
	return &Batch{pool: p, pending: map[string]chan struct{}{}}
}

func (b *Batch) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// Err is the first error of a queued write so far, so a reader can stop
// early.
func (b *Batch) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// WaitForParents waits for queued writes of every directory above rel:
// one of them may be a symlink that rel's path goes through.
func (b *Batch) WaitForParents(rel string) {
	for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
		b.WaitFor(d)
	}
}

// WaitFor blocks until a queued write of rel, if any, is done.
func (b *Batch) WaitFor(rel string) {
	b.mu.Lock()
	ch := b.pending[rel]
	b.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// queue runs write on the pool, recording rel as pending until it is
// done; cost bytes of the queue budget are held meanwhile.
func (b *Batch) queue(rel string, cost int64, done func(), write func() error) {
	b.pool.reserve(cost)
	ch := make(chan struct{})
	b.mu.Lock()
	b.pending[rel] = ch
	b.mu.Unlock()
	b.wg.Add(1)
	b.pool.jobs <- func() {
		defer b.wg.Done()
		defer close(ch)
		defer b.pool.release(cost)
		defer done()
		if err := write(); err != nil {
			b.fail(err)
		}
	}
}

// WriteFile queues a file whose content is in data.
func (b *Batch) WriteFile(root *Root, rel string, data []byte, m Meta, done func()) {
	b.queue(rel, int64(len(data))+512, done, func() error {
		return root.WriteFile(rel, bytes.NewReader(data), int64(len(data)), m)
	})
}

// Symlink queues a symlink.
func (b *Batch) Symlink(root *Root, target, rel string, m Meta, done func()) {
	b.queue(rel, 512, done, func() error { return root.Symlink(target, rel, m) })
}

// Wait waits for the batch and returns its first error.
func (b *Batch) Wait() error {
	b.wg.Wait()
	return b.err
}
