package storm

import (
	"math"
	"time"
)

// Hist counts call latencies in logarithmic buckets 2 % wide, from 1 µs
// to about 45 minutes: a storm's millions of calls in a few kilobytes, and
// a worker process hands its histogram back whole.
type Hist []int64

const (
	histBase    = 1e-6 // seconds: the first bucket's upper bound
	histGrowth  = 1.02
	histBuckets = 1100
)

// Add counts one latency.
func (h *Hist) Add(d time.Duration) {
	i := 0
	if s := d.Seconds(); s > histBase {
		i = int(math.Log(s/histBase) / math.Log(histGrowth))
	}
	i = min(max(i, 0), histBuckets-1)
	if len(*h) <= i {
		*h = append(*h, make([]int64, i+1-len(*h))...)
	}
	(*h)[i]++
}

// Merge adds another histogram's counts; one longer than any bucket this
// histogram has is cut at the last.
func (h *Hist) Merge(o Hist) {
	if len(o) > histBuckets {
		o = o[:histBuckets]
	}
	if len(*h) < len(o) {
		*h = append(*h, make([]int64, len(o)-len(*h))...)
	}
	for i, n := range o {
		if n > 0 {
			(*h)[i] += n
		}
	}
}

// Count is the number of latencies counted.
func (h Hist) Count() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile is the upper bound, in seconds, of the bucket holding the
// nearest-rank q quantile: within 2 % above the latency itself. 0 for no
// latencies.
func (h Hist) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen int64
	for i, c := range h {
		seen += c
		if seen >= rank {
			return histBase * math.Pow(histGrowth, float64(i+1))
		}
	}
	return histBase * math.Pow(histGrowth, float64(len(h)))
}
