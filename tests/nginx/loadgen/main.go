// Command loadgen is the real-traffic harness of the nginx benchmark: HTTP backends with a
// real capacity limit, and an open-loop Poisson client.
//
//	loadgen backend -listen 127.0.0.1:9001 -slots 4 -service-ms 4
//	loadgen client -targets http://127.0.0.1:8001/x,http://127.0.0.1:8002/x -rate 1200 \
//	    -duration 8s -warmup 1s [-at 4s -at-url http://127.0.0.1:9002/_delay?ms=40]
//
// A backend serves at most -slots requests at a time and queues the rest (FIFO on a
// semaphore); each takes an exponentially distributed time with mean -service-ms, which
// GET /_delay?ms=N changes at run time. The client sends on a Poisson schedule whatever
// the answers do (open loop), to a uniformly random target, and measures each latency from
// the scheduled send time, so a slow answer cannot delay the next send and hide the tail
// (a closed-loop tool such as wrk does). It prints one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen backend|client [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "backend":
		backend(os.Args[2:])
	case "client":
		client(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func backend(args []string) {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	slots := fs.Int("slots", 4, "requests served at a time; the rest wait")
	serviceMs := fs.Float64("service-ms", 4, "mean service time, ms (exponential)")
	seed := fs.Int64("seed", 1, "seed of the service times")
	_ = fs.Parse(args)
	if *slots < 1 || *serviceMs <= 0 || math.IsNaN(*serviceMs) {
		fmt.Fprintln(os.Stderr, "loadgen backend: -slots >= 1 and -service-ms > 0")
		os.Exit(2)
	}
	var meanBits atomic.Uint64
	meanBits.Store(math.Float64bits(*serviceMs))
	var served atomic.Int64
	sem := make(chan struct{}, *slots)
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(*seed))
	mux := http.NewServeMux()
	mux.HandleFunc("/_delay", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.ParseFloat(r.URL.Query().Get("ms"), 64)
		if err != nil || !(ms > 0) || ms > 60000 {
			http.Error(w, "ms must be in (0, 60000]", http.StatusBadRequest)
			return
		}
		meanBits.Store(math.Float64bits(ms))
		fmt.Fprintf(w, "%g\n", ms)
	})
	mux.HandleFunc("/_served", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", served.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		sem <- struct{}{}
		mu.Lock()
		d := rng.ExpFloat64() * math.Float64frombits(meanBits.Load())
		mu.Unlock()
		time.Sleep(time.Duration(d * float64(time.Millisecond)))
		<-sem
		served.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen backend: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen backend: %v\n", err)
		os.Exit(1)
	}
}

type result struct {
	Sent       int     `json:"sent"`
	OK         int     `json:"ok"`
	Errors     int     `json:"errors"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Max        float64 `json:"max_ms"`
	P99After   float64 `json:"p99_after_event_ms"`
	P99Before  float64 `json:"p99_before_event_ms"`
	LateSends  int     `json:"late_sends"`
	RatePerSec float64 `json:"rate"`
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(float64(len(sorted)) * p)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

type sample struct {
	at  time.Duration // scheduled send, from the start of measurement
	lat float64       // ms, from the scheduled send
	ok  bool
}

func client(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	targets := fs.String("targets", "", "comma-separated URLs")
	rate := fs.Float64("rate", 1000, "requests per second (Poisson)")
	duration := fs.Duration("duration", 8*time.Second, "measured time")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before")
	at := fs.Duration("at", 0, "when (into the measured time) to GET -at-url; 0 = never")
	atURL := fs.String("at-url", "", "URL to GET at -at (a backend's /_delay)")
	timeout := fs.Duration("timeout", 5*time.Second, "per request")
	seed := fs.Int64("seed", 1, "seed of the schedule and the targets")
	_ = fs.Parse(args)
	urls := strings.Split(*targets, ",")
	if *targets == "" || !(*rate > 0) || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen client: -targets, -rate > 0 and -duration > 0 are needed")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second}
	hc := &http.Client{Transport: tr, Timeout: *timeout}
	rng := rand.New(rand.NewSource(*seed))
	var mu sync.Mutex
	var samples []sample
	var wg sync.WaitGroup
	late := 0
	begin := time.Now()
	measureFrom := begin.Add(*warmup)
	end := measureFrom.Add(*duration)
	next := begin
	if *at > 0 && *atURL != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(measureFrom.Add(*at)))
			if r, err := hc.Get(*atURL); err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			} else {
				fmt.Fprintf(os.Stderr, "loadgen client: %v\n", err)
			}
		}()
	}
	for {
		next = next.Add(time.Duration(rng.ExpFloat64() / *rate * float64(time.Second)))
		if !next.Before(end) {
			break
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if d < -time.Millisecond {
			late++
		}
		url := urls[rng.Intn(len(urls))]
		scheduled := next
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := hc.Get(url)
			ok := err == nil && r.StatusCode == 200
			if err == nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			lat := float64(time.Since(scheduled)) / float64(time.Millisecond)
			if !scheduled.Before(measureFrom) {
				mu.Lock()
				samples = append(samples, sample{at: scheduled.Sub(measureFrom), lat: lat, ok: ok})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := result{Sent: len(samples), LateSends: late, RatePerSec: *rate}
	var all, before, after []float64
	for _, s := range samples {
		if !s.ok {
			res.Errors++
			// A failed request counts at the timeout: it is part of the tail.
			s.lat = math.Max(s.lat, float64(*timeout)/float64(time.Millisecond))
		} else {
			res.OK++
		}
		all = append(all, s.lat)
		if *at > 0 {
			if s.at < *at {
				before = append(before, s.lat)
			} else if s.at < *at+time.Second {
				after = append(after, s.lat)
			}
		}
	}
	for _, v := range [][]float64{all, before, after} {
		sort.Float64s(v)
	}
	res.P50, res.P99, res.P999 = pct(all, 0.5), pct(all, 0.99), pct(all, 0.999)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	res.P99Before, res.P99After = pct(before, 0.99), pct(after, 0.99)
	// NaN is not JSON: an empty window's percentile is written as -1.
	for _, f := range []*float64{&res.P50, &res.P99, &res.P999, &res.P99Before, &res.P99After} {
		if math.IsNaN(*f) {
			*f = -1
		}
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen client: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
