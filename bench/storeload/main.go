// storeload: one load generator for both stores of the bench's etcd comparison (bench/etcd.ts).
// It drives etcd through go.etcd.io/etcd/client/v3 and kvstore through go-redis v9 (RESP) with
// the same client count, value size, key space and duration, times every request, and prints one
// JSON object. Client i sends to endpoint i mod len(endpoints), one request at a time: over its
// own connection to kvstore, over the member's one shared gRPC connection to etcd.
//
// Usage:
//
//	storeload -store etcd|kvstore -endpoints host:port,... -op fill|put|get|get-serializable
//	          [-clients 50] [-keys 100000] [-value-bytes 100] [-duration-s 5] [-warmup-s 1]
//
// fill writes key:000000000000 .. key:<keys-1> once (batches of 100: an etcd Txn, a kvstore
// MSET; 8 clients; a failed batch is tried up to 3 times), so every get hits. put and get pick keys uniformly at random; get-serializable is etcd's
// serializable read (a member answers from its own state, no quorum round).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	fillBatch = 100
	// fillers: the fill is not measured; fewer writers in flight keep a loaded machine's quorum
	// writes inside their timeouts.
	fillers = 8
	// fillTries: a batch that fails (a timeout on a loaded machine) is written again, the same
	// values, before the fill counts an error.
	fillTries = 3
)

type options struct {
	store      string
	endpoints  []string
	op         string
	clients    int
	keys       int
	valueBytes int
	duration   time.Duration
	warmup     time.Duration
}

// client is one connection to one endpoint of either store.
type client interface {
	put(ctx context.Context, key, value string) error
	// get reports whether the key was found.
	get(ctx context.Context, key string, serializable bool) (bool, error)
	putMany(ctx context.Context, keys []string, value string) error
	close()
}

type etcdClient struct{ c *clientv3.Client }

func (e etcdClient) put(ctx context.Context, key, value string) error {
	_, err := e.c.Put(ctx, key, value)
	return err
}

func (e etcdClient) get(ctx context.Context, key string, serializable bool) (bool, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	r, err := e.c.Get(ctx, key, opts...)
	if err != nil {
		return false, err
	}
	return r.Count > 0, nil
}

func (e etcdClient) putMany(ctx context.Context, keys []string, value string) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, value)
	}
	_, err := e.c.Txn(ctx).Then(ops...).Commit()
	return err
}

func (e etcdClient) close() { _ = e.c.Close() }

type kvClient struct{ c *redis.Client }

func (k kvClient) put(ctx context.Context, key, value string) error {
	return k.c.Set(ctx, key, value, 0).Err()
}

func (k kvClient) get(ctx context.Context, key string, _ bool) (bool, error) {
	err := k.c.Get(ctx, key).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func (k kvClient) putMany(ctx context.Context, keys []string, value string) error {
	pairs := make([]any, 0, 2*len(keys))
	for _, key := range keys {
		pairs = append(pairs, key, value)
	}
	return k.c.MSet(ctx, pairs...).Err()
}

func (k kvClient) close() { _ = k.c.Close() }

func dial(o options, endpoint string) (client, error) {
	switch o.store {
	case "etcd":
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{endpoint},
			DialTimeout: 10 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			return nil, err
		}
		return etcdClient{c}, nil
	case "kvstore":
		// go-redis with its defaults (RESP3 after HELLO 3) but one connection per client, and
		// timeouts long enough for a loaded machine.
		c := redis.NewClient(&redis.Options{
			Addr:         endpoint,
			PoolSize:     1,
			ReadTimeout:  30 * time.Second,
			WriteTimeout: 30 * time.Second,
			DialTimeout:  10 * time.Second,
		})
		if err := c.Ping(context.Background()).Err(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("PING %s: %w", endpoint, err)
		}
		return kvClient{c}, nil
	}
	return nil, fmt.Errorf("unknown store %q (etcd or kvstore)", o.store)
}

func key(i int) string { return fmt.Sprintf("key:%012d", i) }

// result is what the program prints.
type result struct {
	Store     string   `json:"store"`
	Op        string   `json:"op"`
	Endpoints []string `json:"endpoints"`
	Clients   int      `json:"clients"`
	// Connections the clients share (etcd: one per member; kvstore: one per client).
	Connections int     `json:"connections"`
	Keys        int     `json:"keys"`
	ValueBytes  int     `json:"valueBytes"`
	WarmupS     float64 `json:"warmupS"`
	WindowS     float64 `json:"windowS"`
	// Requests completed that started inside the measured window.
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError *string `json:"firstError"`
	Misses     int64   `json:"misses"`
	OpsPerSec  float64 `json:"opsPerSec"`
	// Latency of the measured requests in milliseconds, from the sorted samples (exact).
	Latency latency `json:"latencyMs"`
}

type latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func summarize(samples []time.Duration) latency {
	if len(samples) == 0 {
		return latency{}
	}
	slices.Sort(samples)
	msOf := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	at := func(q float64) float64 {
		i := int(q * float64(len(samples)))
		return msOf(samples[min(i, len(samples)-1)])
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return latency{
		Mean: msOf(sum) / float64(len(samples)),
		P50:  at(0.5),
		P90:  at(0.9),
		P99:  at(0.99),
		P999: at(0.999),
		Max:  msOf(samples[len(samples)-1]),
	}
}

// errorCounter keeps the count and the first message.
type errorCounter struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errorCounter) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

func (e *errorCounter) firstError() *string {
	if e.n.Load() == 0 {
		return nil
	}
	return &e.first
}

// connections: how many connections the clients use, each store as its client library is meant
// to be used. A RESP connection carries one request at a time, so every kvstore client has its
// own. etcd's clientv3 multiplexes concurrent requests over one gRPC (HTTP/2) connection, so
// the etcd clients on a member share one client (measured here: 6.0-6.1k linearizable gets/s
// against 2.6-4.5k with one connection per client, puts about the same).
func connections(o options) int {
	if o.store == "etcd" {
		return min(o.clients, len(o.endpoints))
	}
	return o.clients
}

// connectAll returns the client of each of the o.clients workers (worker i on endpoint i mod
// len(endpoints)) and the distinct connections to close.
func connectAll(o options) (workers, conns []client, err error) {
	conns = make([]client, connections(o))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i], errs[i] = dial(o, o.endpoints[i%len(o.endpoints)]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		return nil, nil, err
	}
	workers = make([]client, o.clients)
	for i := range workers {
		workers[i] = conns[i%len(conns)]
	}
	return workers, conns, nil
}

func fill(o options, clients []client, value string, res *result) {
	var next atomic.Int64
	var errs errorCounter
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clients[:min(fillers, len(clients))] {
		wg.Go(func() {
			for {
				first := int(next.Add(fillBatch)) - fillBatch
				if first >= o.keys {
					return
				}
				keys := make([]string, 0, fillBatch)
				for i := first; i < min(first+fillBatch, o.keys); i++ {
					keys = append(keys, key(i))
				}
				var err error
				for range fillTries {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					err = c.putMany(ctx, keys, value)
					cancel()
					if err == nil {
						break
					}
				}
				if err != nil {
					errs.add(err)
				}
			}
		})
	}
	wg.Wait()
	res.WindowS = time.Since(start).Seconds()
	res.Requests = int64(o.keys)
	res.Errors = errs.n.Load()
	res.FirstError = errs.firstError()
	res.OpsPerSec = float64(o.keys) / res.WindowS
}

func load(o options, clients []client, value string, res *result) {
	serializable := o.op == "get-serializable"
	begin := time.Now()
	measureFrom := begin.Add(o.warmup)
	stopAt := measureFrom.Add(o.duration)
	samples := make([][]time.Duration, len(clients))
	var errs errorCounter
	var misses atomic.Int64
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			mine := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if !t0.Before(stopAt) {
					break
				}
				k := key(rng.IntN(o.keys))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var err error
				found := true
				if o.op == "put" {
					err = c.put(ctx, k, value)
				} else {
					found, err = c.get(ctx, k, serializable)
				}
				cancel()
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs.add(err)
					continue
				}
				if !found {
					misses.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			samples[i] = mine
		})
	}
	wg.Wait()
	all := slices.Concat(samples...)
	res.WindowS = o.duration.Seconds()
	res.Requests = int64(len(all))
	res.Errors = errs.n.Load()
	res.FirstError = errs.firstError()
	res.Misses = misses.Load()
	res.OpsPerSec = float64(len(all)) / o.duration.Seconds()
	res.Latency = summarize(all)
}

func run(o options) (*result, error) {
	switch o.op {
	case "fill", "put", "get", "get-serializable":
	default:
		return nil, fmt.Errorf("unknown -op %q (fill, put, get or get-serializable)", o.op)
	}
	if o.op == "get-serializable" && o.store != "etcd" {
		return nil, errors.New("-op get-serializable is etcd's")
	}
	clients, conns, err := connectAll(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	res := &result{
		Store: o.store, Op: o.op, Endpoints: o.endpoints, Clients: o.clients,
		Connections: len(conns), Keys: o.keys,
		ValueBytes: o.valueBytes, WarmupS: o.warmup.Seconds(),
	}
	value := strings.Repeat("x", o.valueBytes)
	if o.op == "fill" {
		fill(o, clients, value, res)
	} else {
		load(o, clients, value, res)
	}
	return res, nil
}

// quiet drops go-redis's own log lines (a failed dial is reported once, as this program's error).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quiet{})
	var o options
	var endpoints string
	var durationS, warmupS float64
	flag.StringVar(&o.store, "store", "", "etcd or kvstore")
	flag.StringVar(&endpoints, "endpoints", "", "comma-separated host:port list (client i uses endpoint i mod n)")
	flag.StringVar(&o.op, "op", "", "fill, put, get or get-serializable (etcd)")
	flag.IntVar(&o.clients, "clients", 50, "concurrent clients, one request at a time each")
	flag.IntVar(&o.keys, "keys", 100000, "key space: key:000000000000 .. key:<keys-1>")
	flag.IntVar(&o.valueBytes, "value-bytes", 100, "value size in bytes")
	flag.Float64Var(&durationS, "duration-s", 5, "measured seconds")
	flag.Float64Var(&warmupS, "warmup-s", 1, "unmeasured seconds before the window")
	flag.Parse()
	o.endpoints = strings.Split(endpoints, ",")
	o.duration = time.Duration(durationS * float64(time.Second))
	o.warmup = time.Duration(warmupS * float64(time.Second))
	if endpoints == "" || o.clients < 1 || o.keys < 1 || o.valueBytes < 1 || o.duration <= 0 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "storeload: need -store, -endpoints, -op and positive -clients, -keys, -value-bytes, -duration-s")
		flag.Usage()
		os.Exit(2)
	}
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storeload:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "storeload:", err)
		os.Exit(1)
	}
}
