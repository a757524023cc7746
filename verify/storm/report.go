package storm

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// WriteTable prints the results as a text table, one run per line.
func WriteTable(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-11s %7s %8s %8s %8s %9s %9s %8s %10s %11s %9s %8s %8s %7s\n", "mode", "clients", "p50 s", "p95 s", "p99 s", "call p50", "call p99", "boot MB", "MB/s", "RPCs/s", "RPCs", "srv CPU%", "cli CPU%", "errors")
	for _, r := range results {
		fmt.Fprintf(w, "%-11s %7d %8.2f %8.2f %8.2f %9s %9s %8.1f %10.1f %11.0f %9d %8.0f %8s %7d\n", r.Mode, r.Clients, r.P50, r.P95, r.P99, ms(r.CallP50, r.Calls), ms(r.CallP99, r.Calls),
			float64(r.BootBytes)/1e6, r.BytesPerSec/1e6, r.RPCsPerSec, r.RPCs, r.ServerLoad, cpu(r), r.Errors)
	}
	fmt.Fprintln(w, "call p50/p99: per NFS COMPOUND, in ms; boot MB: kernel and initramfs over HTTP per client; cli CPU%: the client processes' (- when in-process)")
}

// ms is a call latency in milliseconds, "-" for none timed.
func ms(s float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", s*1e3)
}

// cpu is the client processes' load, "-" when the clients ran in process.
func cpu(r Result) string {
	if r.Procs == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", r.ClientLoad)
}

// Plot draws p50 (solid) and p99 (dashed) time against clients for each
// mode, clients on a log scale, as an SVG.
func Plot(results []Result, title string) []byte {
	const W, H, left, right, top, bottom = 760, 440, 70, 170, 40, 50
	modes := map[string][]Result{}
	var order []string
	maxT, maxN := 0.0, 1
	for _, r := range results {
		if _, ok := modes[r.Mode]; !ok {
			order = append(order, r.Mode)
		}
		modes[r.Mode] = append(modes[r.Mode], r)
		maxT = math.Max(maxT, r.P99)
		maxN = max(maxN, r.Clients)
	}
	if maxT <= 0 {
		maxT = 1
	}
	maxT = niceCeil(maxT)
	x := func(n int) float64 {
		return left + (W-left-right)*math.Log10(float64(max(n, 1)))/math.Log10(float64(max(maxN, 10)))
	}
	y := func(t float64) float64 { return top + (H-top-bottom)*(1-t/maxT) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">%s</text>`+"\n", left, escape(title))
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, H-bottom, W-right, H-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, H-bottom)
	for _, n := range []int{1, 10, 50, 100, 200, 500, 1000, 2000} {
		if n > maxN {
			break
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(n), top, x(n), H-bottom, x(n), H-bottom+16, n)
	}
	for i := 0; i <= 5; i++ {
		t := maxT * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", left, y(t), W-right, y(t), left-6, y(t)+4, t)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">concurrent clients (log scale)</text>`+"\n", (W-right+left)/2, H-12)
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">seconds to finish the boot working set</text>`+"\n", (H)/2, H/2)
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	for i, m := range order {
		rs := modes[m]
		sort.Slice(rs, func(a, b int) bool { return rs[a].Clients < rs[b].Clients })
		c := colors[i%len(colors)]
		for _, q := range []struct {
			get  func(Result) float64
			dash string
		}{{func(r Result) float64 { return r.P50 }, ""}, {func(r Result) float64 { return r.P99 }, ` stroke-dasharray="5,4"`}} {
			var pts []string
			for _, r := range rs {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.Clients), y(q.get(r))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, q.dash, strings.Join(pts, " "))
		}
		ly := top + 20*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n", W-right+12, ly, W-right+36, ly, c, W-right+42, ly+4, escape(m))
	}
	ly := top + 20*len(order) + 10
	fmt.Fprintf(&b, `<text x="%d" y="%d">solid p50, dashed p99</text>`+"\n", W-right+12, ly)
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
