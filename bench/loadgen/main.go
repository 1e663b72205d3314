// Command careledger-loadgen sends pre-built HTTP POST bodies to one server over N keep-alive
// connections and records, per request, when it left, how long the answer took, its HTTP status and
// the result code in its body. It is the load generator of `careledger bench --via http`, for the
// CareLedger API (POST /v1/txs) and for the Hardhat peer (JSON-RPC eth_sendRawTransaction) alike.
//
// Each lane's requests (one signer's transactions, in nonce order) leave in file order with at most
// --lane-depth of them in flight (1: strictly in order; more: consecutive nonces race each other
// over different connections, as concurrent clients of one signer do); lanes proceed concurrently.
// Without --rate it sends as fast as the server answers (peak); with --rate it paces departures at
// that many requests per second in total (open loop as far as the connections allow).
//
// Output: one JSON object on stdout (or --summary FILE) with counts by status and code, a sample
// message per code, the elapsed time and the generator's own CPU time; with --out FILE, one JSON
// line per request (see WriteRecords). Only loopback targets are accepted, and a run stops by
// itself after --max-seconds. By default Go code runs on one OS thread (--procs 1), which costs
// the least CPU per request.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Config is one run's settings (the command-line flags).
type Config struct {
	URL         string
	Bodies      string
	Out         string
	Summary     string
	Connections int
	LaneDepth   int
	Rate        float64
	Shard       string
	Timeout     time.Duration
	MaxSeconds  float64
	ContentType string
	Procs       int
}

// Summary is the one JSON object a run prints.
type Summary struct {
	URL             string            `json:"url"`
	Requests        int               `json:"requests"`
	Sent            int               `json:"sent"`
	Unsent          int               `json:"unsent"`
	Lanes           int               `json:"lanes"`
	Connections     int               `json:"connections"`
	LaneDepth       int               `json:"lane_depth"`
	Rate            float64           `json:"rate"`
	Shard           string            `json:"shard"`
	Statuses        map[string]int    `json:"statuses"`
	Codes           map[string]int    `json:"codes"`
	Samples         map[string]string `json:"samples"`
	StartNs         int64             `json:"start_ns"`
	EndNs           int64             `json:"end_ns"`
	ElapsedS        float64           `json:"elapsed_s"`
	SentPerS        float64           `json:"sent_per_s"`
	Late            int               `json:"late"`
	MaxBehindMs     float64           `json:"max_behind_ms"`
	CPUUserS        float64           `json:"cpu_user_s"`
	CPUSysS         float64           `json:"cpu_sys_s"`
	CPUUsPerRequest float64           `json:"cpu_us_per_request"`
	StoppedEarly    bool              `json:"stopped_early"`
}

const lateAfter = 10 * time.Millisecond // a paced request leaving later than this behind schedule is late

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.URL, "url", "", "base URL of the server, e.g. http://127.0.0.1:8700 (loopback only)")
	flag.StringVar(&cfg.Bodies, "bodies", "", "body file: lines of <lane>\\t<path>\\t<base64 body> ('-': stdin)")
	flag.StringVar(&cfg.Out, "out", "", "write one JSON line per request here")
	flag.StringVar(&cfg.Summary, "summary", "", "write the summary object here instead of stdout")
	flag.IntVar(&cfg.Connections, "connections", 64, "keep-alive connections (one worker each)")
	flag.IntVar(&cfg.LaneDepth, "lane-depth", 1, "a lane's requests in flight at once (1: in order; 0: no limit)")
	flag.Float64Var(&cfg.Rate, "rate", 0, "paced mode: requests per second in total (0: peak, as fast as answered)")
	flag.StringVar(&cfg.Shard, "shard", "0/1", "I/N: send only the lanes whose id mod N is I (for several generator processes)")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.Float64Var(&cfg.MaxSeconds, "max-seconds", 600, "stop sending after this many seconds, whatever is left")
	flag.StringVar(&cfg.ContentType, "content-type", "application/json", "Content-Type of every request")
	flag.IntVar(&cfg.Procs, "procs", 1, "OS threads running Go code at once (GOMAXPROCS; 0: one per core)")
	flag.Parse()
	if cfg.Procs > 0 {
		// One thread is cheaper per request than several (no idle threads woken to spin for work;
		// measured here: about half the CPU per request when paced), and ample below ~5,000 requests/s.
		runtime.GOMAXPROCS(cfg.Procs)
	}
	summary, err := Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "careledger-loadgen:", err)
		os.Exit(2)
	}
	doc, _ := json.Marshal(summary)
	if cfg.Summary != "" {
		if err := os.WriteFile(cfg.Summary, append(doc, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "careledger-loadgen:", err)
			os.Exit(2)
		}
		return
	}
	fmt.Println(string(doc))
}

// loopbackAddr checks that base is an http URL on a loopback address and returns its host:port.
func loopbackAddr(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("--url %q is not an http://HOST:PORT URL", base)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("--url %q: only loopback targets (127.0.0.0/8, ::1, localhost) are accepted", base)
		}
	}
	return net.JoinHostPort(host, port), nil
}

func parseShard(s string) (int, int, error) {
	i, n, found := strings.Cut(s, "/")
	a, err1 := strconv.Atoi(i)
	b, err2 := strconv.Atoi(n)
	if !found || err1 != nil || err2 != nil || b < 1 || a < 0 || a >= b {
		return 0, 0, fmt.Errorf("--shard %q is not I/N with 0 <= I < N", s)
	}
	return a, b, nil
}

// Run sends every request of the body file (of this shard) and returns the summary.
func Run(cfg Config) (*Summary, error) {
	addr, err := loopbackAddr(cfg.URL)
	if err != nil {
		return nil, err
	}
	shard, shards, err := parseShard(cfg.Shard)
	if err != nil {
		return nil, err
	}
	if cfg.Connections < 1 {
		return nil, errors.New("--connections must be at least 1")
	}
	if cfg.Rate < 0 || cfg.MaxSeconds <= 0 {
		return nil, errors.New("--rate must be >= 0 and --max-seconds > 0")
	}
	if cfg.Bodies == "" {
		return nil, errors.New("--bodies is required")
	}
	reqs, err := ReadBodiesFile(cfg.Bodies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Bodies, err)
	}
	var ids []int
	for id, r := range reqs {
		if r.Lane%shards == shard {
			ids = append(ids, id)
		}
	}
	sched := NewScheduler(reqs, ids, cfg.LaneDepth)
	records := make([]Record, len(reqs))
	samples := map[int]string{}
	var samplesMu sync.Mutex

	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	deadline := start.Add(time.Duration(cfg.MaxSeconds * float64(time.Second)))

	var tickets chan int64 // paced mode: each departure's due time (Unix ns)
	if cfg.Rate > 0 {
		tickets = make(chan int64)
		go pace(tickets, len(ids), cfg.Rate, start, deadline)
	}
	var late, maxBehind int64
	var lateMu sync.Mutex

	var wg sync.WaitGroup
	for w := 0; w < cfg.Connections; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &fasthttp.HostClient{
				Addr: addr, MaxConns: 1, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
				MaxIdleConnDuration: time.Minute, NoDefaultUserAgentHeader: true,
				DisableHeaderNamesNormalizing: true, DisablePathNormalizing: true,
			}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType(cfg.ContentType)
			req.Header.SetHost(addr)
			for {
				var due int64
				if tickets != nil {
					d, ok := <-tickets
					if !ok {
						return
					}
					due = d
				}
				if time.Now().After(deadline) {
					return
				}
				id, lane, ok := sched.Take()
				if !ok {
					return
				}
				r := &reqs[id]
				req.SetRequestURI(r.Path)
				req.SetBodyRaw(r.Body)
				sent := time.Now()
				err := client.DoTimeout(req, resp, cfg.Timeout)
				dur := time.Since(sent)
				rec := &records[id]
				rec.Sent, rec.Dur, rec.Done = sent.UnixNano(), int64(dur), true
				var msg string
				if err != nil {
					rec.Status, rec.Code, msg = 0, CodeTransport, err.Error()
				} else {
					code, text := ResultCode(resp.StatusCode(), resp.Body())
					rec.Status, rec.Code, msg = int32(resp.StatusCode()), int32(code), text
				}
				sched.Done(lane)
				if due != 0 {
					if behind := sent.UnixNano() - due; behind > int64(lateAfter) {
						lateMu.Lock()
						late++
						if behind > maxBehind {
							maxBehind = behind
						}
						lateMu.Unlock()
					}
				}
				if rec.Code != 0 {
					samplesMu.Lock()
					if _, seen := samples[int(rec.Code)]; !seen {
						samples[int(rec.Code)] = msg
					}
					samplesMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)

	s := &Summary{
		URL: cfg.URL, Requests: len(ids), Lanes: sched.Lanes(), Connections: cfg.Connections,
		LaneDepth: cfg.LaneDepth, Rate: cfg.Rate, Shard: cfg.Shard, Statuses: map[string]int{},
		Codes: map[string]int{}, Samples: map[string]string{}, StartNs: start.UnixNano(), EndNs: end.UnixNano(),
		ElapsedS: end.Sub(start).Seconds(), Late: int(late), MaxBehindMs: float64(maxBehind) / 1e6,
	}
	var lastSent int64
	for _, id := range ids {
		r := records[id]
		if !r.Done {
			s.Unsent++
			continue
		}
		s.Sent++
		s.Statuses[strconv.Itoa(int(r.Status))]++
		s.Codes[strconv.Itoa(int(r.Code))]++
		if r.Sent > lastSent {
			lastSent = r.Sent
		}
	}
	s.StoppedEarly = s.Unsent > 0
	keys := make([]int, 0, len(samples))
	for code := range samples {
		keys = append(keys, code)
	}
	sort.Ints(keys)
	for _, code := range keys {
		s.Samples[strconv.Itoa(code)] = samples[code]
	}
	if lastSent > s.StartNs {
		s.SentPerS = float64(s.Sent) / (float64(lastSent-s.StartNs) / 1e9)
	}
	s.CPUUserS = tv(ru1.Utime) - tv(ru0.Utime)
	s.CPUSysS = tv(ru1.Stime) - tv(ru0.Stime)
	if s.Sent > 0 {
		s.CPUUsPerRequest = (s.CPUUserS + s.CPUSysS) * 1e6 / float64(s.Sent)
	}
	if cfg.Out != "" {
		if err := WriteRecords(cfg.Out, records); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// pace emits n due times, request k due at start + k/rate, sleeping until each is due; it stops at
// the deadline. A departure that finds every worker busy waits, and those behind catch up at once.
func pace(tickets chan<- int64, n int, rate float64, start, deadline time.Time) {
	defer close(tickets)
	interval := float64(time.Second) / rate
	for k := 0; k < n; k++ {
		due := start.Add(time.Duration(float64(k) * interval))
		if due.After(deadline) {
			return
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		tickets <- due.UnixNano()
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
